"""Reading preference data and texts to score from local files, with the columns checked up front.

Accepted: JSON Lines (``.jsonl``), JSON (``.json``: a list of objects, or JSON Lines), CSV (``.csv``), Parquet
(``.parquet``, needs ``pyarrow``) and a directory written by ``datasets``' ``save_to_disk`` (needs ``datasets``).
Preference rows follow TRL's formats: standard (``prompt`` optional, ``chosen``, ``rejected`` as text),
conversational (the same columns as lists of ``{"role", "content"}`` messages) or pre-tokenized
(``chosen_ids``, ``rejected_ids``, optional ``prompt_ids``); ``margin``, ``ref_chosen_logps`` and
``ref_rejected_logps`` are optional.
"""

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rmreg.cli.errors import CLIError
from rmreg.data import EncodedPair, encode_pair

__all__ = ["encode_pairs", "read_pairs", "read_rows", "read_texts"]

_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
_FORMATS = "a .jsonl, .json, .csv or .parquet file, or a directory written by datasets' save_to_disk"
_PAIR_COLUMNS = (("chosen", "rejected"), ("chosen_ids", "rejected_ids"))
_OPTIONAL_FLOATS = ("margin", "ref_chosen_logps", "ref_rejected_logps")


def _read_json(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    # An empty cell of an optional number column means "not given".
    return [{key: value for key, value in row.items() if not (key in _OPTIONAL_FLOATS and value == "")} for row in rows]


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet
    except ImportError:
        raise CLIError(f"{path}: reading Parquet needs pyarrow; install it with: pip install pyarrow") from None
    return pyarrow.parquet.read_table(path).to_pylist()


def _read_saved_dataset(path: Path) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise CLIError(
            f"{path}: reading a saved dataset needs datasets; install it with: pip install datasets"
        ) from None
    dataset = datasets.load_from_disk(str(path))
    if isinstance(dataset, datasets.DatasetDict):
        if len(dataset) != 1:
            raise CLIError(
                f"{path} holds the splits {', '.join(dataset)}; pass the directory of one split "
                "(e.g. dataset_dict['train'].save_to_disk(DIR))"
            )
        (dataset,) = dataset.values()
    return dataset.to_list()


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a local data file or saved dataset, as dicts.

    Raises:
        CLIError: the path does not exist, has an unknown format, cannot be parsed, holds no rows, or holds
            something other than objects.
    """
    path = Path(path)
    if not path.exists():
        raise CLIError(f"{path}: no such file or directory; pass {_FORMATS}")
    try:
        if path.is_dir():
            if not (path / "dataset_info.json").is_file() and not (path / "dataset_dict.json").is_file():
                raise CLIError(f"{path} is a directory but not a saved dataset (no dataset_info.json); pass {_FORMATS}")
            rows = _read_saved_dataset(path)
        elif path.suffix in (".jsonl", ".json"):
            rows = _read_json(path)
        elif path.suffix == ".csv":
            rows = _read_csv(path)
        elif path.suffix == ".parquet":
            rows = _read_parquet(path)
        else:
            raise CLIError(f"{path}: unknown file type {path.suffix or '(no suffix)'!r}; pass {_FORMATS}")
    except (ValueError, OSError) as error:  # json.JSONDecodeError, csv.Error and pyarrow's errors among them
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CLIError(f"{path}: cannot be read as {path.suffix or 'a dataset'} ({first_line})") from None
    if not rows:
        raise CLIError(f"{path} holds no rows; pass a file with at least one example")
    if not all(isinstance(row, Mapping) for row in rows):
        raise CLIError(f"{path}: every row must be an object with named columns (JSON objects, CSV with a header)")
    return [dict(row) for row in rows]


def _columns(rows: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(sorted({key for row in rows for key in row})) or "none"


def read_pairs(path: str | Path) -> list[dict[str, Any]]:
    """Preference examples of a local file, every row checked for the columns of one of TRL's formats.

    Raises:
        CLIError: the file cannot be read, or a row lacks ``chosen``/``rejected`` (or ``chosen_ids``/
            ``rejected_ids``).
    """
    rows = read_rows(path)
    for index, row in enumerate(rows):
        if not any(all(column in row for column in pair) for pair in _PAIR_COLUMNS):
            raise CLIError(
                f"{path}: row {index} has columns {_columns([row])}, but preference data needs 'chosen' and "
                "'rejected' (text or message lists, optional 'prompt') or 'chosen_ids' and 'rejected_ids'; "
                "rename the columns to TRL's standard format"
            )
    return rows


def encode_pairs(tokenizer: Any, rows: Sequence[Mapping[str, Any]], source: str) -> list[dict[str, Any]]:
    """Tokenize preference rows once, up front, as pre-tokenized examples for :class:`~rmreg.PairCollator`.

    Args:
        tokenizer: the model's tokenizer.
        rows: rows from :func:`read_pairs`.
        source: where the rows came from, for error messages.

    Raises:
        CLIError: a row the collator cannot use (mixed formats, empty response, conversational data without a
            chat template), naming the row.
    """
    encoded = []
    for index, row in enumerate(rows):
        try:
            pair: EncodedPair = encode_pair(tokenizer, row)
        except (ValueError, TypeError) as error:
            raise CLIError(f"{source}: row {index}: {error}") from None
        example: dict[str, Any] = {
            "prompt_ids": list(pair.prompt_ids),
            "chosen_ids": list(pair.chosen_ids),
            "rejected_ids": list(pair.rejected_ids),
        }
        example.update({key: getattr(pair, key) for key in _OPTIONAL_FLOATS if getattr(pair, key) is not None})
        encoded.append(example)
    return encoded


def read_texts(path: str | Path) -> list[tuple[Any, Any] | list[dict[str, Any]]]:
    """Items to score: ``(prompt, response)`` from ``prompt`` (optional) and ``response`` columns (both text or
    both message lists), or a conversation from a ``messages`` column (its last message is scored).

    Raises:
        CLIError: the file cannot be read, or a row has neither ``response`` nor ``messages``.
    """
    items: list[tuple[Any, Any] | list[dict[str, Any]]] = []
    for index, row in enumerate(read_rows(path)):
        response = row.get("response")
        if isinstance(response, (str, list)):
            items.append((row.get("prompt") or ("" if isinstance(response, str) else []), response))
        elif isinstance(row.get("messages"), list):
            items.append(row["messages"])
        else:
            raise CLIError(
                f"{path}: row {index} has columns {_columns([row])}; texts to score need a 'response' column "
                "(and optional 'prompt') or a 'messages' column (a conversation)"
            )
    return items
