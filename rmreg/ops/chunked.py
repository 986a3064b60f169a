"""Per-token LM-head log-probs, chunk by chunk: :func:`linear_logprobs` (the generic path, any downstream loss).

See :mod:`rmreg.ops` for the formulas and the design.
"""

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

from rmreg._typing import Float, Int, Tensor, shape_checked
from rmreg.ops._common import _accumulation_dtype, _check_inputs, _needs_grad, _spans, _sweep, auto_chunk_size

__all__ = ["linear_logprobs"]


class _ChunkedLogprobs(torch.autograd.Function):
    """Per-token log-probs; backward recomputes chunks (trainable head) or scales rows (frozen head)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        targets: Tensor,
        chunk_size: int,
        ignore_index: int,
        needs: tuple[bool, bool, bool],
    ) -> Tensor:
        spans = _spans(targets != ignore_index, None, 1, chunk_size)
        ctx.head_trainable = needs[1] or needs[2]
        if ctx.head_trainable:
            logprobs, lse, *_ = _sweep(hidden, weight, bias, targets, spans, None, 1, needs)
            ctx.spans, ctx.needs = spans, needs
            ctx.save_for_backward(hidden, weight, bias, targets, lse)
        else:  # frozen head: prepare ∂ log p_t / ∂h_t now
            ones = hidden.new_ones(hidden.shape[0], dtype=_accumulation_dtype(hidden)) if needs[0] else None
            logprobs, _, hidden_grad, _, _ = _sweep(hidden, weight, bias, targets, spans, ones, 1, needs)
            ctx.save_for_backward(hidden_grad)
        return logprobs

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        if not ctx.head_trainable:
            (hidden_grad,) = ctx.saved_tensors
            scaled = None if hidden_grad is None else hidden_grad * grad_out[:, None].to(hidden_grad.dtype)
            return scaled, None, None, None, None, None, None
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        _, _, hidden_grad, weight_grads, bias_grads = _sweep(
            hidden, weight, bias, targets, ctx.spans, grad_out, 1, ctx.needs, lse
        )
        weight_grad = weight_grads[0].to(weight.dtype) if weight_grads else None
        bias_grad = bias_grads[0].to(bias.dtype) if len(bias_grads) else None
        return hidden_grad, weight_grad, bias_grad, None, None, None, None


@shape_checked
def linear_logprobs(
    hidden: Float[Tensor, "n hidden"],
    weight: Float[Tensor, "vocab hidden"],
    targets: Int[Tensor, " n"],
    *,
    bias: Float[Tensor, " vocab"] | None = None,
    chunk_size: int | None = None,
    ignore_index: int = -100,
) -> Float[Tensor, " n"]:
    """Log-probability of each target token under an LM head, without materializing [N, V] logits.

    log p_t = z_t[y_t] − logsumexp(z_t) with z_t = weight · hidden_t + bias, computed in fp32 one chunk of
    rows at a time; 0.0 where ``targets == ignore_index``. Differentiable in ``hidden``, ``weight`` and
    ``bias``. With a trainable head the backward pass recomputes each chunk's logits; with a frozen head
    (``weight`` and ``bias`` not requiring grad) the hidden-state gradient W[y_t] − softmax_t · W is prepared
    in the forward pass and the backward pass only scales it. See the module docstring for the design;
    GRM: Yang et al., "Regularizing Hidden States Enables Learning Generalizable Reward Model for LLMs",
    NeurIPS 2024, arXiv 2406.10216.

    Args:
        hidden: final hidden states [N, H], already shifted (row t predicts ``targets[t]``).
        weight: LM head weight [V, H], same dtype as ``hidden`` (fp32, bf16 or fp16).
        targets: token ids [N] in [0, V), or ``ignore_index``.
        bias: optional LM head bias [V].
        chunk_size: rows per chunk; None picks :func:`auto_chunk_size`.
        ignore_index: target value whose row is skipped.

    Returns:
        fp32 log-probs [N].

    Raises:
        ValueError: on mismatched shapes or dtypes, targets out of range, non-finite hidden states or a
            non-positive ``chunk_size``.

    Example:
        >>> import torch
        >>> hidden, weight = torch.randn(5, 8), torch.randn(11, 8, requires_grad=True)
        >>> targets = torch.tensor([1, 4, -100, 10, 0])
        >>> from rmreg.ops import linear_logprobs_naive
        >>> logps = linear_logprobs(hidden, weight, targets, chunk_size=2)
        >>> torch.allclose(logps, linear_logprobs_naive(hidden, weight, targets), atol=1e-5)
        True
        >>> logps.sum().backward(); weight.grad.shape
        torch.Size([11, 8])
    """
    _check_inputs(hidden, weight, targets, bias, chunk_size, ignore_index)
    chunk_size = chunk_size or auto_chunk_size(*weight.shape)
    needs = _needs_grad(hidden, weight, bias)
    return _ChunkedLogprobs.apply(hidden, weight, bias, targets.long(), chunk_size, ignore_index, needs)
