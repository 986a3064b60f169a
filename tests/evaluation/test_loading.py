"""Reading benchmark rows: the file types, directories, and errors that name the file, the row and the column."""

import re
from pathlib import Path

import pytest

from rmreg.evaluation import load_rows, run_benchmark
from rmreg.evaluation.loading import split_name

ROWS = [
    {"prompt": "Q1", "chosen": ["a", "b"], "rejected": "r", "subset": "x"},
    {"prompt": "Q2", "chosen": ["c", "d"], "rejected": "s", "subset": "y"},
]


@pytest.mark.parametrize("name", ["rows.parquet", "rows.json", "rows.jsonl"])
def test_every_file_type_reads_the_same_rows(tmp_path: Path, write, name: str) -> None:
    rows = load_rows(write(tmp_path / name, ROWS))
    assert [row.values for row in rows] == ROWS
    assert [(row.source, row.index, row.path) for row in rows] == [
        (str(tmp_path / name), i, tmp_path / name) for i in (0, 1)
    ]


def test_json_lines_in_a_json_file_as_datasets_to_json_writes_them(tmp_path: Path, write) -> None:
    path = write(tmp_path / "rows.jsonl", ROWS).rename(tmp_path / "rows.json")
    assert [row.values for row in load_rows(path)] == ROWS


def test_a_directory_reads_its_files_in_order_and_skips_hidden_ones(tmp_path: Path, write) -> None:
    write(tmp_path / "b" / "test-00000-of-00001.parquet", ROWS[1:])
    write(tmp_path / "a" / "test-00000-of-00001.jsonl", ROWS[:1])
    write(tmp_path / ".cache" / "junk.jsonl", [{"junk": 1}])
    (tmp_path / "README.md").write_text("# not data\n")
    rows = load_rows(tmp_path)
    assert [row.values for row in rows] == ROWS
    assert [row.path.parent.name for row in rows] == ["a", "b"]


def test_split_names_come_from_the_file_name_or_a_folder() -> None:
    known = ("human", "gpt4_pair", "harmless")
    assert split_name(Path("data/human-00000-of-00001.parquet"), known) == "human"
    assert split_name(Path("gpt4_pair.jsonl"), known) == "gpt4_pair"
    assert split_name(Path("hhh/harmless/test-00000-of-00001.parquet"), known) == "harmless"
    assert split_name(Path("data/test-00000-of-00001.parquet"), known) is None
    assert split_name(None, known) is None


def test_rows_in_memory_name_the_list_as_their_source() -> None:
    (row,) = load_rows([{"a": 1}])
    assert (row.source, row.index, row.path) == ("data", 0, None)


def _message(error: pytest.ExceptionInfo[ValueError]) -> str:
    return str(error.value)


def test_a_missing_column_names_the_file_the_row_and_the_column(tmp_path: Path, write) -> None:
    rows = [
        {"prompt": "Q", "chosen": "a", "rejected": "b", "subset": "x"},
        {"prompt": "Q", "chosen": "a", "subset": "x"},
    ]
    path = write(tmp_path / "rb.parquet", rows)
    with pytest.raises(ValueError) as error:
        run_benchmark("rewardbench", path, lambda items: [0.0] * len(items))
    assert _message(error).startswith(f"{path}: row 1: column 'rejected': missing")
    assert "chosen, prompt, subset" in _message(error)  # the columns the row has


def test_a_row_of_the_wrong_shape_names_the_file_the_row_and_the_column(tmp_path: Path, write) -> None:
    rows = [{"id": "1", "prompt": "Q", "chosen": ["a", "b", "c"], "rejected": ["d", "e"], "domain": "chat"}]
    path = write(tmp_path / "total_dataset.json", rows)
    with pytest.raises(ValueError, match=re.escape(f"{path}: row 0: column 'rejected': expected 3 texts, got 2")):
        run_benchmark("rm-bench", path, lambda items: [0.0] * len(items))
    rows[0]["rejected"] = "d"
    with pytest.raises(ValueError, match=re.escape("row 0: column 'rejected': expected a list of texts, got str")):
        run_benchmark("rm-bench", write(path, rows), lambda items: [0.0] * len(items))


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.json"])
def test_an_empty_file_is_an_error_naming_it(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("\n")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / name}: the file is empty (no rows)")):
        load_rows(tmp_path / name)


def test_an_empty_parquet_file_is_an_error_naming_it(tmp_path: Path) -> None:
    import pyarrow
    import pyarrow.parquet

    path = tmp_path / "empty.parquet"
    pyarrow.parquet.write_table(pyarrow.table({"prompt": pyarrow.array([], pyarrow.string())}), path)
    with pytest.raises(ValueError, match=re.escape("empty.parquet: the file is empty")):
        load_rows(path)


def test_other_bad_data(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("nowhere.jsonl: no such file or directory")):
        load_rows(tmp_path / "nowhere.jsonl")
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"unknown file type '\.csv'"):
        load_rows(tmp_path / "rows.csv")
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(ValueError, match=re.escape("bad.jsonl: line 2 is not valid JSON")):
        load_rows(tmp_path / "bad.jsonl")
    (tmp_path / "list.jsonl").write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(
        ValueError, match=re.escape("list.jsonl: row 1: expected an object of named columns, got a list")
    ):
        load_rows(tmp_path / "list.jsonl")
    (tmp_path / "garbage.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match=re.escape("garbage.parquet: not a readable Parquet file")):
        load_rows(tmp_path / "garbage.parquet")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match=re.escape("holds no .parquet, .json or .jsonl files")):
        load_rows(tmp_path / "nothing")
    with pytest.raises(ValueError, match="the list is empty"):
        load_rows([])
    with pytest.raises(ValueError, match="data must be a path or a list of row dicts"):
        load_rows({"prompt": "Q"})  # type: ignore[arg-type]
