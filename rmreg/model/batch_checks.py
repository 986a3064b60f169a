"""Checks of a batch of ``2·P`` rows before any compute: shapes without reading the device, values in one read.

Shapes and dtypes are known on the host, so they are checked for free. Value checks (a row without any real
token, labels on padding, a row without any response token, a non-finite per-pair column) are computed on the
device as one small vector of flags and read back once; only when a flag is set are the details (which row)
looked up. A GPU pays for each device read, so one forward pass makes as few as it can.
"""

from collections.abc import Mapping, Sequence

import torch

from rmreg._typing import Tensor
from rmreg.data.layout import IGNORE_INDEX
from rmreg.objectives import Needs
from rmreg.objectives.inputs import (
    LENGTH_INPUTS,
    LOGPS_INPUTS,
    MODEL_INPUTS,
    REFERENCE_INPUTS,
    TOKEN_INPUTS,
    check_input_shape,
)

__all__ = ["check_inputs", "check_shapes", "check_values"]


def check_shapes(input_ids: Tensor, attention_mask: Tensor, labels: Tensor | None) -> int:
    """Raise ``ValueError`` for a malformed batch; return the number of pairs. Reads nothing from the device."""
    if input_ids.ndim != 2 or attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"input_ids and attention_mask must both be [rows, seq]; got {tuple(input_ids.shape)} and "
            f"{tuple(attention_mask.shape)}"
        )
    rows = int(input_ids.shape[0])
    if rows == 0 or rows % 2:
        raise ValueError(f"a batch of pairs needs an even, positive number of rows (chosen and rejected); got {rows}")
    if labels is not None and labels.shape != input_ids.shape:
        raise ValueError(f"labels must have the shape of input_ids {tuple(input_ids.shape)}, got {tuple(labels.shape)}")
    return rows // 2


_LABEL_INPUTS = LOGPS_INPUTS | REFERENCE_INPUTS | TOKEN_INPUTS | LENGTH_INPUTS | {"group_logps", "ref_group_logps"}


def check_inputs(
    needs: Needs,
    labels: Tensor | None,
    columns: Mapping[str, Tensor],
    count: int,
    *,
    passable: frozenset[str] = REFERENCE_INPUTS,
) -> None:
    """Raise ``ValueError`` before any compute if the batch cannot give what ``needs`` names. Reads nothing.

    ``count`` is the number of pairs (or groups); ``passable`` are the model inputs a batch may carry precomputed.
    """
    for name, value in columns.items():
        check_input_shape(name, value, count)
    if labels is None and (_LABEL_INPUTS - set(columns)) & needs.names:
        raise ValueError("the objective's regularizer needs labels (response token ids, -100 elsewhere)")
    missing = sorted(name for name in needs.columns if name not in columns)
    if missing:
        raise ValueError(
            f"the objective needs the per-pair input(s) {missing}, which the batch does not carry: pass them as "
            "keywords of forward()/pair_outputs() or as numeric dataset columns"
        )
    if len(REFERENCE_INPUTS & set(columns)) == 1:
        raise ValueError("pass both ref_chosen_logps and ref_rejected_logps, or neither")
    computed = sorted(set(columns) & (MODEL_INPUTS - passable))
    if computed:
        raise ValueError(f"{computed} are computed by the model and cannot be passed with the batch")


def _first_row(flags: Tensor) -> int:
    return int(flags.nonzero()[0])


def check_values(
    attention_mask: Tensor,
    labels: Tensor | None,
    columns: Mapping[str, Tensor],
    extra: Sequence[tuple[Tensor, str]] = (),
) -> None:
    """Raise ``ValueError`` naming the row or column at fault; one device read when all is well.

    Checks: every row has a real token; with ``labels``, labels are -100 on padding and every row has a
    response token after its first; every floating per-pair column is finite; each ``(flag, message)`` of ``extra``
    (a bool scalar that is True when something is wrong) is False.
    """
    real = attention_mask.bool()
    empty_rows = ~real.any(-1)
    flags = [empty_rows.any()]
    if labels is not None:
        on_padding = ((labels != IGNORE_INDEX) & ~real).any(-1)
        unscorable = ~(labels[:, 1:] != IGNORE_INDEX).any(-1)
        flags += [on_padding.any(), unscorable.any()]
    floats = {name: value for name, value in columns.items() if value.is_floating_point()}
    flags += [~torch.isfinite(value).all() for value in floats.values()]
    flags += [flag for flag, _ in extra]
    read = torch.stack(flags).tolist()
    if not any(read):
        return
    for (_, message), bad in zip(extra, read[len(read) - len(extra) :], strict=True):
        if bad:
            raise ValueError(message)
    read = read[: len(read) - len(extra)]
    if read[0]:
        raise ValueError(f"row {_first_row(empty_rows)} has no real token (attention_mask is all 0)")
    if labels is not None and read[1]:
        raise ValueError(f"labels must be -100 on padding (where attention_mask is 0); row {_first_row(on_padding)}")
    if labels is not None and read[2]:
        raise ValueError(
            f"row {_first_row(unscorable)} has no response token in labels (all -100 after its first token): was "
            "its response truncated away? Such a row would be scored on its prompt"
        )
    for (name, value), bad in zip(floats.items(), read[len(read) - len(floats) :], strict=True):
        if bad:
            raise ValueError(f"per-pair input {name!r} has NaN or infinite values: {value.tolist()}")
