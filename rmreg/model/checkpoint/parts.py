"""The parts of a reward model that a checkpoint holds: the constructor arguments of the model."""

import dataclasses
from typing import Any

from torch import nn

from rmreg.heads import RewardEnsemble, RewardHead
from rmreg.objectives import Objective

__all__ = ["Parts"]


@dataclasses.dataclass
class Parts:
    """The constructor arguments of a :class:`~rmreg.RegularizedRewardModel`, as saved and loaded.

    Attributes:
        causal_lm: the backbone (possibly a PEFT model).
        reward_head: the reward head (one head, or an ensemble).
        objective: the objective (``None`` for a scoring-only model).
        layout: ``"concat"`` or ``"interleaved"``.
        reference: ``None``, ``"adapters"``, or a separate reference causal LM.
        lm_head_trainable: the model's ``lm_head_trainable``.
    """

    causal_lm: nn.Module
    reward_head: RewardHead | RewardEnsemble
    objective: Objective | None
    layout: Any
    reference: Any
    lm_head_trainable: bool | None

    @classmethod
    def of(cls, model: Any) -> "Parts":
        """The parts of a :class:`~rmreg.RegularizedRewardModel`."""
        return cls(
            causal_lm=model.causal_lm,
            reward_head=model.reward_head,
            objective=model.objective,
            layout=model.layout,
            reference=model._reference.saved,
            lm_head_trainable=model.lm_head_trainable,
        )

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of :class:`~rmreg.RegularizedRewardModel` that rebuild the model."""
        return {"causal_lm": self.causal_lm, **{k: v for k, v in vars(self).items() if k != "causal_lm"}}
