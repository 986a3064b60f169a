"""Shared helpers of the benchmark tests: writing rows in the releases' file types, and a scorer read off a table."""

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

Rows = Sequence[Mapping[str, Any]]


def _write(path: Path, rows: Rows) -> Path:
    """Write ``rows`` to ``path`` as its suffix says: Parquet (pyarrow), a JSON array, or JSON Lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow
        import pyarrow.parquet

        pyarrow.parquet.write_table(pyarrow.Table.from_pylist(list(rows)), path)
    elif path.suffix == ".json":
        path.write_text(json.dumps(list(rows), indent=1))
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def write() -> Callable[[Path, Rows], Path]:
    """``write(path, rows)``: the rows in the file type of ``path``'s suffix; returns the path."""
    return _write


class TableScorer:
    """A scorer that looks each item's response up in a table (the last message of a conversation), and records
    the items and the batches it was called with."""

    def __init__(self, rewards: Mapping[str, float]) -> None:
        self.rewards = dict(rewards)
        self.items: list[Any] = []
        self.batches: list[int] = []

    def __call__(self, items: list[Any]) -> list[float]:
        self.items += items
        self.batches.append(len(items))
        return [self.rewards[item[1] if isinstance(item, tuple) else item[-1]["content"]] for item in items]


@pytest.fixture
def table_scorer() -> type[TableScorer]:
    """The :class:`TableScorer` class: ``table_scorer({"response": reward, ...})``."""
    return TableScorer
