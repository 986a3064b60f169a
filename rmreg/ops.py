"""Log-probabilities through an LM head without materializing the logits.

GRM's regularizers (Yang et al., NeurIPS 2024, arXiv 2406.10216) need log π(y|x): the fp32 log-softmax of the
LM head's logits ``hidden @ weight.T (+ bias)`` at each response token's target, summed per sequence. Done
naively this builds an [N, V] logit matrix (and a log-softmax copy, and their gradients): gigabytes at a
vocabulary of 128k, far more than the unavoidable extra of training, the weight gradient [V, H] and the
hidden-state gradient [N, H]. This module computes the same numbers chunk by chunk.

For one token with logits z = W h + b, target y and softmax p::

    log p_y = z_y − logsumexp(z)        ∂ log p_y / ∂z = onehot(y) − p =: g
    ∂/∂h = gᵀ W       ∂/∂W = g hᵀ       ∂/∂b = g

Design:

* Rows (tokens) are processed in chunks of ``chunk_size``; one [chunk, V] buffer (fp32, or float64 for float64
  inputs) is allocated per pass and reused for every chunk, so only one chunk's logits exist at a time and no
  chunk pays for fresh memory (on a CPU, page faults). The buffer only ever holds exp(z − c) for a per-row
  constant c: the one-hot part of g and the per-row factors are applied to the [chunk, H] operands of the
  matmuls (∂/∂h_t = s_t W[y_t] − (s_t/Z_t) e_t W, ∂/∂W = Σ_t s_t onehot(y_t) h_tᵀ − eᵀ((s/Z) ⊙ h) with
  e = exp(z − c), Z = Σ_v e), so a chunk costs four elementwise passes over [chunk, V] (max, subtract, exp,
  sum) and none in a recompute beyond subtract and exp. Tokens whose target is ``ignore_index`` are skipped
  (log-prob 0, no gradient). The logit and hidden-gradient matmuls run in the inputs' dtype (tensor cores on
  a GPU); logits are cast to fp32 before the log-sum-exp, and every sum across chunks (weight and bias
  gradients, per-sequence log-probs) is accumulated in fp32 (float64 inputs stay float64). Plain PyTorch
  ops: CPU and CUDA alike.
* :func:`linear_logprobs` (per-token log-probs, any downstream loss). Trainable head: the forward pass keeps
  its inputs and the per-row log-sum-exp ([N] floats); the backward pass recomputes each chunk's logits,
  turns them into softmax with one subtract and one exp, and accumulates the three gradients, so the extra
  memory is the weight gradient + the hidden gradient + one chunk, at the price of one more matmul per chunk
  than the naive path (four instead of three). Frozen head (weight and bias do not require grad, the
  paper's LoRA setting): ∂ log p_t/∂h_t = W[y_t] − p_t W does not depend on the downstream loss, so the
  forward pass prepares it ([N, H]) and the backward pass only scales its rows by the incoming gradient: two
  matmuls per chunk, no recompute, no weight gradient.
* :func:`sequence_linear_logprobs` (per-sequence sums, the "fused" path). Once a sequence's log-probs are
  summed, the loss reaches every token of that sequence through one scalar ∂L/∂ log π_s, so the forward pass
  computes each sequence's gradients, chunk by chunk (chunks never straddle two sequences), into one fp32
  weight-gradient buffer per sequence, and the backward pass only combines them, in place:
  ∂L/∂W = Σ_s (∂L/∂ log π_s) · buffer_s is accumulated into the first buffer and every other buffer is freed
  once added; ∂L/∂h_t = (∂L/∂ log π_s(t)) · ∂ log p_t/∂h_t scales the prepared hidden gradient in place.
  Three matmuls per chunk, as many as the naive path, and none in the backward pass. Extra memory with a
  trainable head: one fp32 weight-sized buffer per sequence (the combined gradient reuses the first) plus one
  chunk. To bound it, at most :data:`FUSED_MAX_BUFFERS` sequences get a buffer; the weight gradient of any
  further sequence is recomputed in the backward pass, chunk by chunk, straight into the combined gradient
  (its hidden gradient is still prepared in the forward pass), so the extra memory is at most
  ``FUSED_MAX_BUFFERS`` × the weight gradient + one chunk, and each recomputed token costs one more matmul
  (DPO on 2 pairs: 4 sequences, 3 buffers, a quarter of the tokens recomputed). Per-sequence buffers were
  chosen over sequence-by-sequence accumulation into one buffer because the per-sequence scale is unknown
  until the backward pass. Because the buffers are consumed, the fused
  path allows one backward pass per forward pass (a second one raises ``RuntimeError``). With a frozen head
  no weight buffer is needed and any number of sequences is fused.

The chunk size, when not given, comes from a memory budget: one chunk's fp32 logits take at most
``max(DEFAULT_CHUNK_BYTES, 4·V·H / 8)`` bytes, i.e. 64 MiB or an eighth of an fp32 copy of the weight,
whichever is larger (:func:`auto_chunk_size`): 131 rows at V = 128k, H = 256 (about half the weight
gradient), 256 rows at V = 256k, H = 2048. Larger chunks mean fewer, larger matmuls (faster on a busy CPU or
a GPU), smaller ones less memory.

:func:`linear_logprobs_naive` is the straightforward reference (full logits, ``log_softmax``, ``gather``).
"""

