"""Shared pieces of the LM-head log-prob paths: input checks, chunking, and the chunk sweep.

See :mod:`rmreg.ops` for the formulas and the design.
"""

import torch
import torch.nn.functional as F

from rmreg._typing import Tensor

DEFAULT_CHUNK_BYTES = 64 * 2**20
"""Least memory budget of one chunk's fp32 logits, in bytes (see :func:`auto_chunk_size`)."""


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
