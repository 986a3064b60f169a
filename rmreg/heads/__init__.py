"""Heads on a causal LM's final hidden states: the reward head, and the retained LM head of GRM.

GRM keeps the backbone's own LM head beside a new reward head; both read the same hidden states, so the
text-generation regularizer keeps those states useful for language modelling (Yang et al., NeurIPS 2024,
Fig. 1, https://arxiv.org/abs/2406.10216).
"""

from rmreg.heads.ensemble import RewardEnsemble, aggregate_rewards, reward_spread
from rmreg.heads.lm_head import RetainedLMHead, logit_transform
from rmreg.heads.reward_head import HeadKind, RewardHead

__all__ = [
    "HeadKind",
    "RetainedLMHead",
    "RewardEnsemble",
    "RewardHead",
    "aggregate_rewards",
    "logit_transform",
    "reward_spread",
]
