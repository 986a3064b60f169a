"""Scoring: rewards of rows or texts, without autograd graph, for a reward model's causal LM and reward head.

:class:`ScoringMixin` gives :class:`~rmreg.RegularizedRewardModel` its ``score``, ``score_heads`` and
``score_texts``: the scalar reward it trains (one output as it is, a multi-output head's weighted combination, an
ensemble's mean), an ensemble's other aggregations (Coste et al., ICLR 2024, arXiv 2310.02743), and every output.
Texts are tokenized as in training (:func:`rmreg.data.collate_texts`).
"""

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rmreg._typing import Bool, Float, Int, Tensor, shape_checked
from rmreg.data.collation import collate_texts
from rmreg.heads import RewardEnsemble, RewardHead
from rmreg.heads.ensemble import Aggregation, aggregate_rewards
from rmreg.model import causal_lm as lm

__all__ = ["ScoringMixin"]


class ScoringMixin:
    """``score``, ``score_heads`` and ``score_texts`` of a model with ``causal_lm`` and ``reward_head``."""

    causal_lm: nn.Module
    reward_head: RewardHead | RewardEnsemble

    @torch.no_grad()
    @shape_checked
    def score(
        self,
        input_ids: Int[Tensor, "rows seq"],
        attention_mask: Int[Tensor, "rows seq"] | Bool[Tensor, "rows seq"],
        *,
        aggregate: Aggregation | None = None,
        penalty: float | None = None,
    ) -> Float[Tensor, " rows"]:
        """Reward of each row (any number of rows, no pairing), without autograd graph.

        The scalar reward the model trains: one output as it is, a multi-output head's weighted combination, an
        ensemble's mean. For a :class:`~rmreg.heads.RewardEnsemble`, ``aggregate`` picks another aggregation of
        the heads (``"min"``, or ``"uncertainty_weighted"`` with ``penalty`` λ; see
        :func:`~rmreg.heads.aggregate_rewards`); :meth:`score_heads` gives the heads' rewards themselves.

        Uses the current train/eval mode: call ``.eval()`` first for deterministic rewards (dropout off).

        Example:
            >>> import torch
            >>> from rmreg.model import RegularizedRewardModel
            >>> from rmreg.testing import tiny_causal_lm
            >>> model = RegularizedRewardModel(tiny_causal_lm()).eval()
            >>> model.score(torch.tensor([[1, 40, 41, 2]]), torch.ones(1, 4, dtype=torch.long)).shape
            torch.Size([1])
        """
        if aggregate is None and penalty is None:
            return self.reward_head.combine(self._head_outputs(input_ids, attention_mask))
        if not isinstance(self.reward_head, RewardEnsemble):
            raise ValueError(
                f"aggregate= and penalty= apply to a RewardEnsemble head, not a {type(self.reward_head).__name__}"
            )
        return aggregate_rewards(self._head_outputs(input_ids, attention_mask), aggregate or "mean", penalty=penalty)

    @torch.no_grad()
    @shape_checked
    def score_heads(
        self,
        input_ids: Int[Tensor, "rows seq"],
        attention_mask: Int[Tensor, "rows seq"] | Bool[Tensor, "rows seq"],
    ) -> Float[Tensor, "rows outputs"]:
        """Every output of each row, ``[rows, K]`` (an ensemble's heads) or ``[rows, M]`` (a head's attributes).

        One backbone forward for all of them; aggregate with :func:`~rmreg.heads.aggregate_rewards` and measure
        the heads' disagreement with :func:`~rmreg.heads.reward_spread`.

        Example:
            >>> import torch
            >>> from rmreg.heads import RewardEnsemble, reward_spread
            >>> from rmreg.model import RegularizedRewardModel
            >>> from rmreg.testing import tiny_causal_lm
            >>> model = RegularizedRewardModel(tiny_causal_lm(), reward_head=RewardEnsemble(32, 4)).eval()
            >>> heads = model.score_heads(torch.tensor([[1, 40, 41, 2]]), torch.ones(1, 4, dtype=torch.long))
            >>> heads.shape, reward_spread(heads).shape
            (torch.Size([1, 4]), torch.Size([1]))
        """
        outputs = self._head_outputs(input_ids, attention_mask)
        return outputs.reshape(outputs.shape[0], self.reward_head.num_outputs)

    def _head_outputs(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        if input_ids.ndim != 2 or attention_mask.shape != input_ids.shape:
            raise ValueError(f"input_ids and attention_mask must both be [rows, seq]; got {tuple(input_ids.shape)}")
        if not attention_mask.bool().any(-1).all():
            raise ValueError("every row needs at least one real token (attention_mask is all 0 in some row)")
        hidden = lm.final_hidden_states(self.causal_lm, input_ids, attention_mask)
        return self.reward_head(lm.pool_last(hidden, attention_mask))

    def score_texts(
        self,
        tokenizer: Any,
        items: Sequence[Any],
        *,
        batch_size: int = 32,
        max_length: int | None = None,
        add_eos: bool = True,
        aggregate: Aggregation | None = None,
        penalty: float | None = None,
    ) -> Float[Tensor, " rows"]:
        """Rewards of texts or conversations, tokenized as in training (see :func:`rmreg.data.collate_texts`).

        Args:
            tokenizer: the tokenizer the model was trained with.
            items: response texts, ``(prompt, response)`` tuples, or conversations (lists of messages).
            batch_size: rows per forward pass.
            max_length: keep at most the last ``max_length`` tokens of a row.
            add_eos: append ``eos_token`` to text responses (as :class:`~rmreg.data.PairCollator` does).
            aggregate, penalty: an ensemble's aggregation, as in :meth:`score`.

        Returns:
            fp32 rewards ``[len(items)]`` on the model's device.

        Example:
            >>> from rmreg.model import RegularizedRewardModel
            >>> from rmreg.testing import tiny_causal_lm, tiny_tokenizer
            >>> model = RegularizedRewardModel(tiny_causal_lm()).eval()
            >>> model.score_texts(tiny_tokenizer(), [("2+2=", "4"), ("2+2=", "5")]).shape
            torch.Size([2])
        """
        device = next(self.reward_head.parameters()).device
        scores = []
        for start in range(0, len(items), batch_size):
            batch = collate_texts(tokenizer, items[start : start + batch_size], max_length=max_length, add_eos=add_eos)
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            scores.append(self.score(ids, mask, aggregate=aggregate, penalty=penalty))
        return torch.cat(scores) if scores else torch.zeros(0, device=device)
