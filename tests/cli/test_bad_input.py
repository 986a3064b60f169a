"""Every bad input of issue #15 (B) gives exit code 2 and one line naming the file, line and field, before any
model work (``no_model_work`` makes loading a model an error that is not bad input, so it would show here)."""

import json
from pathlib import Path

import pytest

from rmreg.testing import tiny_tokenizer, toy_pairs

GOOD = {"prompt": "Q", "chosen": "aei", "rejected": "xyz"}
CHAT = {
    "prompt": [{"role": "user", "content": "Q"}],
    "chosen": [{"role": "assistant", "content": "aei"}],
    "rejected": [{"role": "assistant", "content": "xyz"}],
}


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize(
    ("bad_row", "expected"),
    [
        ({**GOOD, "chosen": ""}, "line 3: field 'chosen': is empty"),
        ({**GOOD, "rejected": "   "}, "line 3: field 'rejected': holds only whitespace"),
        ({**GOOD, "rejected": "aei"}, "line 3: field 'rejected': equals 'chosen'"),
        ({**CHAT, "chosen": [{"role": "assistant"}]}, "line 3: field 'chosen': message 0 has no 'content'"),
        ({**CHAT, "chosen": [{"content": "hi"}]}, "line 3: field 'chosen': message 0 has no 'role'"),
        ({**GOOD, "prompt": None}, "line 3: field 'prompt': is null"),
        (CHAT, "line 3: conversational rows after text rows (line 1); one file holds one format"),
        ({**GOOD, "chosen": 7}, "line 3: field 'chosen': must be text or a list of"),
        ({**GOOD, "margin": float("nan")}, "line 3: field 'margin': is nan; per-pair numbers must be finite"),
        ({**GOOD, "margin": "1.5"}, "line 3: field 'margin': must be a number, got '1.5' (str)"),
        (
            {"chosen_ids": [5, -1], "rejected_ids": [6]},
            "line 3: field 'chosen_ids': token 1 is -1; token ids are non-negative",
        ),
        ({"chosen_ids": "5 6", "rejected_ids": [6]}, "line 3: field 'chosen_ids': must be a list of token ids"),
        ({"chosen_ids": [5, 1.5], "rejected_ids": [6]}, "line 3: field 'chosen_ids': token 1 is 1.5 (float)"),
        ({"chosen_ids": [5, True], "rejected_ids": [6]}, "line 3: field 'chosen_ids': token 1 is True (bool)"),
        ({"question": "Q", "good": "a"}, "line 3: no 'chosen' and no 'rejected' (fields: question, good)"),
        ([1, 2], "line 3: a row must be an object with named fields, got list"),
    ],
)
def test_a_bad_row_is_refused_naming_file_line_and_field(
    bad_row: object, expected: str, model_dir: Path, tmp_path: Path, cli, no_model_work
) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in [GOOD, {**GOOD, "chosen": "ou"}, bad_row, GOOD]) + "\n")
    line = cli.error_line(["train", str(model_dir), str(path), "--output-dir", str(tmp_path / "o")])
    assert line.startswith(f"{path}: {expected}"), line


def test_the_line_of_a_malformed_json_line_is_the_files_line(
    model_dir: Path, tmp_path: Path, cli, no_model_work
) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + json.dumps(GOOD) + "\n" + '{"chosen": "a", "rejected": \n')
    line = cli.error_line(["train", "--model", str(model_dir), "--data", str(path)])
    assert line == f"{path}: line 4: not valid JSON (Expecting value at column 29)"
    array = tmp_path / "pairs.json"
    array.write_text('[\n  {"chosen": "a", "rejected": "b"},\n  {"chosen": "a", "rejected": "c"}\n  {"chosen": 1}\n]')
    assert cli.error_line(["train", str(model_dir), str(array)]) == (
        f"{array}: line 4: not valid JSON (expected ',' or ']' after a row)"
    )


def test_non_utf8_bytes_report_the_line(model_dir: Path, tmp_path: Path, cli, no_model_work) -> None:
    for suffix in (".jsonl", ".csv", ".json"):
        path = tmp_path / f"pairs{suffix}"
        path.write_bytes(b'{"a": 1}\n' + b'{"chosen": "caf\xe9", "rejected": "b"}\n')
        line = cli.error_line(["train", str(model_dir), str(path)])
        assert line == f"{path}: line 2: not valid UTF-8 (byte 0xe9 at column 16); save the file as UTF-8"


