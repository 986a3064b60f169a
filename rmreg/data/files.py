"""Reading preference data and texts to score from local files, every row checked before any model work.

Accepted: JSON Lines (``.jsonl``), JSON (``.json``: a list of objects, or JSON Lines), CSV (``.csv``, with a
header; ``*_ids`` cells as JSON lists, number cells as numbers, empty cells as absent), Parquet (``.parquet``,
needs ``pyarrow``) and a directory written by ``datasets``' ``save_to_disk`` (needs ``datasets``). Rows follow
TRL's formats (see :mod:`rmreg.data.rows`), one format per file.

Every error is a :class:`DataFileError` that names the file, where in it (``line N`` of a text file, counted as an
editor counts, or ``row N`` of a table, counted from 0 as ``dataset[N]``) and the field, in one line.

Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pairs.jsonl"
    >>> _ = path.write_text('{"chosen": "a", "rejected": "b"}\\n{"chosen": "a", "rejected": ""}\\n')
    >>> read_pairs(path)
    Traceback (most recent call last):
    ...
    rmreg.data.files.DataFileError: .../pairs.jsonl: line 2: field 'rejected': is empty; a response needs text
"""

import csv
import dataclasses
import importlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rmreg.data.encoding import TEXT_COLUMNS
from rmreg.data.rows import RowError, check_pair_row, check_text_row, numeric_columns

__all__ = ["FORMATS", "DataFile", "DataFileError", "read_pairs", "read_rows", "read_texts", "write_jsonl"]

FORMATS = "a .jsonl, .json, .csv or .parquet file, or a directory written by datasets' save_to_disk"


class DataFileError(ValueError):
    """A data file that cannot be used; the message names the file, the line (or row) and the field."""

    def __init__(self, path: str | os.PathLike[str], message: str, *, where: str | None = None) -> None:
        super().__init__(f"{path}: {where}: {message}" if where else f"{path}: {message}")
        self.path, self.where = str(path), where


@dataclasses.dataclass(frozen=True)
class DataFile:
    """The rows of one file, where each sits in it (``"line 7"``, ``"row 3"``), and their format."""

    path: Path
    rows: list[dict[str, Any]]
    where: list[str]
    format: str | None = None

    def __len__(self) -> int:
        return len(self.rows)


def _text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - raw.rfind(b"\n", 0, error.start)
        message = f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at column {column}); save the file as UTF-8"
        raise DataFileError(path, message, where=f"line {line}") from None
    return text.removeprefix("\ufeff")


def _json_lines(path: Path, text: str) -> tuple[list[Any], list[str]]:
    rows, where = [], []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise DataFileError(
                path, f"not valid JSON ({error.msg} at column {error.colno})", where=f"line {number}"
            ) from None
        where.append(f"line {number}")
    return rows, where


def _json_array(path: Path, text: str) -> tuple[list[Any], list[str]]:
    """The elements of a JSON array with the line each starts on (``json.loads`` would lose the lines)."""
    decoder, rows, where = json.JSONDecoder(), [], []
    line, counted = 1, 0

    def skip(index: int) -> int:
        while index < len(text) and text[index] in " \t\r\n":
            index += 1
        return index

    def line_of(index: int) -> int:
        nonlocal line, counted
        line, counted = line + text.count("\n", counted, index), index
        return line

    index = skip(skip(0) + 1)  # past "["
    while index < len(text) and text[index] != "]":
        try:
            value, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError as error:
            raise DataFileError(
                path, f"not valid JSON ({error.msg} at column {error.colno})", where=f"line {error.lineno}"
            ) from None
        rows.append(value)
        where.append(f"line {line_of(index)}")
        index = skip(end)
        if index < len(text) and text[index] == ",":
            index = skip(index + 1)
        elif index >= len(text) or text[index] != "]":
            raise DataFileError(
                path, "not valid JSON (expected ',' or ']' after a row)", where=f"line {line_of(index)}"
            )
    if index >= len(text) or skip(index + 1) != len(text):
        raise DataFileError(
            path,
            "not valid JSON (the list of rows is not closed by one ']')",
            where=f"line {line_of(min(index, len(text)))}",
        )
    return rows, where


def _csv_cell(field: str, cell: str) -> Any:
    if field.endswith("_ids"):
        try:
            return json.loads(cell)
        except json.JSONDecodeError:
            raise RowError(field, f"{cell[:40]!r} is not a JSON list of token ids such as [1, 2, 3]") from None
    if field in TEXT_COLUMNS:
        return cell
    for number in (int, float):
        try:
            return number(cell)
        except ValueError:
            pass
    return cell