import torch
import torch.nn.functional as F
from torch.autograd.function import FunctionCtx, once_differentiable

from rmreg._typing import Float, Int, Tensor, shape_checked

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "FUSED_MAX_BUFFERS",
    "auto_chunk_size",
    "linear_logprobs",
    "linear_logprobs_naive",
    "sequence_linear_logprobs",
]

DEFAULT_CHUNK_BYTES = 64 * 2**20
"""Least memory budget of one chunk's fp32 logits, in bytes (see :func:`auto_chunk_size`)."""

FUSED_MAX_BUFFERS = 3
"""Most weight-gradient buffers :func:`sequence_linear_logprobs` keeps (one per sequence; later sequences'
weight gradients are recomputed in the backward pass)."""


def auto_chunk_size(vocab_size: int, hidden_size: int) -> int:
    """Rows per chunk such that one chunk's fp32 logits fit ``max(DEFAULT_CHUNK_BYTES, 4·V·H/8)`` bytes.

    Example:
        >>> auto_chunk_size(128_000, 256)
        131
    """
    budget = max(DEFAULT_CHUNK_BYTES, 4 * vocab_size * hidden_size // 8)
    return max(1, budget // (4 * vocab_size))


def _check_inputs(
    hidden: Tensor, weight: Tensor, targets: Tensor, bias: Tensor | None, chunk_size: int | None, ignore_index: int
) -> None:
    """Raise ValueError naming the problem when the inputs do not fit the contract."""
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(
            f"hidden must be [N, H] and weight [V, H] with the same H; got hidden {tuple(hidden.shape)} "
            f"and weight {tuple(weight.shape)}"
        )
    if targets.shape != hidden.shape[:1]:
        raise ValueError(f"targets must be [N] = {tuple(hidden.shape[:1])}; got {tuple(targets.shape)}")
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise ValueError(f"targets must hold integer token ids; got dtype {targets.dtype}")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"bias must be [V] = {tuple(weight.shape[:1])}; got {tuple(bias.shape)}")
    for name, tensor in (("weight", weight), ("bias", bias)):
        if tensor is not None and tensor.dtype != hidden.dtype:
            raise ValueError(f"{name} dtype {tensor.dtype} differs from hidden dtype {hidden.dtype}")
    if chunk_size is not None and chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive number of rows; got {chunk_size}")
    bad = (targets != ignore_index) & ((targets < 0) | (targets >= weight.shape[0]))
    if bad.any():
        raise ValueError(
            f"targets must lie in [0, {weight.shape[0]}) or equal ignore_index={ignore_index}; "
            f"found {targets[bad][0].item()}"
        )
    if not torch.isfinite(hidden).all():
        raise ValueError("hidden contains NaN or infinite values")


def _accumulation_dtype(tensor: Tensor) -> torch.dtype:
    """fp32 for fp32, bf16 and fp16 inputs; float64 stays float64."""
    return torch.promote_types(tensor.dtype, torch.float32)


def _spans(valid: Tensor, groups: Tensor | None, num_groups: int, chunk_size: int) -> list[tuple[Tensor, int]]:
    """Split the valid rows into chunks of at most ``chunk_size`` rows, each inside one group.

    Returns (row indices, group) pairs; with ``groups=None`` every row is in group 0.
    """
    rows = valid.nonzero().squeeze(1)
    if groups is None:
        counts = [rows.numel()]
    else:
        rows = rows[torch.argsort(groups[rows], stable=True)]
        counts = torch.bincount(groups[rows], minlength=num_groups).tolist()
    spans = []
    start = 0
    for group, count in enumerate(counts):
        spans += [
            (rows[i : min(i + chunk_size, start + count)], group) for i in range(start, start + count, chunk_size)
        ]
        start += count
    return spans


def _logits_into(out: Tensor, chunk: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``chunk @ weight.T + bias`` written into ``out`` (fp32 or float64), computed in the inputs' dtype.

    Reusing one buffer for every chunk avoids a fresh [chunk, V] allocation per chunk, which on a CPU means
    page faults (allocations this large are fresh memory maps) and on a GPU nothing worse than reuse.
    """
    if chunk.dtype != out.dtype:  # bf16/fp16: matmul in the input dtype, then one cast into the fp32 buffer
        return out.copy_(F.linear(chunk, weight, bias))
    if bias is None:
        return torch.mm(chunk, weight.T, out=out)
    return torch.addmm(bias, chunk, weight.T, out=out)


def _sweep(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    targets: Tensor,
    spans: list[tuple[Tensor, int]],
    row_scale: Tensor | None,
    num_groups: int,
    needs: tuple[bool, bool, bool],
    lse: Tensor | None = None,
    into: tuple[list[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor | None, list[Tensor], Tensor]:
    """One pass over the chunks: log-probs, log-sum-exps and, where ``needs`` says so, gradients of Σ_t s_t log p_t.

    ``row_scale`` gives s_t (None: no gradients); ``needs`` = (hidden, weight, bias). With ``lse`` (the
    log-sum-exps of an earlier sweep) each chunk's softmax is exp(z − lse) at once, and the returned log-probs
    are not computed (zeros). The [chunk, V] buffer only ever holds exp(z − c) for a per-row constant c; the
    one-hot part of ∂ log p/∂z = onehot(y) − p and the per-row factors are applied to [chunk, H] operands:
    ∂/∂h_t = s_t W[y_t] − (s_t/Z_t) e_t W, ∂/∂W = Σ_t s_t onehot(y_t) h_tᵀ − eᵀ((s/Z) ⊙ h). Weight and bias
    gradients are accumulated in fp32 (float64 stays float64), one separately allocated buffer per group (none
    when not needed; groups ≥ ``num_groups`` get none), or into the given ``into`` = (weight buffers, bias
    buffers). Rows outside ``spans`` get log-prob 0 and hidden gradient 0.
    """
    needs_hidden, needs_weight, needs_bias = needs if row_scale is not None else (False, False, False)
    acc = _accumulation_dtype(hidden)
    logprobs = hidden.new_zeros(hidden.shape[0], dtype=acc)
    lses = hidden.new_zeros(hidden.shape[0], dtype=acc) if lse is None else lse
    hidden_grad = torch.zeros_like(hidden) if needs_hidden else None
    if into is None:
        weight_grads = [weight.new_zeros(weight.shape, dtype=acc) for _ in range(num_groups * needs_weight)]
        bias_grads = weight.new_zeros((num_groups * needs_bias, weight.shape[0]), dtype=acc)
    else:
        weight_grads, bias_grads = into
    largest = max((len(rows) for rows, _ in spans), default=0)
    buf = hidden.new_empty((largest, weight.shape[0]), dtype=acc)  # the only [chunk, V] buffer
    for rows, group in spans:
        chunk, target = hidden[rows], targets[rows]
        exps = _logits_into(buf[: len(rows)], chunk, weight, bias)
        if lse is None:
            picked = exps.gather(1, target[:, None]).squeeze(1)
            peak = exps.amax(dim=1)
            norm = exps.sub_(peak[:, None]).exp_().sum(dim=1)  # exps = exp(z − max z)
            lses[rows] = peak + norm.log()
            logprobs[rows] = picked - lses[rows]
        else:
            norm = exps.sub_(lse[rows, None]).exp_().new_ones(())  # exps = exp(z − lse) = softmax
        if row_scale is None:
            continue
        scale = row_scale[rows]
        coef = scale / norm  # ∂/∂z_t = s_t·onehot(y_t) − coef_t·exps_t
        if needs_hidden:
            softmax_w = (exps.to(weight.dtype) @ weight).to(acc)
            hidden_grad[rows] = (scale[:, None] * weight[target].to(acc) - coef[:, None] * softmax_w).to(hidden.dtype)
        if needs_weight and group < len(weight_grads):
            chunk = chunk.to(acc)
            weight_grads[group].addmm_(exps.T, chunk * -coef[:, None]).index_add_(0, target, chunk * scale[:, None])
        if needs_bias and group < len(bias_grads):
            bias_grads[group].sub_(coef @ exps).index_add_(0, target, scale)
    return logprobs, lses, hidden_grad, weight_grads, bias_grads


def _needs_grad(hidden: Tensor, weight: Tensor, bias: Tensor | None) -> tuple[bool, bool, bool]:
    """Which of (hidden, weight, bias) need a gradient from this call (none under ``torch.no_grad``)."""
    enabled = torch.is_grad_enabled()
    return (
        enabled and hidden.requires_grad,
        enabled and weight.requires_grad,
        enabled and (bias is not None and bias.requires_grad),
    )


def _combine_in_place(buffers: list[Tensor], coefficients: Tensor) -> Tensor:
    """Σ_g coefficients[g] · buffers[g], accumulated into buffers[0]; each other buffer is freed once added.

    Empties ``buffers`` (the caller must hold no other reference), so the peak is the buffers themselves.
    """
    total = buffers.pop(0).mul_(coefficients[0])
    for group in range(1, len(coefficients)):
        total.addcmul_(buffers.pop(0), coefficients[group])
    return total


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


class _FusedSequenceLogprobs(torch.autograd.Function):
    """Per-sequence sums; gradients computed in forward, combined in place per sequence in backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        targets: Tensor,
        sequence_ids: Tensor,
        num_sequences: int,
        chunk_size: int,
        ignore_index: int,
        needs: tuple[bool, bool, bool],
    ) -> Tensor:
        spans = _spans(targets != ignore_index, sequence_ids, num_sequences, chunk_size)
        head_trainable = needs[1] or needs[2]
        buffered = min(num_sequences, FUSED_MAX_BUFFERS) if head_trainable else num_sequences
        ones = hidden.new_ones(hidden.shape[0], dtype=_accumulation_dtype(hidden)) if any(needs) else None
        logprobs, lse, hidden_grad, weight_grads, bias_grads = _sweep(
            hidden, weight, bias, targets, spans, ones, buffered, needs
        )
        # Kept on ctx, not saved for backward: the backward pass consumes them in place (see _combine_in_place).
        ctx.buffers = hidden_grad, weight_grads, bias_grads
        ctx.sequence_ids, ctx.needs = sequence_ids, needs
        ctx.dtypes = weight.dtype, None if bias is None else bias.dtype
        ctx.recompute = [(rows, 0) for rows, group in spans if group >= buffered]  # into the combined buffer
        if head_trainable and ctx.recompute:
            ctx.save_for_backward(hidden, weight, bias, targets, lse)
        return logprobs.new_zeros(num_sequences).index_add_(0, sequence_ids, logprobs)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
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
            weights_into = [] if weight_grad is None else [weight_grad]
            biases_into = lse.new_zeros(0, 0) if bias_grad is None else bias_grad[None]
            scale = grad_out[ctx.sequence_ids]
            needs = (False, *ctx.needs[1:])
            _sweep(hidden, weight, bias, targets, ctx.recompute, scale, 1, needs, lse, (weights_into, biases_into))
        weight_grad = None if weight_grad is None else weight_grad.to(ctx.dtypes[0])
        bias_grad = None if bias_grad is None else bias_grad.to(ctx.dtypes[1])
        return hidden_grad, weight_grad, bias_grad, None, None, None, None, None, None


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


@shape_checked
def sequence_linear_logprobs(
    hidden: Float[Tensor, "n hidden"],
    weight: Float[Tensor, "vocab hidden"],
    targets: Int[Tensor, " n"],
    sequence_ids: Int[Tensor, " n"],
    *,
    num_sequences: int | None = None,
    bias: Float[Tensor, " vocab"] | None = None,
    chunk_size: int | None = None,
    ignore_index: int = -100,
) -> Float[Tensor, " sequences"]:
    """Summed log-probability of each sequence's target tokens, with gradients computed in the forward pass.

    log π_s = Σ_{t : sequence_ids[t] = s} log p_t, the per-token log-probs of :func:`linear_logprobs`
    (ignored targets contribute 0). The forward pass also computes the gradient of each log π_s, chunk by
    chunk, so the backward pass is a per-sequence scale and needs no recompute (one fp32 weight-gradient
    buffer per sequence while the head is trainable, for at most :data:`FUSED_MAX_BUFFERS` sequences; further
    sequences' weight gradients are recomputed in the backward pass). This is the cheap path for
    regularizers that only see summed log-probs, such as GRM's SFT and DPO regularizers (Yang et al.,
    NeurIPS 2024, arXiv 2406.10216).
    The backward pass combines the buffers in place, so it runs once per forward pass; a second backward
    through the same graph (``retain_graph=True``) raises ``RuntimeError``.

    Args:
        hidden: final hidden states [N, H] of the response tokens, already shifted.
        weight: LM head weight [V, H], same dtype as ``hidden``.
        targets: token ids [N] in [0, V), or ``ignore_index``.
        sequence_ids: sequence of each row [N], in [0, num_sequences); rows need not be sorted.
        num_sequences: S; None means ``sequence_ids.max() + 1`` (0 when N = 0).
        bias: optional LM head bias [V].
        chunk_size: rows per chunk; None picks :func:`auto_chunk_size`.
        ignore_index: target value whose row is skipped.

    Returns:
        fp32 summed log-probs [S].

    Raises:
        ValueError: as :func:`linear_logprobs`, and when ``sequence_ids`` do not lie in [0, S).

    Example:
        >>> import torch
        >>> hidden, weight = torch.randn(6, 8, requires_grad=True), torch.randn(11, 8)
        >>> targets, seqs = torch.tensor([1, 4, -100, 10, 0, 3]), torch.tensor([0, 0, 0, 1, 1, 1])
        >>> logps = sequence_linear_logprobs(hidden, weight, targets, seqs, num_sequences=2)
        >>> token_logps = linear_logprobs_naive(hidden, weight, targets)
        >>> torch.allclose(logps, torch.stack([token_logps[:3].sum(), token_logps[3:].sum()]), atol=1e-5)
        True
        >>> (-torch.nn.functional.logsigmoid(0.1 * logps)).mean().backward(); hidden.grad.shape
        torch.Size([6, 8])
    """
    _check_inputs(hidden, weight, targets, bias, chunk_size, ignore_index)
    if sequence_ids.shape != targets.shape or sequence_ids.dtype.is_floating_point:
        raise ValueError(
            f"sequence_ids must be integer ids of shape {tuple(targets.shape)}; "
            f"got {sequence_ids.dtype} {tuple(sequence_ids.shape)}"
        )
    if num_sequences is None:
        num_sequences = int(sequence_ids.max()) + 1 if sequence_ids.numel() else 0
    if sequence_ids.numel() and (sequence_ids.min() < 0 or sequence_ids.max() >= num_sequences):
        raise ValueError(f"sequence_ids must lie in [0, num_sequences={num_sequences})")
    sequence_ids = sequence_ids.long()
    needs = _needs_grad(hidden, weight, bias)
    chunk_size = chunk_size or auto_chunk_size(*weight.shape)
    return _FusedSequenceLogprobs.apply(
        hidden, weight, bias, targets.long(), sequence_ids, num_sequences, chunk_size, ignore_index, needs
    )


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
