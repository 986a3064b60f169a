"""A loss on per-sequence summed log-probs, fused into the LM-head pass: :func:`fused_logprob_loss`.

Bounded memory for any number of sequences, and no recompute, for losses separable over groups of sequences
(GRM's SFT regularizer: one chosen sequence per pair; its DPO regularizers: the chosen and rejected sequences of
one pair). See :mod:`rmreg.ops` for the formulas shared with the other paths.
"""

from collections.abc import Callable

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

from rmreg._typing import Float, Int, Tensor, shape_checked, value_checks_enabled
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

__all__ = ["fused_logprob_loss"]

LossFn = Callable[[Tensor], Tensor]


def _loss_gradient(loss_fn: LossFn, logprobs: Tensor) -> Tensor:
    """∂ loss_fn / ∂ log π at ``logprobs`` (autograd on the small loss; zeros where it does not depend on them)."""
    with torch.enable_grad():
        point = logprobs.detach().clone().requires_grad_()
        (grad,) = torch.autograd.grad(loss_fn(point), point, allow_unused=True)
    return torch.zeros_like(logprobs) if grad is None else grad.to(logprobs.dtype)


def _check_loss_fn(loss_fn: LossFn, num_sequences: int, like: Tensor) -> None:
    """Raise ValueError unless ``loss_fn`` maps log-probs [S] to a scalar that depends on nothing else trainable."""
    with torch.enable_grad():
        value = loss_fn(like.new_zeros(num_sequences))
    if not isinstance(value, Tensor) or value.dim() != 0:
        raise ValueError(f"loss_fn must return a scalar tensor; got {getattr(value, 'shape', type(value).__name__)}")
    if value.requires_grad:
        raise ValueError(
            "loss_fn depends on tensors that require grad besides the log-probs; their gradient would be lost here "
            "(detach them, or add that part of the loss outside fused_logprob_loss)"
        )


def _multipliers(group: list[int], coefficients: Tensor, weights: list[float] | None, used: Tensor) -> list[Tensor]:
    """The factor of each of the group's weight-gradient buffers, and (into ``used``) the coefficient each sequence
    got: c_s per sequence; with declared weights w, one buffer holding Σ_s w_s ∂log π_s/∂W and the factor
    κ = c_s*/w_s* read at the sequence of largest |w| (so that κ·w_s = c_s when the declaration holds)."""
    if weights is None:
        used[group] = coefficients[group]
        return [coefficients[sequence] for sequence in group]
    pivot = max(group, key=lambda sequence: abs(weights[sequence]))
    kappa = coefficients[pivot] / weights[pivot] if weights[pivot] else coefficients[pivot] * 0
    used[group] = kappa * used.new_tensor([weights[sequence] for sequence in group])
    return [kappa]


def _check_separable(used: Tensor, full: Tensor, weighted: bool) -> None:
    """The coefficients used group by group must equal the loss's gradient at the final log-probs (one read)."""
    close = (used - full).abs() <= 1e-5 * full.abs() + 1e-7 * full.abs().max()
    finite, separable = torch.stack([torch.isfinite(full).all(), close.all()]).tolist()
    if not finite:
        raise ValueError(f"loss_fn has a non-finite gradient at the log-probs: {full.tolist()}")
    if not separable:
        declared = " or does not depend on each group only through Σ_s w_s·log π_s" if weighted else ""
        raise ValueError(
            f"loss_fn is not separable over the groups{declared}: the coefficients used ({used.tolist()}) differ "
            f"from its gradient at the final log-probs ({full.tolist()}); use linear_logprobs or "
            "sequence_linear_logprobs for such a loss"
        )


