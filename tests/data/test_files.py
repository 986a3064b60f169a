"""Reading data files (every format, where each row sits), checking rows, and encoding them up front."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("transformers")

from rows_testing import write_rows

from rmreg.data import PairCollator, TruncationStats, encode_pair, truncate_pair
from rmreg.data.examples import encode_pairs, longest_token
from rmreg.data.files import DataFile, DataFileError, read_pairs, read_rows, read_texts, write_jsonl
from rmreg.data.rows import RowError, check_pair_row, check_text_row, cut_long_texts
from rmreg.testing import tiny_tokenizer, toy_pairs

TOKENIZER = tiny_tokenizer()


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet", ""])
def test_every_format_reads_the_same_rows(tmp_path: Path, suffix: str) -> None:
    rows = [
        {"prompt": "Q", "chosen": "aei", "rejected": "xyz", "margin": 1.5},
        {"prompt": "R", "chosen": "ou", "rejected": "pq", "margin": 2},
    ]
    data = read_pairs(write_rows(tmp_path / f"pairs{suffix or '_dataset'}", rows))
    assert data.rows == rows and data.format == "text"  # CSV numbers are read as numbers
    expected = {".jsonl": ["line 1", "line 2"], ".json": ["line 2", "line 8"], ".csv": ["line 2", "line 3"]}
    assert data.where == expected.get(suffix, ["row 0", "row 1"])


def test_csv_cells_ids_numbers_empty_cells_and_lines_of_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    header, first, second = (
        "chosen_ids,rejected_ids,prompt,margin\n",
        '"[1, 2]","[3]",,0.5\n',
        '"[4, 5]","[6]","a\nb",\n',
    )
    path.write_text(header + first + second + '"[7]","[8]",,\n')
    data = read_rows(path)
    assert data.rows == [
        {"chosen_ids": [1, 2], "rejected_ids": [3], "margin": 0.5},
        {"chosen_ids": [4, 5], "rejected_ids": [6], "prompt": "a\nb"},
        {"chosen_ids": [7], "rejected_ids": [8]},
    ]
    assert data.where == ["line 2", "line 3", "line 5"]  # the quoted cell spans lines 3 and 4
    path.write_text(header + first + second + '"[7]",x,,\n')
    with pytest.raises(DataFileError, match=r"line 5: field 'rejected_ids': 'x' is not a JSON list of token ids"):
        read_rows(path)
    path.write_text(header + '"[1]","[2]",,1,extra\n')
    with pytest.raises(DataFileError, match="line 2: 5 cells but the header has 4"):
        read_rows(path)


def test_the_first_bad_row_is_named_and_the_others_counted(tmp_path: Path) -> None:
    rows = [
        {"chosen": "a", "rejected": "a"},
        {"chosen": "b", "rejected": "c"},
        {"chosen": ""},
        {"chosen": "x", "rejected": "x"},
    ]
    with pytest.raises(DataFileError) as error:
        read_pairs(write_rows(tmp_path / "pairs.jsonl", rows))
    assert str(error.value) == (
        f"{tmp_path / 'pairs.jsonl'}: line 1: field 'rejected': equals 'chosen'; a pair needs two different responses "
        "(and 2 more rows with problems after it)"
    )


def test_a_json_array_gives_each_row_the_line_it_starts_on(tmp_path: Path) -> None:
    path = tmp_path / "pairs.json"
    path.write_text(
        '[{"chosen": "a", "rejected": "b"},\n\n {"chosen": "c",\n  "rejected": "d"}, {"chosen": "e", "rejected": ""}]'
    )
    assert read_rows(path).where == ["line 1", "line 3", "line 4"]
    with pytest.raises(DataFileError, match=r"pairs.json: line 4: field 'rejected': is empty"):
        read_pairs(path)
    path.write_text('[{"chosen": "a", "rejected": "b"}] trailing')
    with pytest.raises(DataFileError, match="not closed by one"):
        read_rows(path)


def test_a_saved_dataset_dict_with_one_split_is_read_and_several_are_refused(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    split = datasets.Dataset.from_list(toy_pairs(3))
    datasets.DatasetDict({"train": split}).save_to_disk(str(tmp_path / "one"))
    assert len(read_pairs(tmp_path / "one")) == 3
    datasets.DatasetDict({"train": split, "test": split}).save_to_disk(str(tmp_path / "two"))
    with pytest.raises(DataFileError, match="holds the splits train, test; pass the directory of one split"):
        read_rows(tmp_path / "two")


def test_unreadable_tables_and_directories_are_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataFileError, match=r"broken.parquet: cannot be read as Parquet \("):
        read_rows(tmp_path / "broken.parquet")
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataFileError, match="a directory, but not a saved dataset"):
        read_rows(tmp_path / "folder")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DataFileError, match="holds no rows"):
        read_rows(tmp_path / "empty.jsonl")


def test_rows_to_score(tmp_path: Path) -> None:
    rows = [{"response": "a"}, {"prompt": "Q", "response": "b"}, {"messages": [{"role": "user", "content": "hi"}]}]
    assert read_texts(write_rows(tmp_path / "texts.jsonl", rows)) == [
        ("", "a"),
        ("Q", "b"),
        [{"role": "user", "content": "hi"}],
    ]
    with pytest.raises(RowError, match="'response': is empty"):
        check_text_row({"response": ""})
    with pytest.raises(RowError, match="no 'response' and no 'messages'"):
        check_text_row({"text": "a"})


def test_write_jsonl_round_trips_unicode_and_leaves_no_partial_file(tmp_path: Path) -> None:
    rows = [{"prompt": "café ☕", "chosen": "ü", "rejected": "\n"}]
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    assert read_rows(path).rows == rows and "café" in path.read_text()
    assert [item.name for item in tmp_path.iterdir()] == ["rows.jsonl"]


@pytest.mark.parametrize(
    ("row", "kind"),
    [
        ({"chosen": "a", "rejected": "b"}, "text"),
        (
            {
                "prompt": [],
                "chosen": [{"role": "assistant", "content": "a"}],
                "rejected": [{"role": "assistant", "content": "b"}],
            },
            "conversational",
        ),
        ({"chosen_ids": [1, 2], "rejected_ids": [1, 3], "chosen": "text beside ids is ignored"}, "tokenized"),
    ],
)
def test_each_format_is_recognized(row: dict, kind: str) -> None:
    assert check_pair_row(row) == kind


def test_a_row_mixing_formats_or_a_prompt_of_another_format_is_refused() -> None:
    chat = [{"role": "assistant", "content": "a"}]
    with pytest.raises(RowError, match="field 'rejected': is text but 'chosen' is conversational"):
        check_pair_row({"chosen": chat, "rejected": "b"})
    with pytest.raises(RowError, match="field 'prompt': is str but the responses are messages"):
        check_pair_row({"prompt": "Q", "chosen": chat, "rejected": [{"role": "assistant", "content": "b"}]})
    with pytest.raises(RowError, match="field 'prompt': is list but the responses are text"):
        check_pair_row({"prompt": chat, "chosen": "a", "rejected": "b"})


def test_encoded_examples_give_the_collators_batch_and_counts() -> None:
    rows = toy_pairs(6)
    rows[1]["prompt"] = "a prompt far longer than the rows may be " * 2
    rows[4]["chosen"] = "x" * 60
    stats = TruncationStats()
    examples = encode_pairs(TOKENIZER, rows, max_length=32, stats=stats)
    reference = PairCollator(TOKENIZER, max_length=32)
    expected = reference(rows)
    batch = PairCollator(TOKENIZER, max_length=32)(examples)
    assert all(batch[key].equal(expected[key]) for key in expected) and batch.keys() == expected.keys()
    assert stats == reference.stats == TruncationStats(pairs=6, truncated=2, responses_cut=1, dropped=0)


def test_policies_drop_and_error_and_the_location_in_errors(tmp_path: Path) -> None:
    rows = [{"chosen": "ab", "rejected": "cd"}, {"prompt": "long " * 20, "chosen": "ab", "rejected": "cd"}]
    stats = TruncationStats()
    assert len(encode_pairs(TOKENIZER, rows, max_length=16, truncation="drop", stats=stats)) == 1
    assert stats.dropped == 1
    data = read_pairs(write_rows(tmp_path / "pairs.jsonl", rows))
    with pytest.raises(DataFileError, match=r"pairs.jsonl: line 2: a pair needs \d+ tokens, more than max_length=16"):
        encode_pairs(TOKENIZER, data, max_length=16, truncation="error")
    with pytest.raises(DataFileError, match="mine: every pair is longer than max_length=3 and was dropped"):
        encode_pairs(TOKENIZER, rows, "mine", max_length=3, truncation="drop")


def test_ids_are_checked_against_the_vocabulary() -> None:
    with pytest.raises(
        DataFileError, match=r"data: row 0: field 'chosen_ids': token id 9 is outside the model's vocabulary of 9$"
    ):
        encode_pairs(TOKENIZER, [{"chosen_ids": [1, 9], "rejected_ids": [1, 2]}], vocab_size=9)
    with pytest.raises(
        DataFileError, match=r"field 'chosen': token id \d+ is outside .* \(the tokenizer does not match"
    ):
        encode_pairs(TOKENIZER, [{"chosen": "z", "rejected": "a"}], vocab_size=20)


class _CountingTokenizer:
    """The tiny tokenizer, recording the length of every text it is given."""

    def __init__(self) -> None:
        self.lengths: list[int] = []

    def __call__(self, text: str, **kwargs):
        self.lengths.append(len(text))
        return TOKENIZER(text, **kwargs)

    def __getattr__(self, name: str):
        return getattr(TOKENIZER, name)


def test_a_five_megabyte_response_is_cut_to_characters_before_tokenizing() -> None:
    row = {"prompt": "Q", "chosen": "the moon is bright . " * 250_000, "rejected": "no ."}
    counting = _CountingTokenizer()
    (example,) = encode_pairs(counting, [row], max_length=64)
    bound = (64 + 16) * longest_token(TOKENIZER) + len("Q") + len(TOKENIZER.eos_token)
    assert len(row["chosen"]) > 5_000_000 and max(counting.lengths) <= bound
    whole = truncate_pair(encode_pair(TOKENIZER, row), 64)
    assert (example["prompt_ids"], example["chosen_ids"]) == (list(whole.prompt_ids), list(whole.chosen_ids))


@given(
    prompt=st.text(alphabet="ab c.", max_size=300),
    chosen=st.text(alphabet="ab c.", max_size=300).map(lambda text: text + "a"),  # not blank, not "x"
    max_length=st.integers(2, 40),
)
def test_cutting_characters_first_changes_no_kept_token(prompt: str, chosen: str, max_length: int) -> None:
    """With the character-level tokenizer, the cut is exact: the same ids as truncating the whole text."""
    row = {"prompt": prompt, "chosen": chosen, "rejected": "x"}
    (example,) = encode_pairs(TOKENIZER, [row], max_length=max_length)
    whole = truncate_pair(encode_pair(TOKENIZER, row), max_length)
    assert (example["prompt_ids"], example["chosen_ids"]) == (list(whole.prompt_ids), list(whole.chosen_ids))


def test_cut_long_texts_reaches_message_contents() -> None:
    row = {"prompt": [{"role": "user", "content": "abcdef"}], "chosen": "ghij", "rejected": "k", "margin": 1.0}
    assert cut_long_texts(row, 2) == {
        "prompt": [{"role": "user", "content": "ef"}],
        "chosen": "ij",
        "rejected": "k",
        "margin": 1.0,
    }


def test_a_data_file_knows_its_length_and_path(tmp_path: Path) -> None:
    data = read_pairs(write_rows(tmp_path / "pairs.jsonl", toy_pairs(3)))
    assert isinstance(data, DataFile) and len(data) == 3 and data.path == tmp_path / "pairs.jsonl"
