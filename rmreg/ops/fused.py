"""Per-sequence summed LM-head log-probs with gradients prepared in the forward pass: :func:`sequence_linear_logprobs`.

See :mod:`rmreg.ops` for the formulas and the design.
"""

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from rmreg._typing import Float, Int, Tensor, shape_checked
from rmreg.ops._common import (
    LogitTransform,
    check_inputs,
    check_sequence_ids,
    compute_dtype,
    needs_grad,
    resolve_chunk_size,
    spans,
)
from rmreg.ops._kernel import Sweep

__all__ = ["FUSED_MAX_BUFFERS", "sequence_linear_logprobs"]

FUSED_MAX_BUFFERS = 3
"""Most weight-gradient buffers :func:`sequence_linear_logprobs` keeps (one per sequence; later sequences'
weight gradients are recomputed in the backward pass). :func:`~rmreg.ops.fused_logprob_loss` has no such cap."""


def _combine_in_place(buffers: list[Tensor], coefficients: Tensor) -> Tensor:
    """Σ_g coefficients[g] · buffers[g], accumulated into buffers[0]; each other buffer is freed once added.

    Empties ``buffers`` (the caller must hold no other reference), so the peak is the buffers themselves.
    """
    total = buffers.pop(0).mul_(coefficients[0])
    for group in range(1, len(coefficients)):
        total.addcmul_(buffers.pop(0), coefficients[group])
    return total


