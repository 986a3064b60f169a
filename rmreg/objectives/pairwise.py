"""Built-in reward terms on pairs: Bradley–Terry (with margin and label smoothing) and reward centering.

Formulas live in :mod:`rmreg.functional`; these terms only read their inputs by name and call it.
"""

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
        use_margin: subtract the batch's per-pair ``margin`` (the margin baseline).
        name: label in logs.
    """

    default_name = "bradley_terry"
    config_fields = ("label_smoothing", "use_margin")

    def __init__(self, *, label_smoothing: float = 0.0, use_margin: bool = False, name: str | None = None):
        super().__init__(name=name)
        if not 0.0 <= label_smoothing <= 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self.use_margin = bool(use_margin)

    @property
    def needs(self) -> Needs:  # type: ignore[override]
        return Needs(margin=self.use_margin)

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        return functional.bradley_terry_loss(
            inputs.chosen_rewards,
            inputs.rejected_rewards,
            margin=inputs.require("margin", self) if self.use_margin else None,
            label_smoothing=self.label_smoothing,
            reduction="none",
        )


@register_term("reward_centering")
class RewardCentering(Term):
    """``(r_c + r_r)²``: keeps rewards centred; see :func:`rmreg.functional.reward_centering`."""

    default_name = "centering"

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        return functional.reward_centering(inputs.chosen_rewards, inputs.rejected_rewards, reduction="none")
