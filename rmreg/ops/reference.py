"""The straightforward reference of the LM-head log-probs: full logits, ``log_softmax``, ``gather``."""

import torch
import torch.nn.functional as F

from rmreg._typing import Float, Int, Tensor, shape_checked
from rmreg.ops._common import _accumulation_dtype, _check_inputs

__all__ = ["linear_logprobs_naive"]


@shape_checked
def linear_logprobs_naive(
    hidden: Float[Tensor, "n hidden"],
    weight: Float[Tensor, "vocab hidden"],
    targets: Int[Tensor, " n"],
    *,
    bias: Float[Tensor, " vocab"] | None = None,
    ignore_index: int = -100,
) -> Float[Tensor, " n"]:
    """Reference for :func:`linear_logprobs`: full [N, V] logits, fp32 ``log_softmax``, ``gather``.

    Same values and gradients as :func:`linear_logprobs` (to rounding), at the memory cost of several
    [N, V] fp32 tensors. Used by tests and benchmarks.

    Example:
        >>> import torch
        >>> linear_logprobs_naive(torch.zeros(2, 3), torch.zeros(4, 3), torch.tensor([0, -100]))
        tensor([-1.3863,  0.0000])
    """
    _check_inputs(hidden, weight, targets, bias, None, ignore_index)
    valid = targets != ignore_index
    logprobs = F.linear(hidden, weight, bias).to(_accumulation_dtype(hidden)).log_softmax(dim=-1)
    picked = logprobs.gather(1, torch.where(valid, targets, 0).long()[:, None]).squeeze(1)
    return torch.where(valid, picked, 0.0)
