"""The math of reward modeling as pure functions, one theme per module.

* :mod:`~rmreg.functional.pairwise`: Bradley–Terry (margin, label smoothing) and per-pair reward centering.
* :mod:`~rmreg.functional.regularizers`: GRM's SFT and DPO regularizers on the retained LM head.
* :mod:`~rmreg.functional.logprobs`: summed response log-probs from logits (the naive reference path).
* :mod:`~rmreg.functional.ties`: Rao–Kupper and Davidson, pairs that may be tied.
* :mod:`~rmreg.functional.ranking`: Plackett–Luce rankings and the "one chosen among K" listwise softmax.
* :mod:`~rmreg.functional.ratings`: per-attribute ratings, squared error and ordinal (cumulative-link).
* :mod:`~rmreg.functional.batch`: batch-wise sum-to-zero regularization.

Everything is stateless. Inputs are validated up front (a clear ValueError names the argument), half precision
is computed in float32 (float64 stays float64), and every loss is written in log space, so any finite input
gives a finite loss and gradient. Losses take ``reduction="mean" | "sum" | "none"``.

Reference:
    Rui Yang, Ruomeng Ding, Yong Lin, Huan Zhang, Tong Zhang. "Regularizing Hidden States Enables Learning
    Generalizable Reward Model for LLMs". NeurIPS 2024. https://arxiv.org/abs/2406.10216
"""

from rmreg.functional._checks import Reduction, reduce
from rmreg.functional._checks import _check_beta as _check_beta  # rmreg.objectives validates β with it
from rmreg.functional.batch import batch_sum_regularizer
from rmreg.functional.logprobs import sequence_logprobs
from rmreg.functional.pairwise import bradley_terry_loss, reward_centering
from rmreg.functional.ranking import listwise_softmax_loss, plackett_luce_loss
from rmreg.functional.ratings import ordinal_rating_loss, rating_mse_loss
from rmreg.functional.regularizers import dpo_regularizer, sft_regularizer
from rmreg.functional.ties import davidson_loss, rao_kupper_loss

__all__ = [
    "Reduction",
    "batch_sum_regularizer",
    "bradley_terry_loss",
    "davidson_loss",
    "dpo_regularizer",
    "listwise_softmax_loss",
    "ordinal_rating_loss",
    "plackett_luce_loss",
    "rao_kupper_loss",
    "rating_mse_loss",
    "reduce",
    "reward_centering",
    "sequence_logprobs",
    "sft_regularizer",
]
