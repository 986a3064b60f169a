"""Batch-level terms: batch-wise sum-to-zero regularization (BSR, Hong et al., ICML 2025).

A batch-level value has no per-pair decomposition; the term gives every pair the batch's value, so the mean
over pairs (what an :class:`~rmreg.Objective` reports and trains on) is the batch's BSR and its gradient is
BSR's own.
"""

import torch

from rmreg import functional
from rmreg._typing import Float, Tensor
from rmreg.objectives.inputs import Needs, PairInputs
from rmreg.objectives.term import Term, register_term

__all__ = ["BatchSumRegularizer"]


@register_term("batch_sum")
class BatchSumRegularizer(Term):
    """``(mean of the batch's rewards)²``; see :func:`rmreg.functional.batch_sum_regularizer`.

    Args:
        groups: average the rewards of every real completion of each group (``group_rewards`` where
            ``group_mask``) instead of the pairs' chosen and rejected rewards.
        name: label in logs.

    Example:
        >>> import torch
        >>> from rmreg.objectives import PairInputs
        >>> from rmreg.objectives.batch import BatchSumRegularizer
        >>> BatchSumRegularizer().per_pair(PairInputs(torch.tensor([3.0, 1.0]), torch.tensor([0.0, 0.0])))
        tensor([1., 1.])
    """

    default_name = "batch_sum"
    config_fields = ("groups",)

    def __init__(self, *, groups: bool = False, name: str | None = None) -> None:
        super().__init__(name=name)
        self.groups = bool(groups)

    @property
    def needs(self) -> Needs:  # type: ignore[override]
        return Needs("group_rewards", "group_mask") if self.groups else Needs()

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        if self.groups:
            rewards = inputs.require("group_rewards", self)[inputs.require("group_mask", self)]
        else:
            rewards = torch.cat([inputs.chosen_rewards, inputs.rejected_rewards])
        return functional.batch_sum_regularizer(rewards).expand(inputs.num_pairs)
