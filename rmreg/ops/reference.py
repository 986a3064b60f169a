"""The straightforward reference of the LM-head log-probs: full logits, ``log_softmax``, ``gather``."""

import torch
import torch.nn.functional as F

from rmreg._typing import Float, Int, Tensor, shape_checked
from rmreg.ops._common import LogitTransform, accumulation_dtype, check_inputs

__all__ = ["linear_logprobs_naive"]


@shape_checked
def linear_logprobs_naive(
    hidden: Float[Tensor, "n hidden"],
    weight: Float[Tensor, "vocab hidden"],
    targets: Int[Tensor, " n"],
    *,
    softcap: float | None = None,
    scale: float | None = None,
    ignore_index: int = -100,
    bias: Float[Tensor, " vocab"] | None = None,
) -> Float[Tensor, " n"]:
    """Reference for :func:`~rmreg.ops.linear_logprobs`: full [N, V] logits, fp32 ``log_softmax``, ``gather``.

    log p_t = log_softmax(ℓ_t)[y_t] with ℓ = softcap·tanh(scale·(hidden @ weight.T + bias) / softcap), each
    transform only when given, applied in fp32 (float64 for float64) to the logits of ``F.linear`` (which
    runs in the autocast dtype inside ``torch.autocast``, as a Hugging Face model's LM head does). Same values and
    gradients as :func:`~rmreg.ops.linear_logprobs` (to rounding), at the memory cost of several [N, V] fp32
    tensors. Used by tests and benchmarks.

    Example:
        >>> import torch
        >>> linear_logprobs_naive(torch.zeros(2, 3), torch.zeros(4, 3), torch.tensor([0, -100]))
        tensor([-1.3863,  0.0000])
    """
    transform = LogitTransform(softcap, scale)
    check_inputs(hidden, weight, targets, bias, None, ignore_index, transform)
    valid = targets != ignore_index
    logits = F.linear(hidden, weight, bias).to(accumulation_dtype(hidden.dtype))
    if scale is not None:
        logits = logits * scale
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    picked = logits.log_softmax(dim=-1).gather(1, torch.where(valid, targets, 0).long()[:, None]).squeeze(1)
    return torch.where(valid, picked, 0.0)