def _csv(path: Path, text: str) -> tuple[list[Any], list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, where = [], []
    try:
        header = next(reader, None)
        if header is None:
            return [], []
        if len(set(header)) != len(header):
            raise DataFileError(path, f"the header repeats a column ({', '.join(header)})", where="line 1")
        start = reader.line_num + 1
        for cells in reader:
            here = f"line {start}"
            start = reader.line_num + 1
            if not cells:
                continue
            if len(cells) != len(header):
                raise DataFileError(path, f"{len(cells)} cells but the header has {len(header)}", where=here)
            try:
                rows.append(
                    {field: _csv_cell(field, cell) for field, cell in zip(header, cells, strict=True) if cell != ""}
                )
            except RowError as error:
                raise DataFileError(path, str(error), where=here) from None
            where.append(here)
    except csv.Error as error:
        raise DataFileError(path, f"not valid CSV ({error})", where=f"line {reader.line_num}") from None
    return rows, where


def _import(module: str, path: Path) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise DataFileError(path, f"reading it needs {package}; install it with: pip install {package}") from None


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _parquet(path: Path) -> list[Any]:
    parquet = _import("pyarrow.parquet", path)
    try:
        return parquet.read_table(path).to_pylist()
    except Exception as error:  # pyarrow's errors have no common base with a clear message
        raise DataFileError(path, f"cannot be read as Parquet ({_first_line(error)})") from None


def _saved_dataset(path: Path) -> list[Any]:
    datasets = _import("datasets", path)
    try:
        dataset = datasets.load_from_disk(str(path))
    except Exception as error:  # datasets raises FileNotFoundError, ValueError, pyarrow's errors, ...
        raise DataFileError(path, f"cannot be read as a saved dataset ({_first_line(error)})") from None
    if isinstance(dataset, datasets.DatasetDict):
        if len(dataset) != 1:
            raise DataFileError(path, f"holds the splits {', '.join(dataset)}; pass the directory of one split")
        (dataset,) = dataset.values()
    return dataset.to_list()


def read_rows(path: str | os.PathLike[str]) -> DataFile:
    """The rows of a local data file or saved dataset, with where each sits, not yet checked as pairs.

    Raises:
        DataFileError: no such path, an unknown format, bytes that are not UTF-8, a syntax error, no rows, or a
            row that is not an object.
    """
    path = Path(path)
    if not path.exists():
        raise DataFileError(path, f"no such file or directory; pass {FORMATS}")
    if path.is_dir():
        if not any((path / name).is_file() for name in ("dataset_info.json", "dataset_dict.json", "state.json")):
            raise DataFileError(path, f"a directory, but not a saved dataset (no dataset_info.json); pass {FORMATS}")
        rows = _saved_dataset(path)
        where = [f"row {index}" for index in range(len(rows))]
    elif path.suffix == ".parquet":
        rows = _parquet(path)
        where = [f"row {index}" for index in range(len(rows))]
    elif path.suffix in (".jsonl", ".json", ".csv"):
        text = _text(path)
        if path.suffix == ".csv":
            rows, where = _csv(path, text)
        elif path.suffix == ".json" and text.lstrip().startswith("["):
            rows, where = _json_array(path, text)
        else:
            rows, where = _json_lines(path, text)
    else:
        raise DataFileError(path, f"unknown file type {path.suffix or '(no suffix)'!r}; pass {FORMATS}")
    if not rows:
        raise DataFileError(path, "holds no rows; pass a file with at least one example")
    for row, here in zip(rows, where, strict=True):
        if not isinstance(row, Mapping):
            raise DataFileError(
                path, f"a row must be an object with named fields, got {type(row).__name__}", where=here
            )
    return DataFile(path, [dict(row) for row in rows], where)


def _more_bad_rows(rows: Sequence[Any]) -> str:
    """`` (and N more rows with problems)`` for the rows after a bad one, so that one run tells how many to fix."""
    bad = 0
    for row in rows:
        try:
            check_pair_row(row)
        except RowError:
            bad += 1
    return f" (and {bad} more row{'s' if bad > 1 else ''} with problems after it)" if bad else ""


def read_pairs(path: str | os.PathLike[str]) -> DataFile:
    """Preference rows of a local file, every row checked (see :mod:`rmreg.data.rows`), one format per file.

    Raises:
        DataFileError: the file cannot be read, a row is unusable, the file mixes formats, or a per-pair number
            column is given on some rows but not on others; the message names the line (or row) and the field.
    """
    data = read_rows(path)
    formats: dict[str, str] = {}
    columns: dict[str, str] = {}  # number column -> where it is first given
    for index, (row, here) in enumerate(zip(data.rows, data.where, strict=True)):
        try:
            formats.setdefault(check_pair_row(row), here)
        except RowError as error:
            raise DataFileError(data.path, f"{error}{_more_bad_rows(data.rows[index + 1 :])}", where=here) from None
        if len(formats) > 1:
            (first, first_where), (kind, _) = formats.items()
            message = f"{kind} rows after {first} rows ({first_where}); one file holds one format"
            raise DataFileError(data.path, message, where=here)
        for column in numeric_columns(row):
            columns.setdefault(column, here)
    for column, first in columns.items():
        for row, here in zip(data.rows, data.where, strict=True):
            if row.get(column) is None:
                message = f"field {column!r}: missing, but given on {first}; give it on every row or on none"
                raise DataFileError(data.path, message, where=here)
    return dataclasses.replace(data, format=next(iter(formats)))


def read_texts(path: str | os.PathLike[str]) -> list[tuple[Any, Any] | list[Any]]:
    """Items to score (see :func:`~rmreg.data.rows.check_text_row`) from a local file.

    Raises:
        DataFileError: the file cannot be read, or a row has no (or an empty) ``response``/``messages``.
    """
    data = read_rows(path)
    items = []
    for row, here in zip(data.rows, data.where, strict=True):
        try:
            items.append(check_text_row(row))
        except RowError as error:
            raise DataFileError(data.path, str(error), where=here) from None
    return items


def write_jsonl(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as JSON Lines (UTF-8, one object a line), atomically (a temporary file, then a rename)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text("".join(json.dumps(dict(row), ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    os.replace(partial, path)
    return path
