"""Terms on per-attribute ratings of each pair's two responses (HelpSteer2, UltraFeedback): squared error or
the ordinal (cumulative-link) loss, missing ratings masked.

Inputs (A attributes; a multi-output reward head predicts one score per attribute):

=================================================  ===============  ===============================================
name                                               shape            what
=================================================  ===============  ===============================================
``chosen_attribute_rewards``, ``rejected_…``       ``[pairs, A]``   the head's per-attribute scores
``chosen_ratings``, ``rejected_ratings``           ``[pairs, A]``   ratings (any value where the mask is False)
``chosen_rating_mask``, ``rejected_rating_mask``   ``[pairs, A]``   True where the rating is observed
=================================================  ===============  ===============================================

A pair's loss is the sum over its observed ratings divided by 2·A, so every observed rating weighs the same in
the batch and a missing one counts 0. A preference term on the scalar reward (the head's weighted combination of
the attributes, ``chosen_rewards``) composes with ``+`` as usual.
"""

import torch
import torch.nn.functional as F
from torch import nn

from rmreg import functional
from rmreg._typing import Float, Tensor
from rmreg.objectives.inputs import Needs, PairInputs
from rmreg.objectives.term import Term, is_number, register_term

__all__ = ["OrdinalRating", "RatingMSE"]

_MIN_GAP = 1e-3
"""The smallest distance between two thresholds of :class:`OrdinalRating`."""

_RATING_INPUTS = (
    "chosen_attribute_rewards",
    "rejected_attribute_rewards",
    "chosen_ratings",
    "rejected_ratings",
    "chosen_rating_mask",
    "rejected_rating_mask",
)


def _stacked(inputs: PairInputs, term: Term) -> tuple[Tensor, Tensor, Tensor]:
    """Scores, ratings and masks of the chosen rows then the rejected rows, ``[2·pairs, A]`` each."""
    chosen, rejected = (
        [inputs.require(f"{side}_{what}", term) for what in ("attribute_rewards", "ratings", "rating_mask")]
        for side in ("chosen", "rejected")
    )
    return tuple(torch.cat([c, r]) for c, r in zip(chosen, rejected, strict=True))  # type: ignore[return-value]


def _per_pair(per_rating: Tensor, pairs: int) -> Tensor:
    chosen, rejected = per_rating[:pairs], per_rating[pairs:]
    return (chosen.sum(dim=1) + rejected.sum(dim=1)) / (2 * per_rating.shape[1])


@register_term("rating_mse")
class RatingMSE(Term):
    """Squared error of the per-attribute scores; see :func:`rmreg.functional.rating_mse_loss`."""

    needs = Needs(*_RATING_INPUTS)
    default_name = "rating_mse"

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        scores, ratings, mask = _stacked(inputs, self)
        per_rating = functional.rating_mse_loss(scores, ratings, mask, reduction="none")
        return _per_pair(per_rating, inputs.num_pairs)


@register_term("ordinal_rating")
class OrdinalRating(Term):
    """Ordinal logistic loss of the per-attribute scores; see :func:`rmreg.functional.ordinal_rating_loss`.

    Ratings are the integers ``lowest, …, lowest + levels − 1`` (e.g. 0–4 for HelpSteer2, 1–5 for UltraFeedback);
    the ``levels − 1`` thresholds are shared by all attributes, start evenly spaced one apart around 0 and are
    learned with the model unless ``learn_thresholds=False`` (kept ordered as ``b_1 + cumsum(0.001 + softplus(w))``).

    Args:
        levels: number of rating levels L ≥ 2.
        lowest: the lowest rating.
        thresholds: initial (or fixed) thresholds, L − 1 strictly increasing numbers.
        learn_thresholds: learn them with the model.
        name: label in logs.
    """

    needs = Needs(*_RATING_INPUTS)
    default_name = "ordinal_rating"
    config_fields = ("levels", "lowest", "thresholds", "learn_thresholds")

    def __init__(
        self,
        levels: int,
        *,
        lowest: int = 0,
        thresholds: list[float] | None = None,
        learn_thresholds: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if not isinstance(levels, int) or isinstance(levels, bool) or levels < 2:
            raise ValueError(f"levels must be an int >= 2, got {levels!r}")
        if not isinstance(lowest, int) or isinstance(lowest, bool):
            raise ValueError(f"lowest must be an int, got {lowest!r}")
        if thresholds is None:
            thresholds = [k - (levels - 2) / 2 for k in range(levels - 1)]
        if len(thresholds) != levels - 1 or not all(is_number(b) for b in thresholds):
            raise ValueError(f"thresholds must be {levels - 1} numbers (levels - 1), got {thresholds!r}")
        cuts = torch.tensor([float(b) for b in thresholds], dtype=torch.float32)
        gaps = cuts.diff() - _MIN_GAP
        if not bool(torch.isfinite(cuts).all()) or bool((gaps <= 0).any()):
            raise ValueError(
                f"thresholds must be finite and strictly increasing (by > {_MIN_GAP:g}), got {thresholds!r}"
            )
        self.levels, self.lowest, self.learn_thresholds = levels, lowest, bool(learn_thresholds)
        # b_1 and the softplus-inverse of the gaps beyond the minimum: any value of these parameters keeps the
        # thresholds ordered, by at least _MIN_GAP, so no optimizer step can merge two levels
        first, raw_gaps = cuts[:1], gaps + torch.log(-torch.expm1(-gaps))
        if self.learn_thresholds:
            self.first, self.raw_gaps = nn.Parameter(first), nn.Parameter(raw_gaps)
        else:
            self.register_buffer("first", first)
            self.register_buffer("raw_gaps", raw_gaps)

    def current_thresholds(self) -> Tensor:
        """The thresholds ``[L − 1]`` (on the graph when learned)."""
        return torch.cat([self.first, self.first + (_MIN_GAP + F.softplus(self.raw_gaps)).cumsum(0)])

    @property
    def thresholds(self) -> list[float]:
        return [round(float(b), 6) for b in self.current_thresholds().detach()]

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        scores, ratings, mask = _stacked(inputs, self)
        observed = ratings[mask].double()
        bad = (observed != observed.round()) | (observed < self.lowest) | (observed >= self.lowest + self.levels)
        if bool(bad.any()):
            raise ValueError(
                f"term {self.name!r}: ratings must be integers in [{self.lowest}, {self.lowest + self.levels}) "
                f"(levels={self.levels}, lowest={self.lowest}), got {observed[bad][:3].tolist()}"
            )
        level = torch.where(mask, ratings.double(), float(self.lowest)).round().long() - self.lowest
        per_rating = functional.ordinal_rating_loss(
            scores, level, self.current_thresholds().to(scores.device), mask, reduction="none"
        )
        return _per_pair(per_rating, inputs.num_pairs)
