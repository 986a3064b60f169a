"""Fuzzing: malformed rows in every supported file type never give the user a traceback.

Rows are valid rows of TRL's three formats with a field or two replaced by a value of any kind, or removed
(missing, null, empty, NaN, negative or huge ids, floats, strings where lists belong, messages without roles or
content), and a few non-objects, written as
JSON Lines, JSON, CSV, Parquet and a saved dataset, and given to ``rmreg data check --model DIR``, which reads,
checks, tokenizes, checks the ids against the vocabulary and truncates exactly as ``rmreg train`` does before it
loads the model (``rmreg.data.files.read_pairs`` then ``rmreg.data.examples.encode_pairs``). Either the file is
accepted (exit 0) or one line names it (exit 2); any other exception fails the test.
"""

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

FIELDS = ["prompt", "chosen", "rejected", "chosen_ids", "rejected_ids", "prompt_ids", "margin", "tie", "tools"]
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
WORDS = st.text(alphabet="abc <|>\n\t{}%", min_size=1, max_size=40)  # plain text, and a few template characters
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 10**9), st.floats(allow_nan=True, allow_infinity=True), TEXT
)
MESSAGES = st.lists(
    st.dictionaries(
        st.sampled_from(["role", "content", "name"]),
        st.one_of(st.sampled_from(["user", "assistant", ""]), TEXT, SCALARS),
        max_size=3,
    ),
    max_size=3,
)
IDS = st.lists(st.one_of(st.integers(-2, 300), st.floats(allow_nan=True), TEXT, st.booleans()), max_size=5)
VALUES = st.one_of(SCALARS, MESSAGES, IDS, TEXT)
_message = lambda role: st.builds(lambda text: [{"role": role, "content": text}], WORDS)  # noqa: E731
_token_ids = st.lists(st.integers(0, 90), min_size=1, max_size=30)
VALID = st.one_of(  # one row of each of TRL's formats, as a file would hold it
    st.fixed_dictionaries({"chosen": WORDS, "rejected": WORDS}, optional={"prompt": WORDS, "margin": st.floats(-5, 5)}),
    st.fixed_dictionaries(
        {"chosen": _message("assistant"), "rejected": _message("assistant")}, optional={"prompt": _message("user")}
    ),
    st.fixed_dictionaries({"chosen_ids": _token_ids, "rejected_ids": _token_ids}, optional={"prompt_ids": _token_ids}),
)
_GONE = object()
MUTATIONS = st.lists(st.tuples(st.sampled_from(FIELDS), st.one_of(VALUES, st.just(_GONE))), max_size=2)


def _mutated(row: dict[str, Any], mutations: list[tuple[str, Any]]) -> dict[str, Any]:
    row = dict(row)
    for field, value in mutations:
        if value is _GONE:
            row.pop(field, None)
        else:
            row[field] = value
    return row


ROW = st.builds(_mutated, VALID, MUTATIONS)  # mostly valid rows with a field or two broken
ROWS = st.lists(ROW, max_size=4)
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck))  # examples: the profile's (ci: 30)


def _check(cli, model_dir: Path, path: Path) -> None:
    code, out, err = cli.run(["data", "check", str(path), "--model", str(model_dir), "--max-length", "24"])
    assert "Traceback" not in out + err
    event("accepted" if code == 0 else f"refused: {err.split(': ', 3)[-1][:30]}")
    if code == 0:
        assert err == "" and out.startswith(f"{path}: ")
    else:
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith(f"rmreg: error: {path}"), err


def _plain(value: Any) -> Any:
    """A value tables can hold in one column alongside others: JSON text for anything nested."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def _table(rows: list[Any]) -> list[dict[str, Any]]:
    """Rows a table can hold: objects, each column of one type (JSON text where the kinds differ)."""
    rows = [row for row in rows if isinstance(row, dict)]
    for field in {key for row in rows for key in row}:
        kinds = {type(row[field]) for row in rows if row.get(field) is not None}
        if len(kinds) > 1:
            for row in rows:
                if row.get(field) is not None:
                    row[field] = json.dumps(row[field]) if not isinstance(row[field], str) else row[field]
    return rows


@given(rows=st.one_of(ROWS, ROWS, st.lists(st.one_of(ROW, SCALARS, IDS), max_size=4)))
@FUZZ
def test_json_lines_and_json(rows: list[Any], cli, model_dir: Path) -> None:
    directory = Path(tempfile.mkdtemp())
    lines = directory / "rows.jsonl"
    lines.write_text("".join(json.dumps(row) + "\n" for row in rows))
    _check(cli, model_dir, lines)
    array = directory / "rows.json"
    array.write_text(json.dumps(rows, indent=1))
    _check(cli, model_dir, array)


@given(rows=ROWS, junk=st.binary(max_size=12), where=st.floats(0, 1))
@FUZZ
def test_corrupted_bytes_in_text_files(rows: list[Any], junk: bytes, where: float, cli, model_dir: Path) -> None:
    directory = Path(tempfile.mkdtemp())
    for suffix in (".jsonl", ".json", ".csv"):
        path = directory / f"rows{suffix}"
        cli.write_rows(path, _table(rows) or [{"chosen": "a", "rejected": "b"}])
        data = path.read_bytes()
        cut = int(where * len(data))
        path.write_bytes(data[:cut] + junk + data[cut:])
        _check(cli, model_dir, path)


@given(rows=ROWS)
@FUZZ
def test_csv(rows: list[Any], cli, model_dir: Path) -> None:
    rows = [{key: _plain(value) for key, value in row.items()} for row in _table(rows)]
    assume(rows and any(rows))
    _check(cli, model_dir, cli.write_rows(Path(tempfile.mkdtemp()) / "rows.csv", rows))


@pytest.mark.parametrize("suffix", [".parquet", ""])
@given(rows=ROWS)
@FUZZ
def test_parquet_and_saved_datasets(suffix: str, rows: list[Any], cli, model_dir: Path) -> None:
    rows = _table(rows)
    assume(rows and any(rows))
    try:
        path = cli.write_rows(Path(tempfile.mkdtemp()) / f"rows{suffix or '_dataset'}", rows)
    except Exception:  # rows that pyarrow cannot write as a table (its errors have no common base): no file
        assume(False)
    _check(cli, model_dir, path)
