"""Pair layout: where the chosen and the rejected row of each pair sit in a batch of ``2·P`` rows.

``"concat"`` puts the P chosen rows first, then the P rejected rows (TRL's order); ``"interleaved"`` alternates
them, c0, r0, c1, r1, … (the paper's official code). The model core imports this module, so it holds no
tokenization.
"""

from collections.abc import Sequence
from typing import Literal

import torch

from rmreg._typing import Tensor, shape_checked

__all__ = ["IGNORE_INDEX", "LAYOUTS", "Layout", "check_choice", "join_pairs", "pair_order", "split_pairs"]

IGNORE_INDEX = -100
"""Label of tokens that no log-prob is taken of: prompt and padding."""

Layout = Literal["concat", "interleaved"]
LAYOUTS: tuple[str, ...] = ("concat", "interleaved")


def check_choice(name: str, value: object, allowed: Sequence[str]) -> None:
    """Raise ``ValueError`` naming ``name`` and the allowed values unless ``value`` is one of them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def pair_order(num_pairs: int, layout: Layout, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Row indices ``(chosen, rejected)``, each ``[P]``, of the pairs in a batch of ``2·P`` rows (on ``device``).

    Example:
        >>> pair_order(2, "interleaved")
        (tensor([0, 2]), tensor([1, 3]))
    """
    check_choice("layout", layout, LAYOUTS)
    pairs = torch.arange(num_pairs, device=device)
    if layout == "concat":
        return pairs, pairs + num_pairs
    return 2 * pairs, 2 * pairs + 1


@shape_checked
def split_pairs(rows: Tensor, layout: Layout = "concat") -> tuple[Tensor, Tensor]:
    """Split a batch of ``2·P`` rows (along dim 0) into its chosen and rejected halves, each ``[P, ...]``.

    Example:
        >>> import torch
        >>> split_pairs(torch.tensor([10, 11, 20, 21]), "interleaved")
        (tensor([10, 20]), tensor([11, 21]))
    """
    if rows.shape[0] % 2:
        raise ValueError(f"a batch of pairs needs an even number of rows (chosen and rejected); got {rows.shape[0]}")
    check_choice("layout", layout, LAYOUTS)
    if layout == "concat":
        pairs = rows.shape[0] // 2
        return rows[:pairs], rows[pairs:]
    return rows[0::2], rows[1::2]


@shape_checked
def join_pairs(chosen: Tensor, rejected: Tensor, layout: Layout = "concat") -> Tensor:
    """Inverse of :func:`split_pairs`: ``2·P`` rows from ``P`` chosen and ``P`` rejected rows.

    Example:
        >>> import torch
        >>> join_pairs(torch.tensor([10, 20]), torch.tensor([11, 21]), "interleaved")
        tensor([10, 11, 20, 21])
    """
    if chosen.shape != rejected.shape:
        raise ValueError(f"chosen {tuple(chosen.shape)} and rejected {tuple(rejected.shape)} differ in shape")
    check_choice("layout", layout, LAYOUTS)
    if layout == "concat":
        return torch.cat([chosen, rejected])
    return torch.stack([chosen, rejected], dim=1).flatten(0, 1)
