"""Writing rows as data files in every format rmreg reads (shared by the data and command-line tests)."""

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from rmreg.data.files import write_jsonl


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` in the format of ``path``'s suffix (no suffix: a saved dataset directory)."""
    if path.suffix == ".jsonl":
        write_jsonl(path, rows)
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows, indent=1))
    elif path.suffix == ".csv":
        with path.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".parquet":
        pyarrow = pytest.importorskip("pyarrow")
        pytest.importorskip("pyarrow.parquet").write_table(pyarrow.Table.from_pylist(rows), path)
    else:
        pytest.importorskip("datasets").Dataset.from_list(rows).save_to_disk(str(path))
    return path
