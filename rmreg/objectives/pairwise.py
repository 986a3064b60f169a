"""Built-in reward terms on pairs: Bradley–Terry (with margin and label smoothing) and reward centering.

Formulas live in :mod:`rmreg.functional`; these terms only read their inputs by name and call it.
"""

from typing import Literal

from rmreg import functional
from rmreg._typing import Float, Tensor
from rmreg.objectives.inputs import Needs, PairInputs
from rmreg.objectives.term import Term, register_term

__all__ = ["BradleyTerry", "RewardCentering"]


@register_term("bradley_terry")
class BradleyTerry(Term):
    """Bradley–Terry loss, optionally with the pair's margin and label smoothing.

    See :func:`rmreg.functional.bradley_terry_loss` for the formula.

    Args:
        label_smoothing: ε in ``[0, 0.5]``.
        use_margin: ``True``: subtract the batch's per-pair ``margin``, which must be there (the margin
            baseline); ``False``: ignore it; ``"auto"``: subtract it whenever the batch carries one, as TRL's
            ``RewardTrainer`` does with a dataset's ``margin`` column.
        name: label in logs.

    Example:
        >>> import torch
        >>> from rmreg.objectives import PairInputs
        >>> inputs = PairInputs(torch.tensor([1.0]), torch.tensor([0.0]), margin=torch.tensor([1.0]))
        >>> [round(BradleyTerry(use_margin=m)(inputs).item(), 4) for m in (False, "auto")]
        [0.3133, 0.6931]
    """

    default_name = "bradley_terry"
    config_fields = ("label_smoothing", "use_margin")

    def __init__(
        self, *, label_smoothing: float = 0.0, use_margin: bool | Literal["auto"] = False, name: str | None = None
    ):
        super().__init__(name=name)
        if not 0.0 <= label_smoothing <= 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5], got {label_smoothing!r}")
        if use_margin not in (True, False, "auto"):
            raise ValueError(f"use_margin must be True, False or 'auto', got {use_margin!r}")
        self.label_smoothing = float(label_smoothing)
        self.use_margin: bool | Literal["auto"] = use_margin if use_margin == "auto" else bool(use_margin)

    @property
    def needs(self) -> Needs:  # type: ignore[override]
        return Needs(margin=self.use_margin is True)

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        if self.use_margin == "auto":
            margin = inputs.get("margin")
        else:
            margin = inputs.require("margin", self) if self.use_margin else None
        return functional.bradley_terry_loss(
            inputs.chosen_rewards,
            inputs.rejected_rewards,
            margin=margin,
            label_smoothing=self.label_smoothing,
            reduction="none",
        )


@register_term("reward_centering")
class RewardCentering(Term):
    """``(r_c + r_r)²``: keeps rewards centred; see :func:`rmreg.functional.reward_centering`."""

    default_name = "centering"

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        return functional.reward_centering(inputs.chosen_rewards, inputs.rejected_rewards, reduction="none")
