"""Per-token LM-head log-probs, chunk by chunk: :func:`linear_logprobs` (the generic path, any downstream loss).

See :mod:`rmreg.ops` for the formulas and the design.
"""

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from rmreg._typing import Float, Int, Tensor, shape_checked
from rmreg.ops._common import LogitTransform, check_inputs, compute_dtype, needs_grad, resolve_chunk_size, spans
from rmreg.ops._kernel import Sweep

__all__ = ["linear_logprobs"]


class _ChunkedLogprobs(torch.autograd.Function):
    """Per-token log-probs; backward recomputes chunks (trainable head) or scales rows (frozen head)."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        targets: Tensor,
        chunk_size: int,
        ignore_index: int,
        transform: LogitTransform,
        compute: torch.dtype,
        needs: tuple[bool, bool, bool],
    ) -> Tensor:
        chunks = spans(targets != ignore_index, None, 1, chunk_size)
        largest = max((len(rows) for rows, _ in chunks), default=0)
        ctx.head_trainable, ctx.options = needs[1] or needs[2], (chunks, largest, transform, compute, needs)
        frozen_hidden_grad = needs[0] and not ctx.head_trainable  # frozen head: prepare ∂ log p_t / ∂h_t now
        with torch.autocast(hidden.device.type, enabled=False):
            sweep = Sweep(hidden, weight, bias, targets, transform, compute, largest)
            logprobs = hidden.new_zeros(hidden.shape[0], dtype=sweep.acc)
            lse = torch.zeros_like(logprobs) if ctx.head_trainable else None
            hidden_grad = torch.zeros_like(hidden) if frozen_hidden_grad else None
            for rows, _ in chunks:
                chunk = sweep.softmax(rows, with_grad=frozen_hidden_grad)
                assert chunk.logprobs is not None  # computed: no lse given
                logprobs[rows] = chunk.logprobs
                if lse is not None:
                    lse[rows] = chunk.lse
                if hidden_grad is not None:
                    hidden_grad[rows] = sweep.hidden_grad(chunk, torch.ones_like(chunk.lse)).to(hidden.dtype)
        if ctx.head_trainable:
            ctx.save_for_backward(hidden, weight, bias, targets, lse)
        else:
            ctx.save_for_backward(hidden_grad)
        return logprobs

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        nones = (None,) * 7
        if not ctx.head_trainable:
            (hidden_grad,) = ctx.saved_tensors
            scaled = None if hidden_grad is None else hidden_grad * grad_out[:, None].to(hidden_grad.dtype)
            return scaled, None, None, *nones
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        chunks, largest, transform, compute, needs = ctx.options
        with torch.autocast(hidden.device.type, enabled=False):
            sweep = Sweep(hidden, weight, bias, targets, transform, compute, largest)
            scale = grad_out.to(sweep.acc)
            hidden_grad = torch.zeros_like(hidden) if needs[0] else None
            weight_grad = weight.new_zeros(weight.shape, dtype=sweep.acc) if needs[1] else None
            bias_grad = bias.new_zeros(bias.shape, dtype=sweep.acc) if needs[2] else None
            for rows, _ in chunks:
                chunk = sweep.softmax(rows, lse=lse[rows])
                if hidden_grad is not None:
                    hidden_grad[rows] = sweep.hidden_grad(chunk, scale[rows]).to(hidden.dtype)
                if weight_grad is not None:
                    sweep.weight_grad_into(chunk, scale[rows], weight_grad)
                if bias_grad is not None:
                    sweep.bias_grad_into(chunk, scale[rows], bias_grad)
        weight_grad = None if weight_grad is None else weight_grad.to(weight.dtype)
        bias_grad = None if bias_grad is None else bias_grad.to(bias.dtype)
        return hidden_grad, weight_grad, bias_grad, *nones


@shape_checked
def linear_logprobs(
    hidden: Float[Tensor, "n hidden"],
    weight: Float[Tensor, "vocab hidden"],
    targets: Int[Tensor, " n"],
    *,
    softcap: float | None = None,
    scale: float | None = None,
    chunk_size: int | None = None,
    ignore_index: int = -100,
    bias: Float[Tensor, " vocab"] | None = None,
) -> Float[Tensor, " n"]:
    """Log-probability of each target token under an LM head, without materializing [N, V] logits.

    With raw logits z_t = weight · hidden_t + bias and the head's logit transform
    ℓ_t = softcap·tanh(scale·z_t / softcap) (the soft-cap only when ``softcap`` is given, the scale only when
    ``scale`` is given: Gemma 2/3 soft-cap, Cohere and Granite scale),

        log p_t = ℓ_t[y_t] − logsumexp(ℓ_t),

    computed in fp32 one chunk of rows at a time; 0.0 where ``targets == ignore_index``. Differentiable in
    ``hidden``, ``weight`` and ``bias`` (exact gradients through the transform). With a trainable head the
    backward pass recomputes each chunk's logits; with a frozen head (``weight`` and ``bias`` not requiring grad)
    the hidden-state gradient is prepared in the forward pass and the backward pass only scales it. Inside
    ``torch.autocast`` the matmuls run in the autocast dtype (fp32 ``weight`` is cast once per pass), with the
    log-sum-exp and the weight gradient in fp32. See :mod:`rmreg.ops` for the design; GRM: Yang et al.,
    "Regularizing Hidden States Enables Learning Generalizable Reward Model for LLMs", NeurIPS 2024,
    arXiv 2406.10216.

    Args:
        hidden: final hidden states [N, H], already shifted (row t predicts ``targets[t]``).
        weight: LM head weight [V, H], same dtype as ``hidden`` (fp32, bf16, fp16 or float64; any float dtype
            inside ``torch.autocast``).
        targets: token ids [N] in [0, V), or ``ignore_index``.
        softcap: logit soft-cap c > 0 (``final_logit_softcapping`` of Gemma 2/3), or None.
        scale: logit scale (Cohere's ``logit_scale``; Granite's is ``1 / logits_scaling``), or None.
        chunk_size: rows per chunk; None picks :func:`~rmreg.ops.auto_chunk_size` for the work buffers in use.
        ignore_index: target value whose row is skipped.
        bias: optional LM head bias [V].

    Returns:
        fp32 log-probs [N] (float64 for float64 inputs).

    Raises:
        ValueError: on mismatched shapes or dtypes, targets out of range, non-finite hidden states, a
            non-positive ``chunk_size`` or ``softcap``, or a non-finite ``scale``.

    Example:
        >>> import torch
        >>> from rmreg.ops import linear_logprobs_naive
        >>> hidden, weight = torch.randn(5, 8), torch.randn(11, 8, requires_grad=True)
        >>> targets = torch.tensor([1, 4, -100, 10, 0])
        >>> logps = linear_logprobs(hidden, weight, targets, softcap=30.0, chunk_size=2)
        >>> torch.allclose(logps, linear_logprobs_naive(hidden, weight, targets, softcap=30.0), atol=1e-5)
        True
        >>> logps.sum().backward(); weight.grad.shape
        torch.Size([11, 8])
    """
    transform = LogitTransform(softcap, scale)
    check_inputs(hidden, weight, targets, bias, chunk_size, ignore_index, transform)
    compute = compute_dtype(hidden)
    chunk_size = resolve_chunk_size(chunk_size, weight, compute, transform)
    needs = needs_grad(hidden, weight, bias)
    return _ChunkedLogprobs.apply(
        hidden, weight, bias, targets.long(), chunk_size, ignore_index, transform, compute, needs
    )