class _FusedLogprobLoss(torch.autograd.Function):
    """Group by group: log-probs, the loss's coefficients, gradients accumulated at once; backward only scales."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        targets: Tensor,
        sequence_ids: Tensor,
        members: list[list[int]],
        weights: list[float] | None,
        loss_fn: LossFn,
        chunk_size: int,
        ignore_index: int,
        transform: LogitTransform,
        compute: torch.dtype,
        needs: tuple[bool, bool, bool],
    ) -> tuple[Tensor, Tensor]:
        num_sequences = sum(len(group) for group in members)
        chunks = spans(targets != ignore_index, sequence_ids, num_sequences, chunk_size)
        chunks_of: list[list[Tensor]] = [[] for _ in range(num_sequences)]
        for rows, sequence in chunks:
            chunks_of[sequence].append(rows)
        largest = max((len(rows) for rows, _ in chunks), default=0)
        buffers = max((len(group) for group in members), default=0) if weights is None else min(1, len(members))
        buffers = buffers if needs[1] or needs[2] else 0
        with torch.autocast(hidden.device.type, enabled=False):
            sweep = Sweep(hidden, weight, bias, targets, transform, compute, largest)
            acc = sweep.acc
            logprobs = hidden.new_zeros(num_sequences, dtype=acc)
            coefficients = torch.zeros_like(logprobs)
            hidden_grad = torch.zeros_like(hidden) if needs[0] else None
            weight_total = weight.new_zeros(weight.shape, dtype=acc) if needs[1] else None
            bias_total = weight.new_zeros(weight.shape[:1], dtype=acc) if needs[2] else None
            weight_buffers = [weight.new_empty(weight.shape, dtype=acc) for _ in range(buffers * needs[1])]
            bias_buffers = weight.new_empty((buffers * needs[2], weight.shape[0]), dtype=acc)
            used = torch.zeros_like(logprobs)  # the coefficients the weight gradient was built with
            for group in members:
                filled: set[int] = set()  # buffers written for this group
                for position, sequence in enumerate(group):
                    slot = position if weights is None else 0
                    for rows in chunks_of[sequence]:
                        chunk = sweep.softmax(rows, with_grad=any(needs))
                        logprobs[sequence] += chunk.logprobs.sum()
                        ones = torch.ones_like(chunk.lse)
                        if hidden_grad is not None:  # ∂ log p_t/∂h_t; scaled by the coefficient in backward
                            hidden_grad[rows] = sweep.hidden_grad(chunk, ones).to(hidden.dtype)
                        row_scale = ones if weights is None else ones.mul_(weights[sequence])
                        if weight_buffers:
                            sweep.weight_grad_into(chunk, row_scale, weight_buffers[slot], overwrite=slot not in filled)
                        if len(bias_buffers):
                            sweep.bias_grad_into(chunk, row_scale, bias_buffers[slot], overwrite=slot not in filled)
                        filled.add(slot)
                if not any(needs):
                    continue
                coefficients[group] = _loss_gradient(loss_fn, logprobs)[group]  # later groups are still 0
                multipliers = _multipliers(group, coefficients, weights, used)
                for slot in filled:
                    if weight_total is not None:
                        weight_total.addcmul_(weight_buffers[slot], multipliers[slot])
                    if bias_total is not None:
                        bias_total.addcmul_(bias_buffers[slot], multipliers[slot])
            del weight_buffers, bias_buffers
            if any(needs) and num_sequences and value_checks_enabled():
                full = _loss_gradient(loss_fn, logprobs)
                _check_separable(torch.cat([coefficients, used]), torch.cat([full, full]), weights is not None)
            loss = loss_fn(logprobs.clone())
        ctx.buffers = hidden_grad, coefficients, weight_total, bias_total
        ctx.sequence_ids = sequence_ids
        ctx.dtypes = weight.dtype, None if bias is None else bias.dtype
        ctx.mark_non_differentiable(logprobs)
        return loss, logprobs

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_loss: Tensor, _grad_logprobs: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        if ctx.buffers is None:
            raise RuntimeError(
                "fused_logprob_loss allows one backward pass per forward pass (its gradient buffers are scaled in "
                "place); run the forward pass again, or use linear_logprobs to backpropagate twice"
            )
        (hidden_grad, coefficients, weight_grad, bias_grad), ctx.buffers = ctx.buffers, None
        scale = grad_loss.to(coefficients.dtype)
        if hidden_grad is not None:
            hidden_grad.mul_((coefficients * scale)[ctx.sequence_ids, None])
        weight_grad = None if weight_grad is None else weight_grad.mul_(scale).to(ctx.dtypes[0])
        bias_grad = None if bias_grad is None else bias_grad.mul_(scale).to(ctx.dtypes[1])
        return hidden_grad, weight_grad, bias_grad, *(None,) * 10


@shape_checked
def fused_logprob_loss(
    hidden: Float[Tensor, "n hidden"],
    weight: Float[Tensor, "vocab hidden"],
    targets: Int[Tensor, " n"],
    sequence_ids: Int[Tensor, " n"],
    group_ids: Int[Tensor, " sequences"],
    loss_fn: LossFn,
    *,
    sequence_weights: Float[Tensor, " sequences"] | None = None,
    softcap: float | None = None,
    scale: float | None = None,
    chunk_size: int | None = None,
    ignore_index: int = -100,
    bias: Float[Tensor, " vocab"] | None = None,
) -> tuple[Float[Tensor, ""], Float[Tensor, " sequences"]]:
    r"""``loss_fn(log π)`` of the per-sequence summed log-probs, fused into the LM-head pass, bounded in memory.

    log π_s = Σ_{t : sequence_ids[t] = s} log p_t with the per-token log-probs of
    :func:`~rmreg.ops.linear_logprobs` (same ``softcap``/``scale``; ignored targets contribute 0), and
    L = loss_fn(log π). ``loss_fn`` must be separable over the groups of ``group_ids``:
    L = Σ_g ℓ_g(log π_{s ∈ g}) (GRM's SFT regularizer: one group per pair holding its chosen sequence; the DPO
    regularizers: one group per pair holding its chosen and rejected sequences; Yang et al., NeurIPS 2024,
    arXiv 2406.10216). Then ∂L/∂log π_s depends only on the log-probs of s's own group, so the forward pass runs
    group by group: it computes the group's log-probs and each sequence's gradient of log π_s into a buffer, then
    the coefficients c_s = ∂L/∂log π_s (autograd on ``loss_fn``), and adds Σ_{s ∈ g} c_s · buffer_s into the one
    weight gradient at once::

        ∂L/∂W = Σ_g Σ_{s ∈ g} c_s ∂log π_s/∂W        ∂L/∂h_t = c_{s(t)} ∂log p_t/∂h_t

    Extra memory beyond the returned weight gradient (fp32; float64 for float64 inputs): one weight-sized
    buffer per sequence of the largest group (1 for SFT, 2 for DPO pairs) for any number of groups, the hidden
    gradient [N, H] and one chunk's [chunk, V] work buffers; a frozen head (``weight`` and ``bias`` not
    requiring grad) needs no weight buffer. With ``sequence_weights`` w the caller declares that each group's loss
    depends on its log-probs only through u_g = Σ_{s ∈ g} w_s·log π_s (true of GRM's SFT regularizer, w = 1, and
    of its DPO regularizers, w = +1 for chosen and −1 for rejected, with or without reference; of SimPO's
    length-normalized margin, w = ±1/|y|): then c_s = κ_g·w_s, and one buffer holding Σ_{s ∈ g} w_s ∂log π_s/∂W
    serves every group size, so the extra memory is one weight-sized buffer. Three LM-head matmuls per chunk (as
    many as the naive path), none in the backward pass, which only scales by the incoming gradient, so it runs once
    per forward pass (a second backward raises ``RuntimeError``). After the pass, the coefficients used are
    checked against the gradient of ``loss_fn`` at the final log-probs; a loss that is not separable (or not of
    the declared form) raises ``ValueError`` (a check skipped, with the other value checks, inside the model's hot
    path; see :func:`rmreg._typing.value_checks_enabled`). Device reads: the row selection (two), ``group_ids``
    and ``sequence_weights`` (none when they live on the CPU).

    Args:
        hidden: final hidden states [N, H] of the response tokens, already shifted.
        weight: LM head weight [V, H], same dtype as ``hidden`` (any float dtypes inside ``torch.autocast``).
        targets: token ids [N] in [0, V), or ``ignore_index``.
        sequence_ids: sequence of each row [N], in [0, S); rows need not be sorted.
        group_ids: group of each sequence [S], in [0, G); read on the host, so best kept on the CPU.
        loss_fn: maps the summed log-probs [S] (fp32) to the scalar loss, separably over the groups; it may read
            other tensors (reference log-probs) but none that require grad.
        sequence_weights: optional w [S] declaring each group's loss a function of Σ_{s ∈ g} w_s·log π_s (one
            weight-gradient buffer for any group size); read on the host.
        softcap: logit soft-cap, or None (see :func:`~rmreg.ops.linear_logprobs`).
        scale: logit scale, or None.
        chunk_size: rows per chunk (chunks never straddle sequences); None picks :func:`~rmreg.ops.auto_chunk_size`.
        ignore_index: target value whose row is skipped.
        bias: optional LM head bias [V].

    Returns:
        ``(loss, logprobs)``: the scalar loss, differentiable in ``hidden``, ``weight`` and ``bias``, and the
        detached summed log-probs [S].

    Raises:
        ValueError: as :func:`~rmreg.ops.linear_logprobs`; when the ids do not fit; when ``loss_fn`` does not
            return a scalar, depends on another tensor that requires grad, or is not separable over the groups.

    Example:
        >>> import torch
        >>> from torch.nn.functional import logsigmoid
        >>> from rmreg.ops import linear_logprobs_naive
        >>> hidden, weight = torch.randn(8, 4, requires_grad=True), torch.randn(20, 4, requires_grad=True)
        >>> targets, sequence_ids = torch.randint(0, 20, (8,)), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
        >>> pairs = torch.tensor([0, 1, 0, 1])  # chosen rows 0, 1, then rejected rows 2, 3
        >>> def dpo(logps):  # −log σ(β·(log π_c − log π_r)), mean over 2 pairs
        ...     return -logsigmoid(0.1 * (logps[:2] - logps[2:])).mean()
        >>> loss, logps = fused_logprob_loss(hidden, weight, targets, sequence_ids, pairs, dpo)
        >>> token_logps = linear_logprobs_naive(hidden, weight, targets)
        >>> torch.allclose(logps, token_logps.view(4, 2).sum(1), atol=1e-5), loss.requires_grad
        (True, True)
        >>> loss.backward(); weight.grad.shape
        torch.Size([20, 4])
        >>> signs = torch.tensor([1.0, 1.0, -1.0, -1.0])  # DPO depends on a pair through log π_c − log π_r
        >>> again, _ = fused_logprob_loss(hidden, weight, targets, sequence_ids, pairs, dpo, sequence_weights=signs)
        >>> torch.allclose(again, loss)
        True
    """
    transform = LogitTransform(softcap, scale)
    check_inputs(hidden, weight, targets, bias, chunk_size, ignore_index, transform)
    groups = group_ids.tolist() if group_ids.dim() == 1 and not group_ids.dtype.is_floating_point else None
    if groups is None or any(group < 0 for group in groups):
        raise ValueError(
            f"group_ids must be non-negative integer ids [S]; got {group_ids.dtype} {tuple(group_ids.shape)}"
        )
    num_sequences = check_sequence_ids(sequence_ids, targets, len(groups))
    _check_loss_fn(loss_fn, num_sequences, hidden.new_zeros((), dtype=torch.promote_types(hidden.dtype, torch.float32)))
    members: list[list[int]] = [[] for _ in range(max(groups, default=-1) + 1)]
    for sequence, group in enumerate(groups):
        members[group].append(sequence)
    members = [group for group in members if group]
    weights = None
    if sequence_weights is not None:
        if sequence_weights.shape != group_ids.shape:
            raise ValueError(
                f"sequence_weights must be [S] = {tuple(group_ids.shape)}; got {tuple(sequence_weights.shape)}"
            )
        weights = [float(w) for w in sequence_weights.tolist()]
    compute = compute_dtype(hidden)
    chunk_size = resolve_chunk_size(chunk_size, weight, compute, transform)
    needs = needs_grad(hidden, weight, bias)
    return _FusedLogprobLoss.apply(
        hidden,
        weight,
        bias,
        targets.long(),
        sequence_ids.long(),
        members,
        weights,
        loss_fn,
        chunk_size,
        ignore_index,
        transform,
        compute,
        needs,
    )
