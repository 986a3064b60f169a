"""Benchmark rows from local files in each release's own layout, or from a list of dicts, checked as they are read.

A benchmark's ``data`` is one of:

* a file: Parquet (``.parquet``, needs ``pyarrow``), JSON (``.json``: an array of objects, or JSON Lines as
  ``datasets``' ``to_json`` writes them) or JSON Lines (``.jsonl``);
* a directory: every such file under it, in sorted order (hidden files and folders skipped), as a Hugging Face
  dataset repository or its Parquet conversion lays them out (``data/test-00000-of-00001.parquet``,
  ``harmless/test-00000-of-00001.parquet``, ...);
* a list (or tuple) of row dicts.

Every row remembers where it came from, so that a missing column or a value of the wrong type is a
``ValueError`` naming the file, the row (counted from 0 within its file) and the column.
"""

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["SUFFIXES", "Data", "Row", "load_rows", "split_name", "subset_of"]

SUFFIXES = (".parquet", ".json", ".jsonl")
Data = str | os.PathLike[str] | Sequence[Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of a benchmark file, with typed accessors whose errors name the file, the row and the column.

    Attributes:
        values: the row's columns.
        source: the file it came from (``"data"`` for rows passed in memory).
        index: its position in that file, from 0.
        path: the file's path (``None`` for rows passed in memory); benchmarks whose release spreads subsets
            over files (HHH, MT-Bench, RewardBench's prior sets) read the subset from it.
    """

    values: Mapping[str, Any]
    source: str
    index: int
    path: Path | None = None

    def error(self, column: str, problem: str) -> ValueError:
        """A ``ValueError`` that names this row's file, row and ``column``."""
        return ValueError(f"{self.source}: row {self.index}: column {column!r}: {problem}")

    def get(self, column: str) -> Any:
        """The value of ``column``.

        Raises:
            ValueError: the row has no such column (or it is null).
        """
        value = self.values.get(column)
        if value is None:
            have = ", ".join(sorted(str(key) for key, given in self.values.items() if given is not None)) or "none"
            raise self.error(column, f"missing (the row has columns: {have})")
        return value

    def text(self, column: str) -> str:
        """The value of ``column``, which must be a string."""
        value = self.get(column)
        if not isinstance(value, str):
            raise self.error(column, f"expected text, got {_kind(value)}")
        return value

    def texts(self, column: str, *, length: int | None = None) -> list[str]:
        """The value of ``column``, which must be a non-empty list of strings (of ``length`` items if given)."""
        value = self.get(column)
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise self.error(column, f"expected a list of texts, got {_kind(value)}")
        if length is not None and len(value) != length:
            raise self.error(column, f"expected {length} texts, got {len(value)}")
        if not value:
            raise self.error(column, "expected at least one text, got an empty list")
        return list(value)

    def integer(self, column: str) -> int:
        """The value of ``column``, which must be an integer (not a bool)."""
        value = self.get(column)
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():  # JSON readers may widen integers
                return int(value)
            raise self.error(column, f"expected an integer, got {_kind(value)}")
        return value

    def messages(self, column: str) -> list[dict[str, str]]:
        """The value of ``column``, which must be a non-empty list of ``{"role", "content"}`` messages."""
        value = self.get(column)
        if not isinstance(value, (list, tuple)) or not value:
            raise self.error(column, f"expected a non-empty list of messages, got {_kind(value)}")
        for position, message in enumerate(value):
            if not (
                isinstance(message, Mapping)
                and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)
            ):
                raise self.error(column, f"message {position} is not a {{'role': str, 'content': str}} object")
        return [{"role": message["role"], "content": message["content"]} for message in value]


def _kind(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    return type(value).__name__


def split_name(path: Path | None, known: Iterable[str]) -> str | None:
    """The split or subset a file holds, read from its path: the first of ``known`` that is a folder on the path
    or the file's stem up to its first ``-`` (``human-00000-of-00001.parquet`` -> ``human``); else ``None``."""
    if path is None:
        return None
    names = set(known)
    for part in [path.name.split("-", 1)[0].split(".", 1)[0], *reversed(path.parent.parts)]:
        if part in names:
            return part
    return None


def subset_of(row: Row, known: Iterable[str]) -> str:
    """A row's subset where the release keeps subsets in separate files: the one of ``known`` named by its file's
    path (:func:`split_name`), else its ``subset`` column, else its file's name (``"all"`` in memory)."""
    named = split_name(row.path, known)
    if named is not None:
        return named
    if row.values.get("subset") is not None:
        return row.text("subset")
    return row.path.stem if row.path is not None else "all"


def _read_json(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        return rows
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: line {number} is not valid JSON ({error})") from None
    return rows


def _read_parquet(path: Path) -> list[Any]:
    try:
        import pyarrow.parquet
    except ImportError:
        raise ImportError(f"{path}: reading Parquet needs pyarrow; install it with: pip install pyarrow") from None
    try:
        return pyarrow.parquet.read_table(path).to_pylist()
    except (OSError, ValueError) as error:  # pyarrow.ArrowInvalid is a ValueError
        raise ValueError(f"{path}: not a readable Parquet file ({str(error).splitlines()[0]})") from None


def _read_file(path: Path) -> list[Row]:
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{path}: unknown file type {path.suffix or '(no suffix)'!r}; pass .parquet, .json or .jsonl")
    values = _read_parquet(path) if path.suffix == ".parquet" else _read_json(path)
    if not values:
        raise ValueError(f"{path}: the file is empty (no rows)")
    return [_row(value, str(path), index, path) for index, value in enumerate(values)]


def _row(value: Any, source: str, index: int, path: Path | None) -> Row:
    if not isinstance(value, Mapping):
        raise ValueError(f"{source}: row {index}: expected an object of named columns, got {_kind(value)}")
    return Row(dict(value), source, index, path)


def _files(directory: Path) -> list[Path]:
    files = [
        path
        for path in sorted(directory.rglob("*"))
        if path.is_file()
        and path.suffix in SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    ]
    if not files:
        raise ValueError(f"{directory}: the directory holds no .parquet, .json or .jsonl files")
    return files


def load_rows(data: Data) -> list[Row]:
    """The rows of ``data`` (a file, a directory of files, or a list of row dicts), in order.

    Raises:
        ValueError: no such path, an unknown file type, a file that does not parse, an empty file or list, or a
            row that is not an object.
        ImportError: a Parquet file without ``pyarrow`` installed.

    Example:
        >>> rows = load_rows([{"prompt": "2+2=", "chosen": "4", "rejected": "5"}])
        >>> rows[0].text("chosen"), rows[0].source
        ('4', 'data')
        >>> rows[0].text("subset")
        Traceback (most recent call last):
        ...
        ValueError: data: row 0: column 'subset': missing (the row has columns: chosen, prompt, rejected)
    """
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.exists():
            raise ValueError(f"{path}: no such file or directory")
        return [row for file in (_files(path) if path.is_dir() else [path]) for row in _read_file(file)]
    if isinstance(data, Mapping) or not isinstance(data, Sequence):
        raise ValueError(f"data must be a path or a list of row dicts, got {type(data).__name__}")
    if not data:
        raise ValueError("data: the list is empty (no rows)")
    return [_row(value, "data", index, None) for index, value in enumerate(data)]
