"""Checking preference rows and rows to score before any tokenization, one row at a time.

A preference row is in one of TRL's formats (see :mod:`rmreg.data.encoding`): ``"text"`` (``chosen`` and
``rejected`` strings, optional ``prompt``), ``"conversational"`` (lists of ``{"role", "content"}`` messages) or
``"tokenized"`` (``chosen_ids`` and ``rejected_ids``, optional ``prompt_ids``). :func:`check_pair_row` returns the
format or raises :class:`RowError` naming the field; :mod:`rmreg.data.files` adds the file and the line.

Refused, not dropped (a silent drop would change what a model trains on): an empty or whitespace-only response,
``chosen`` equal to ``rejected``, a message without a text ``content`` or ``role``, a ``null`` prompt, a prompt in
another format than its responses, token ids that are not a list of non-negative integers, and a per-pair number
(``margin``, ``ref_chosen_logps``, ...) that is not a finite number.

Example:
    >>> check_pair_row({"prompt": "2+2=", "chosen": "4", "rejected": "5"})
    'text'
    >>> check_pair_row({"chosen": "4", "rejected": "4"})
    Traceback (most recent call last):
    ...
    rmreg.data.rows.RowError: field 'rejected': equals 'chosen'; a pair needs two different responses
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rmreg.data.encoding import TEXT_COLUMNS

__all__ = ["NUMBER_COLUMNS", "RowError", "check_pair_row", "check_text_row", "cut_long_texts", "numeric_columns"]

NUMBER_COLUMNS = ("margin", "ref_chosen_logps", "ref_rejected_logps")
"""Per-pair columns that rmreg's objectives read, which must hold a finite number where given."""

_FORMATS = (
    "preference data needs 'chosen' and 'rejected' (text, or lists of {'role', 'content'} messages; optional "
    "'prompt') or 'chosen_ids' and 'rejected_ids' (token ids; optional 'prompt_ids'), as in TRL's formats"
)