class _FusedSequenceLogprobs(torch.autograd.Function):
    """Per-sequence sums; gradients computed in forward, combined in place per sequence in backward."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        targets: Tensor,
        sequence_ids: Tensor,
        num_sequences: int,
        chunk_size: int,
        ignore_index: int,
        transform: LogitTransform,
        compute: torch.dtype,
        needs: tuple[bool, bool, bool],
    ) -> Tensor:
        chunks = spans(targets != ignore_index, sequence_ids, num_sequences, chunk_size)
        largest = max((len(rows) for rows, _ in chunks), default=0)
        buffered = min(num_sequences, FUSED_MAX_BUFFERS) if needs[1] or needs[2] else num_sequences
        with torch.autocast(hidden.device.type, enabled=False):
            sweep = Sweep(hidden, weight, bias, targets, transform, compute, largest)
            logprobs = hidden.new_zeros(hidden.shape[0], dtype=sweep.acc)
            lse = torch.zeros_like(logprobs)
            hidden_grad = torch.zeros_like(hidden) if needs[0] else None
            weight_grads = [weight.new_zeros(weight.shape, dtype=sweep.acc) for _ in range(buffered * needs[1])]
            bias_grads = weight.new_zeros((buffered * needs[2], weight.shape[0]), dtype=sweep.acc)
            for rows, sequence in chunks:
                chunk = sweep.softmax(rows, with_grad=any(needs))
                assert chunk.logprobs is not None  # computed: no lse given
                logprobs[rows], lse[rows] = chunk.logprobs, chunk.lse
                ones = torch.ones_like(chunk.lse)
                if hidden_grad is not None:
                    hidden_grad[rows] = sweep.hidden_grad(chunk, ones).to(hidden.dtype)
                if sequence < len(weight_grads):
                    sweep.weight_grad_into(chunk, ones, weight_grads[sequence])
                if sequence < len(bias_grads):
                    sweep.bias_grad_into(chunk, ones, bias_grads[sequence])
        # Kept on ctx, not saved for backward: the backward pass consumes them in place (see _combine_in_place).
        ctx.buffers = hidden_grad, weight_grads, bias_grads
        ctx.sequence_ids, ctx.needs = sequence_ids, needs
        ctx.recompute = [(rows, 0) for rows, sequence in chunks if sequence >= buffered]  # into the combined buffer
        ctx.options = transform, compute, largest
        if (needs[1] or needs[2]) and ctx.recompute:
            ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.dtypes = weight.dtype, None if bias is None else bias.dtype
        return logprobs.new_zeros(num_sequences).index_add_(0, sequence_ids, logprobs)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        if ctx.buffers is None:
            raise RuntimeError(
                "sequence_linear_logprobs allows one backward pass per forward pass (its gradient buffers are "
                "combined in place); run the forward pass again, or use linear_logprobs to backpropagate twice"
            )
        (hidden_grad, weight_grads, bias_grads), ctx.buffers = ctx.buffers, None
        if hidden_grad is not None:
            hidden_grad.mul_(grad_out[ctx.sequence_ids, None].to(hidden_grad.dtype))
        buffered = grad_out[: max(len(weight_grads), len(bias_grads))]
        weight_grad = _combine_in_place(weight_grads, buffered) if weight_grads else None
        bias_grad = buffered @ bias_grads if len(bias_grads) else None
        if ctx.saved_tensors:  # sequences without a buffer: recompute their chunks, accumulate into the sums
            hidden, weight, bias, targets, lse = ctx.saved_tensors
            transform, compute, largest = ctx.options
            with torch.autocast(hidden.device.type, enabled=False):
                sweep = Sweep(hidden, weight, bias, targets, transform, compute, largest)
                scale = grad_out[ctx.sequence_ids].to(sweep.acc)
                for rows, _ in ctx.recompute:
                    chunk = sweep.softmax(rows, lse=lse[rows])
                    if weight_grad is not None:
                        sweep.weight_grad_into(chunk, scale[rows], weight_grad)
                    if bias_grad is not None:
                        sweep.bias_grad_into(chunk, scale[rows], bias_grad)
        weight_grad = None if weight_grad is None else weight_grad.to(ctx.dtypes[0])
        bias_grad = None if bias_grad is None else bias_grad.to(ctx.dtypes[1])
        return hidden_grad, weight_grad, bias_grad, *(None,) * 9


@shape_checked
def sequence_linear_logprobs(
    hidden: Float[Tensor, "n hidden"],
    weight: Float[Tensor, "vocab hidden"],
    targets: Int[Tensor, " n"],
    sequence_ids: Int[Tensor, " n"],
    *,
    num_sequences: int | None = None,
    softcap: float | None = None,
    scale: float | None = None,
    chunk_size: int | None = None,
    ignore_index: int = -100,
    bias: Float[Tensor, " vocab"] | None = None,
) -> Float[Tensor, " sequences"]:
    """Summed log-probability of each sequence's target tokens, with gradients computed in the forward pass.

    log π_s = Σ_{t : sequence_ids[t] = s} log p_t, the per-token log-probs of :func:`~rmreg.ops.linear_logprobs`
    (with the same ``softcap`` and ``scale``; ignored targets contribute 0). The forward pass also computes the
    gradient of each log π_s, chunk by chunk, so the backward pass is a per-sequence scale and needs no
    recompute (one fp32 weight-gradient buffer per sequence while the head is trainable, for at most
    :data:`FUSED_MAX_BUFFERS` sequences; further sequences' weight gradients are recomputed in the backward
    pass). This is the cheap path for regularizers that only see summed log-probs, such as GRM's SFT and DPO
    regularizers (Yang et al., NeurIPS 2024, arXiv 2406.10216). :func:`~rmreg.ops.fused_logprob_loss` takes the
    loss itself and keeps its memory bounded for any number of sequences, with no recompute.
    The backward pass combines the buffers in place, so it runs once per forward pass; a second backward
    through the same graph (``retain_graph=True``) raises ``RuntimeError``.

    Args:
        hidden: final hidden states [N, H] of the response tokens, already shifted.
        weight: LM head weight [V, H], same dtype as ``hidden``.
        targets: token ids [N] in [0, V), or ``ignore_index``.
        sequence_ids: sequence of each row [N], in [0, num_sequences); rows need not be sorted.
        num_sequences: S; None means ``sequence_ids.max() + 1`` (0 when N = 0).
        softcap: logit soft-cap, or None (see :func:`~rmreg.ops.linear_logprobs`).
        scale: logit scale, or None.
        chunk_size: rows per chunk; None picks :func:`~rmreg.ops.auto_chunk_size`.
        ignore_index: target value whose row is skipped.
        bias: optional LM head bias [V].

    Returns:
        fp32 summed log-probs [S].

    Raises:
        ValueError: as :func:`~rmreg.ops.linear_logprobs`, and when ``sequence_ids`` do not lie in [0, S).

    Example:
        >>> import torch
        >>> hidden, weight = torch.randn(6, 8, requires_grad=True), torch.randn(11, 8)
        >>> targets, seqs = torch.tensor([1, 4, -100, 10, 0, 3]), torch.tensor([0, 0, 0, 1, 1, 1])
        >>> logps = sequence_linear_logprobs(hidden, weight, targets, seqs, num_sequences=2)
        >>> from rmreg.ops import linear_logprobs_naive
        >>> token_logps = linear_logprobs_naive(hidden, weight, targets)
        >>> torch.allclose(logps, torch.stack([token_logps[:3].sum(), token_logps[3:].sum()]), atol=1e-5)
        True
        >>> (-torch.nn.functional.logsigmoid(0.1 * logps)).mean().backward(); hidden.grad.shape
        torch.Size([6, 8])
    """
    transform = LogitTransform(softcap, scale)
    check_inputs(hidden, weight, targets, bias, chunk_size, ignore_index, transform)
    num_sequences = check_sequence_ids(sequence_ids, targets, num_sequences)
    compute = compute_dtype(hidden)
    chunk_size = resolve_chunk_size(chunk_size, weight, compute, transform)
    needs = needs_grad(hidden, weight, bias)
    return _FusedSequenceLogprobs.apply(
        hidden,
        weight,
        bias,
        targets.long(),
        sequence_ids.long(),
        num_sequences,
        chunk_size,
        ignore_index,
        transform,
        compute,
        needs,
    )