def test_token_ids_outside_the_vocabulary_are_refused(model_dir: Path, tmp_path: Path, cli, no_model_work) -> None:
    vocabulary = len(tiny_tokenizer())
    path = _jsonl(tmp_path / "ids.jsonl", [{"chosen_ids": [1, 5], "rejected_ids": [1, vocabulary]}])
    line = cli.error_line(["train", str(model_dir), str(path)])
    assert line == (
        f"{path}: line 1: field 'rejected_ids': token id {vocabulary} is outside the model's vocabulary of {vocabulary}"
    )
    one_token = _jsonl(tmp_path / "short.jsonl", [{"chosen_ids": [5], "rejected_ids": [1, 6]}])
    assert "one token and no prompt" in cli.error_line(["train", str(model_dir), str(one_token)])


def test_max_length_beyond_the_models_positions_is_refused(model_dir: Path, tmp_path: Path, cli, no_model_work) -> None:
    data = _jsonl(tmp_path / "pairs.jsonl", [GOOD])
    line = cli.error_line(["train", str(model_dir), str(data), "--max-length", str(cli.POSITIONS + 1)])
    assert line == (
        f"--max-length {cli.POSITIONS + 1} is beyond the {cli.POSITIONS} positions of the model (llama); pass "
        f"--max-length {cli.POSITIONS} or less"
    )


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT (an encoder) saved with a tokenizer, as a user might pass it to --model."""
    from transformers import BertConfig, BertForMaskedLM

    path = tmp_path_factory.mktemp("bert")
    tokenizer = tiny_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    BertForMaskedLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_an_encoder_model_is_refused_before_training(encoder_dir: Path, tmp_path: Path, cli, monkeypatch) -> None:
    data = _jsonl(tmp_path / "pairs.jsonl", toy_pairs(4))
    monkeypatch.setattr("rmreg.cli.train_runs.train", lambda *a, **k: pytest.fail("training started"))
    line = cli.error_line(["train", str(encoder_dir), str(data), "--output-dir", str(tmp_path / "o")])
    assert line == (
        f"{encoder_dir.resolve()} holds a bert model that attends to later tokens (an encoder, not a decoder), so it "
        "cannot be trained as a causal LM; pass a decoder-only causal LM (Llama, Qwen, Gemma, GPT-2, ...)"
    )
    t5 = tmp_path / "t5"
    t5.mkdir()
    (t5 / "config.json").write_text(json.dumps({"model_type": "t5", "is_encoder_decoder": True}))
    assert "an encoder-decoder model (t5)" in cli.error_line(["train", str(t5), str(data)])


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--objective", ","], "--objective ',' names no objective; pass one of bt, "),
        (["--objective", "bt,dpo"], "unknown objective 'dpo'; choose from bt, "),
        (["--alpha", "1"], "argument --alpha: α = 1 leaves no Bradley–Terry term"),
        (["--alpha", "2"], "argument --alpha: expected α in [0, 1)"),
        (["--alpha", "nan"], "argument --alpha: expected α in [0, 1), got 'nan'"),
        (["--max-length", "1"], "argument --max-length: expected an integer ≥ 2"),
        (["--lr", "inf"], "argument --lr: expected a finite positive number, got 'inf'"),
        (["--lr", "0"], "argument --lr: expected a finite positive number, got '0'"),
        (["--beta", "-1"], "argument --beta: expected a finite positive number"),
        (["--seed", "-1"], "argument --seed: expected an integer ≥ 0"),
        (["--epochs", "0"], "argument --epochs: expected a positive integer"),
        (["--eval-data", "x.jsonl"], "--eval-data needs --data"),
    ],
)
def test_bad_options_are_refused(options: list[str], expected: str, tmp_path: Path, cli, no_model_work) -> None:
    assert cli.error_line(["train", *options, "--output-dir", str(tmp_path / "o")]).startswith(expected)


def test_model_and_data_given_twice_or_too_many_positionals(model_dir: Path, tmp_path: Path, cli) -> None:
    data = str(_jsonl(tmp_path / "pairs.jsonl", [GOOD]))
    assert cli.error_line(["train", str(model_dir), "--model", str(tmp_path)]).startswith("MODEL given twice")
    assert cli.error_line(["train", str(model_dir), data, data]).startswith("rmreg train takes at most MODEL and DATA")


def test_output_dir_problems_are_refused_up_front(model_dir: Path, tmp_path: Path, cli, no_model_work) -> None:
    data = str(_jsonl(tmp_path / "pairs.jsonl", [GOOD]))
    file = tmp_path / "a_file"
    file.write_text("")
    base = ["train", str(model_dir), data, "--output-dir"]
    assert cli.error_line([*base, str(file)]) == f"--output-dir {file} is a file; pass a directory"
    inside = f"--output-dir {file / 'out'} is inside {file}, which is a file; pass a directory"
    assert cli.error_line([*base, str(file / "out")]) == inside
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):
        line = cli.error_line([*base, str(other), *extra])
        assert line == f"--output-dir {other} holds other files and no rmreg run; pass a new or empty directory"
    assert (other / "notes.txt").read_text() == "mine"


def test_an_output_dir_that_cannot_be_written_is_refused_up_front(
    model_dir: Path, tmp_path: Path, cli, no_model_work, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    def read_only(*args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")  # what a read-only directory gives (root may write anywhere)

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    data = str(_jsonl(tmp_path / "pairs.jsonl", [GOOD]))
    line = cli.error_line(["train", str(model_dir), data, "--output-dir", str(tmp_path / "new" / "out")])
    assert (
        line == f"--output-dir {tmp_path / 'new' / 'out'}: cannot write in {tmp_path} (Permission denied); pass another"
    )


def test_files_are_checked_before_the_model_loads(model_dir: Path, tmp_path: Path, cli, no_model_work) -> None:
    missing = tmp_path / "missing.jsonl"
    assert cli.error_line(["train", "--data", str(missing)]).startswith(f"{missing}: no such file or directory")
    good = str(_jsonl(tmp_path / "good.jsonl", [GOOD]))
    bad_eval = _jsonl(tmp_path / "eval.jsonl", [{**GOOD, "rejected": ""}])
    line = cli.error_line(["train", str(tmp_path / "no-model"), good, "--eval-data", str(bad_eval)])
    assert line.startswith(f"{bad_eval}: line 1: field 'rejected'")  # the data, although the model is missing too
    assert cli.error_line(["train", str(tmp_path / "no-model"), good]).startswith(
        f"{tmp_path / 'no-model'}: no such directory"
    )
    (tmp_path / "x.txt").write_text("")
    assert "unknown file type '.txt'" in cli.error_line(["train", str(model_dir), str(tmp_path / "x.txt")])
    assert "is a file, not a directory" in cli.error_line(["train", good, good])


def test_a_model_directory_without_tokenizer_or_config(tmp_path: Path, cli, no_model_work) -> None:
    from rmreg.testing import tiny_causal_lm

    good = str(_jsonl(tmp_path / "good.jsonl", [GOOD]))
    tiny_causal_lm().save_pretrained(tmp_path / "lm")
    assert "has no tokenizer" in cli.error_line(["train", str(tmp_path / "lm"), good])
    (tmp_path / "empty").mkdir()
    assert "has no config.json" in cli.error_line(["train", str(tmp_path / "empty"), good])


def test_margin_objective_needs_a_margin_column(model_dir: Path, tmp_path: Path, cli, no_model_work) -> None:
    good = str(_jsonl(tmp_path / "good.jsonl", [GOOD]))
    line = cli.error_line(["train", str(model_dir), good, "--objective", "margin"])
    assert line == "objective 'margin' needs a 'margin' column in every training row; add one or pick another"
    partial = _jsonl(tmp_path / "partial.jsonl", [{**GOOD, "margin": 1.0}, GOOD])
    assert cli.error_line(["train", str(model_dir), str(partial)]) == (
        f"{partial}: line 2: field 'margin': missing, but given on line 1; give it on every row or on none"
    )


def test_score_refuses_an_empty_response_and_bad_files(builtin_run, tmp_path: Path, cli) -> None:
    checkpoint = str(builtin_run[0] / "bt")
    assert (
        cli.error_line(["score", checkpoint, "--response", ""])
        == "--response number 1: is empty; a response needs text"
    )
    assert "nothing to score" in cli.error_line(["score", checkpoint])
    texts = _jsonl(tmp_path / "texts.jsonl", [{"response": "fine"}, {"prompt": None, "response": "x"}])
    line = cli.error_line(["score", checkpoint, "--file", str(texts)])
    assert (
        line
        == f"{texts}: line 2: field 'prompt': is null; give the prompt (\"\" or [] for none) or leave the field out"
    )
    assert "no such directory" in cli.error_line(["score", str(tmp_path / "nowhere"), "--response", "a"])
    assert "beyond the 256 positions" in cli.error_line(["score", checkpoint, "--response", "a", "--max-length", "999"])


def test_bench_and_data_commands_refuse_bad_input(tmp_path: Path, cli) -> None:
    assert "--script" in cli.error_line(["bench", "--script", str(tmp_path / "missing.py")])
    (tmp_path / "file").write_text("")
    assert cli.error_line(["data", "export", "--output-dir", str(tmp_path / "file")]).endswith(
        "is a file; pass a directory"
    )
    assert "needs --model" in cli.error_line(["data", "check", str(tmp_path / "file"), "--max-length", "8"])
    assert "unknown command" not in cli.error_line(["nope"])