class RowError(ValueError):
    """A row that cannot be used, with the ``field`` at fault (``None``: the row as a whole)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"field {field!r}: {message}" if field else message)
        self.field = field


def _type(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _check_ids(row: Mapping[str, Any], field: str, *, required: bool) -> None:
    if field not in row:
        if required:
            raise RowError(field, f"missing; {_FORMATS}")
        return
    ids = row[field]
    if not isinstance(ids, (list, tuple)):
        raise RowError(field, f"must be a list of token ids (non-negative integers), got {_type(ids)}")
    for position, token in enumerate(ids):
        if isinstance(token, bool) or not isinstance(token, int):
            raise RowError(field, f"token {position} is {token!r} ({_type(token)}); token ids are integers")
        if token < 0:
            raise RowError(field, f"token {position} is {token}; token ids are non-negative")
    if required and not ids:
        raise RowError(field, "is empty; a response needs at least one token")


def _check_messages(messages: Sequence[Any], field: str) -> None:
    for position, message in enumerate(messages):
        where = f"message {position}"
        if not isinstance(message, Mapping):
            raise RowError(field, f"{where} is {_type(message)}; messages are {{'role', 'content'}} objects")
        if not isinstance(message.get("role"), str) or not message["role"]:
            raise RowError(field, f"{where} has no 'role' (a string such as 'user' or 'assistant')")
        if "content" not in message:
            raise RowError(field, f"{where} has no 'content'; give each message its text")
        if not isinstance(message["content"], str):
            raise RowError(field, f"{where}'s 'content' is {_type(message['content'])}; it must be text")


def _response_format(row: Mapping[str, Any], field: str) -> str:
    value = row[field]
    if isinstance(value, str):
        if not value.strip():
            raise RowError(field, "is empty; a response needs text" if not value else "holds only whitespace")
        return "text"
    if isinstance(value, (list, tuple)) and value:
        _check_messages(value, field)
        if not value[-1]["content"].strip():
            raise RowError(field, f"the last message ({value[-1]['role']}) is empty; a response needs text")
        return "conversational"
    if isinstance(value, (list, tuple)):
        raise RowError(field, "is an empty list of messages; a response needs at least one message")
    raise RowError(field, f"must be text or a list of {{'role', 'content'}} messages, got {_type(value)}")


def _check_numbers(row: Mapping[str, Any]) -> None:
    for field, value in row.items():
        if field in TEXT_COLUMNS or value is None:
            continue
        if field in NUMBER_COLUMNS and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RowError(field, f"must be a number, got {value!r} ({_type(value)})")
        if isinstance(value, float) and not math.isfinite(value):
            raise RowError(field, f"is {value}; per-pair numbers must be finite")


def check_pair_row(row: Any) -> str:
    """Check one preference row and return its format: ``"text"``, ``"conversational"`` or ``"tokenized"``.

    Raises:
        RowError: the row is not an object, lacks the columns of every format, or has a bad field (see the
            module docstring), naming the field.
    """
    if not isinstance(row, Mapping):
        raise RowError(None, f"a row must be an object with named fields, got {_type(row)}")
    _check_numbers(row)
    if "chosen_ids" in row or "rejected_ids" in row:
        for field in ("chosen_ids", "rejected_ids"):
            _check_ids(row, field, required=True)
        _check_ids(row, "prompt_ids", required=False)
        if list(row["chosen_ids"]) == list(row["rejected_ids"]):
            raise RowError("rejected_ids", "equals 'chosen_ids'; a pair needs two different responses")
        return "tokenized"
    if "chosen" not in row or "rejected" not in row:
        missing = [field for field in ("chosen", "rejected") if field not in row]
        raise RowError(
            None, f"no {' and no '.join(map(repr, missing))} (fields: {', '.join(map(str, row))}); {_FORMATS}"
        )
    kinds = {field: _response_format(row, field) for field in ("chosen", "rejected")}
    if kinds["chosen"] != kinds["rejected"]:
        raise RowError("rejected", f"is {kinds['rejected']} but 'chosen' is {kinds['chosen']}; use one format")
    if row["chosen"] == row["rejected"]:
        raise RowError("rejected", "equals 'chosen'; a pair needs two different responses")
    if "prompt" in row:
        _check_prompt(row["prompt"], kinds["chosen"])
    return kinds["chosen"]


def _check_prompt(prompt: Any, kind: str) -> None:
    if prompt is None:
        raise RowError("prompt", 'is null; give the prompt ("" or [] for none) or leave the field out')
    if kind == "text" and not isinstance(prompt, str):
        raise RowError("prompt", f"is {_type(prompt)} but the responses are text; give the prompt as text")
    if kind == "conversational":
        if not isinstance(prompt, (list, tuple)):
            raise RowError("prompt", f"is {_type(prompt)} but the responses are messages; give a list of messages")
        _check_messages(prompt, "prompt")


def check_text_row(row: Any) -> tuple[Any, Any] | list[Any]:
    """Check one row to score and return it as :func:`~rmreg.data.collate_texts` takes it.

    A row holds ``response`` (text or messages) and an optional ``prompt`` of the same format, or ``messages``
    (a conversation whose last message is scored).

    Raises:
        RowError: neither ``response`` nor ``messages``, an empty response, a null prompt, mixed formats, or a
            message without text.

    Example:
        >>> check_text_row({"prompt": "Q", "response": "A"})
        ('Q', 'A')
    """
    if not isinstance(row, Mapping):
        raise RowError(None, f"a row must be an object with named fields, got {_type(row)}")
    if "response" not in row:
        if "messages" not in row:
            fields = ", ".join(map(str, row)) or "none"
            raise RowError(
                None,
                f"no 'response' and no 'messages' (fields: {fields}); rows to score need a "
                "'response' (optional 'prompt') or a 'messages' conversation",
            )
        kind = _response_format(row, "messages")
        if kind != "conversational":
            raise RowError("messages", "must be a list of {'role', 'content'} messages")
        return list(row["messages"])
    kind = _response_format(row, "response")
    if "prompt" not in row:
        return ("" if kind == "text" else [], row["response"])
    _check_prompt(row["prompt"], kind)
    return (row["prompt"], row["response"])


def numeric_columns(row: Mapping[str, Any]) -> set[str]:
    """The per-pair number columns the row gives (not ``None``): they reach the objective by name."""
    return {field for field, value in row.items() if field not in TEXT_COLUMNS and isinstance(value, (int, float))}


def cut_long_texts(row: Mapping[str, Any], max_chars: int) -> dict[str, Any]:
    """The row with every text (and message content) longer than ``max_chars`` cut to its last ``max_chars``
    characters.

    A text that long is longer than ``max_length`` tokens when ``max_chars`` is ``max_length`` times the
    longest token's length, so truncation (which keeps each part's end) would cut it anyway; cutting the
    characters first saves tokenizing megabytes only to throw them away.

    Example:
        >>> cut_long_texts({"chosen": "abcdef", "rejected": "xy"}, 3)
        {'chosen': 'def', 'rejected': 'xy'}
    """

    def shorten(value: Any) -> Any:
        if isinstance(value, str):
            return value[-max_chars:]
        if isinstance(value, (list, tuple)):
            return [shorten(item) for item in value]
        if isinstance(value, Mapping) and isinstance(value.get("content"), str):
            return {**value, "content": shorten(value["content"])}
        return value

    return {
        field: shorten(value) if field in ("prompt", "chosen", "rejected") else value for field, value in row.items()
    }
