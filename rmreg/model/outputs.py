"""What the reward model returns from a forward pass."""

import dataclasses

from rmreg._typing import Tensor
from rmreg.objectives import PairInputs

__all__ = ["RewardModelOutput"]


@dataclasses.dataclass(frozen=True)
class RewardModelOutput:
    """What :meth:`~rmreg.RegularizedRewardModel.forward` returns.

    Attributes:
        loss: the objective's loss, a scalar.
        chosen_rewards: rewards of the chosen rows, ``[pairs]`` (fp32, attached to the graph).
        rejected_rewards: rewards of the rejected rows, ``[pairs]``.
        terms: each objective term's unweighted mean over the pairs, detached, by name (for logging).
        accuracy: fraction of pairs with ``r_c > r_r``, a detached scalar.
        per_pair: the objective's weighted loss per pair, ``[pairs]``.
        chosen_logps: summed response log-probs of the chosen rows, when a term needed them, else ``None``.
        rejected_logps: the same for the rejected rows.
        inputs: every per-pair input the objective read (:class:`~rmreg.objectives.PairInputs`).
    """

    loss: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor
    terms: dict[str, Tensor]
    accuracy: Tensor
    per_pair: Tensor
    chosen_logps: Tensor | None = None
    rejected_logps: Tensor | None = None
    inputs: PairInputs | None = None

    @classmethod
    def of(cls, inputs: PairInputs, *, loss: Tensor, per_pair: Tensor, terms: dict[str, Tensor]) -> "RewardModelOutput":
        """The output for the per-pair ``inputs`` an objective read and what it made of them."""
        return cls(
            loss=loss,
            chosen_rewards=inputs.chosen_rewards,
            rejected_rewards=inputs.rejected_rewards,
            terms=terms,
            accuracy=(inputs.chosen_rewards > inputs.rejected_rewards).float().mean().detach(),
            per_pair=per_pair,
            chosen_logps=inputs.chosen_logps,
            rejected_logps=inputs.rejected_logps,
            inputs=inputs,
        )
