"""Terms on groups of K completions of one prompt: Plackett–Luce, the listwise softmax, and GRM's DPO regularizer
of the best completion against each of the others.

Inputs (one row per group; the objective's "pairs" are the groups):

==================  ================  ==========================================================================
name                shape             what
==================  ================  ==========================================================================
``group_rewards``   ``[groups, K]``   rewards of each group's completions, best first (padding slots: anything)
``group_mask``      ``[groups, K]``   True where a slot holds a completion (groups of different sizes share K)
``group_logps``     ``[groups, K]``   summed response log-probs under the LM head (GRM's DPO regularizer)
``ref_group_logps`` ``[groups, K]``   the same under the reference model (the DPO regularizer with reference)
==================  ================  ==========================================================================

``chosen_*`` are the best completion's values and ``rejected_*`` the worst's, so pair terms apply unchanged:
:class:`~rmreg.objectives.SFTRegularizer` regularizes the best completion of each group (GRM's SFT term), and
Bradley–Terry on them is the "best against worst" binarization.
"""

import torch

from rmreg import functional
from rmreg._typing import Float, Tensor
from rmreg.objectives.inputs import Needs, PairInputs
from rmreg.objectives.term import Term, register_term

__all__ = ["GroupDPORegularizer", "ListwiseSoftmax", "PlackettLuce"]


def _best_and_others(mask: Tensor) -> tuple[Tensor, Tensor]:
    """The slot of each group's best completion (its first real one) and the mask of the others."""
    best = mask.int().argmax(dim=1)
    others = mask.clone()
    others[torch.arange(mask.shape[0], device=mask.device), best] = False
    return best, others


@register_term("plackett_luce")
class PlackettLuce(Term):
    """Plackett–Luce loss of each group's ranking; see :func:`rmreg.functional.plackett_luce_loss`.

    Example:
        >>> import torch
        >>> from rmreg.objectives import PairInputs
        >>> from rmreg.objectives.rankings import PlackettLuce
        >>> rewards = torch.tensor([[2.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
        >>> mask = torch.tensor([[True, True, True], [True, True, False]])
        >>> inputs = PairInputs(rewards[:, 0], torch.tensor([0.0, 0.0]), group_rewards=rewards, group_mask=mask)
        >>> PlackettLuce().per_pair(inputs)
        tensor([0.7209, 0.3133])
    """

    needs = Needs("group_rewards", "group_mask")
    default_name = "plackett_luce"

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        rewards, mask = inputs.require("group_rewards", self), inputs.require("group_mask", self)
        return functional.plackett_luce_loss(rewards, mask, reduction="none")


@register_term("listwise_softmax")
class ListwiseSoftmax(Term):
    """The best completion of each group against all the others (RewardBench 2's "one correct among K").

    See :func:`rmreg.functional.listwise_softmax_loss`; the best completion is the group's first real slot.
    """

    needs = Needs("group_rewards", "group_mask")
    default_name = "listwise_softmax"

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        rewards, mask = inputs.require("group_rewards", self), inputs.require("group_mask", self)
        best, others = _best_and_others(mask)
        chosen = rewards.gather(1, best.unsqueeze(1)).squeeze(1)
        return functional.listwise_softmax_loss(chosen, rewards, others, reduction="none")


@register_term("group_dpo_regularizer")
class GroupDPORegularizer(Term):
    r"""GRM's DPO regularizer of each group's best completion against each of the others, averaged.

    .. math::
        \ell_g = \frac{1}{n_g - 1} \sum_{j \ne \text{best}} \mathrm{DPO}(y_{\text{best}}, y_j)

    with :func:`rmreg.functional.dpo_regularizer` for each (best, j) pair; for K = 2 it is the pair's DPO
    regularizer.

    Args:
        beta: β > 0 (0.1 in the paper).
        reference: compare against ``ref_group_logps`` ("dpo") or not ("dpo-noref").
        name: label in logs (default ``"group_dpo"`` or ``"group_dpo_noref"``).
    """

    config_fields = ("beta", "reference")

    def __init__(self, *, beta: float = 0.1, reference: bool = True, name: str | None = None) -> None:
        super().__init__(name=name or ("group_dpo" if reference else "group_dpo_noref"))
        functional._check_beta(beta)
        self.beta = float(beta)
        self.reference = bool(reference)

    @property
    def needs(self) -> Needs:  # type: ignore[override]
        names = ("group_logps", "group_mask", "ref_group_logps") if self.reference else ("group_logps", "group_mask")
        return Needs(*names)

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        logps, mask = inputs.require("group_logps", self), inputs.require("group_mask", self)
        best, others = _best_and_others(mask)
        counts = others.sum(dim=1)
        if bool((counts == 0).any()):
            raise ValueError(
                f"term {self.name!r}: groups {(counts == 0).nonzero().flatten().tolist()} have a single completion; "
                "the DPO regularizer needs at least 2 per group"
            )
        group, slot = others.nonzero(as_tuple=True)

        def best_and_other(values: Tensor) -> tuple[Tensor, Tensor]:
            return values[group, best[group]], values[group, slot]

        chosen, rejected = best_and_other(logps)
        ref_chosen, ref_rejected = (
            best_and_other(inputs.require("ref_group_logps", self)) if self.reference else (None, None)
        )
        per_comparison = functional.dpo_regularizer(
            chosen, rejected, ref_chosen, ref_rejected, beta=self.beta, reduction="none"
        )
        totals = per_comparison.new_zeros(mask.shape[0]).index_add(0, group, per_comparison)
        return totals / counts.to(totals.dtype)
