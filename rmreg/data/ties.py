"""Tie flags on pair rows: a ``label`` of 0, 0.5 or 1, and a ``tie`` column, as one bool ``tie`` column.

Pair data from arenas and graded comparisons says "the first is better", "the second is better" or "tie". rmreg's
tie-aware objectives (``rmreg.objective("rao-kupper")``, ``"davidson"``) read a bool ``tie`` column per pair, and
take ``chosen`` as the preferred response of an untied pair. :func:`tie_flags` brings a pair row to that form:

* ``label`` is the probability that ``chosen`` is preferred: ``1`` (or ``True``) keeps the pair, ``0`` (or
  ``False``) means ``rejected`` is the preferred one, so the pair is swapped (every ``*chosen*`` field with its
  ``*rejected*`` counterpart: ``chosen``/``rejected``, ``chosen_ids``/``rejected_ids``,
  ``ref_chosen_logps``/``ref_rejected_logps``; a ``margin`` is kept, as the strength of the preference that the
  label states), and ``0.5`` is a tie. Any other value is refused. The ``label`` column is consumed (left out of
  the result), so it does not reach the objective as a stray number.
* ``tie``: a bool, or the number 0 or 1.
* both given: they must agree (``tie`` is true exactly when ``label`` is 0.5).
* neither: ``tie=False``, so that every row of a dataset carries the column.

TRL's pair formats have no ``label`` column; TRL's ``label`` is the KTO/BCO flag of *unpaired* rows
(``prompt``, ``completion``, ``label``: ``True`` = desirable), a different thing. Such rows have no ``chosen`` and
``rejected`` and are refused here with a message that says so.

Example:
    >>> tie_flags({"chosen": "a", "rejected": "b", "label": 0})
    {'chosen': 'b', 'rejected': 'a', 'tie': False}
    >>> tie_flags({"chosen": "a", "rejected": "b", "label": 0.5})
    {'chosen': 'a', 'rejected': 'b', 'tie': True}
"""

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["tie_flags", "with_tie_flags"]

_LABELS = {0.0: False, 0.5: True, 1.0: False}  # label -> tie


def _label(value: Any, index: int) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and float(value) in _LABELS:
        return float(value)
    raise ValueError(
        f"row {index}: field 'label': is {value!r}; a pair's label is 1 (chosen preferred), 0 (rejected "
        "preferred) or 0.5 (tie)"
    )


def _tie(value: Any, index: int) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise ValueError(f"row {index}: field 'tie': is {value!r}; a tie flag is a bool (or 0 or 1)")


def _swapped(row: Mapping[str, Any]) -> dict[str, Any]:
    swapped = dict(row)
    for key in row:
        if "chosen" in key and (other := key.replace("chosen", "rejected")) in row:
            swapped[key], swapped[other] = row[other], row[key]
    return swapped


def tie_flags(row: Mapping[str, Any], *, index: int = 0) -> dict[str, Any]:
    """The pair row with a bool ``tie`` column, swapped where ``label`` is 0 (see the module docstring).

    Args:
        row: a pair row (``chosen``/``rejected`` or ``chosen_ids``/``rejected_ids``) with an optional ``label``
            and ``tie``.
        index: the row's index, named in errors.

    Returns:
        A new dict: the row without ``label``, ``chosen`` the preferred response, and ``tie`` a bool.

    Raises:
        ValueError: ``row {index}: field '...': ...`` for a label outside {0, 0.5, 1}, a tie flag that is not a
            bool (or 0/1), a ``label`` and ``tie`` that disagree, or a row that is not a pair.

    Example:
        >>> tie_flags({"chosen": "a", "rejected": "b", "label": 1, "tie": True})
        Traceback (most recent call last):
        ...
        ValueError: row 0: field 'tie': is True but 'label' is 1.0; a tie is labelled 0.5
    """
    if not isinstance(row, Mapping):
        raise ValueError(f"row {index}: a row must be an object with named fields, got {type(row).__name__}")
    if not ({"chosen", "rejected"} <= row.keys() or {"chosen_ids", "rejected_ids"} <= row.keys()):
        hint = " (TRL's unpaired KTO/BCO format, whose label is another thing)" if "completion" in row else ""
        raise ValueError(
            f"row {index}: not a pair row{hint}: tie flags need 'chosen' and 'rejected' (or 'chosen_ids' and "
            f"'rejected_ids'); got fields {sorted(map(str, row))}"
        )
    label = None if row.get("label") is None else _label(row["label"], index)
    tie = None if row.get("tie") is None else _tie(row["tie"], index)
    if label is not None and tie is not None and tie != _LABELS[label]:
        raise ValueError(f"row {index}: field 'tie': is {row['tie']!r} but 'label' is {label}; a tie is labelled 0.5")
    result = _swapped(row) if label == 0.0 else dict(row)
    result.pop("label", None)
    result["tie"] = _LABELS[label] if tie is None and label is not None else bool(tie)
    return result


def with_tie_flags(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """:func:`tie_flags` on each row, errors naming the row's index (counted from 0).

    Example:
        >>> [row["tie"] for row in with_tie_flags([{"chosen": "a", "rejected": "b"}, {"chosen": "c", "rejected": "d",
        ...     "label": 0.5}])]
        [False, True]
    """
    return [tie_flags(row, index=index) for index, row in enumerate(rows)]
