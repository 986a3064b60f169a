"""The one-pass strategy of :func:`~rmreg.ops.fused_logprob_loss`, for losses separable over groups of sequences.

Group by group, the pass computes the group's summed log-probs and each sequence's ∂log π_s/∂W into a buffer
(:class:`~rmreg.ops._kernel.Sweep`, three matmuls a chunk), then the group's coefficients c_s = ∂L/∂log π_s, and
adds Σ_{s ∈ g} c_s·buffer_s into the weight gradient. A loss separable over the groups, L = Σ_g ℓ_g(log π_{s ∈ g}),
makes c_s final as soon as its group is done; the coefficients used are checked against the loss's gradient at the
final log-probs afterwards.
"""

from collections.abc import Callable

import torch

from rmreg._typing import Tensor, value_checks_enabled
from rmreg.ops._kernel import Sweep

LossFn = Callable[[Tensor], Tensor]


def loss_gradient(loss_fn: LossFn, logprobs: Tensor) -> Tensor:
    """∂ loss_fn / ∂ log π at ``logprobs`` (autograd on the small loss; zeros where it does not depend on them)."""
    with torch.enable_grad():
        point = logprobs.detach().clone().requires_grad_()
        (grad,) = torch.autograd.grad(loss_fn(point), point, allow_unused=True)
    return torch.zeros_like(logprobs) if grad is None else grad.to(logprobs.dtype)


def parse_groups(group_ids: Tensor, sequence_weights: Tensor | None) -> tuple[list[list[int]], list[float] | None]:
    """The sequences of each non-empty group, and the declared weights as floats (both read on the host)."""
    groups = group_ids.tolist() if group_ids.dim() == 1 and not group_ids.dtype.is_floating_point else None
    if groups is None or any(group < 0 for group in groups):
        raise ValueError(
            f"group_ids must be non-negative integer ids [S]; got {group_ids.dtype} {tuple(group_ids.shape)}"
        )
    members: list[list[int]] = [[] for _ in range(max(groups, default=-1) + 1)]
    for sequence, group in enumerate(groups):
        members[group].append(sequence)
    if sequence_weights is None:
        return [group for group in members if group], None
    if sequence_weights.shape != group_ids.shape:
        raise ValueError(
            f"sequence_weights must be [S] = {tuple(group_ids.shape)}; got {tuple(sequence_weights.shape)}"
        )
    return [group for group in members if group], [float(w) for w in sequence_weights.tolist()]


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


def one_pass(
    sweep: Sweep,
    chunks: list[tuple[Tensor, int]],
    members: list[list[int]],
    weights: list[float] | None,
    loss_fn: LossFn,
    logprobs: Tensor,
    needs: tuple[bool, bool, bool],
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """Group by group: the group's log-probs and gradients of log π_s into buffers, then its coefficients, then the
    buffers into the gradients (three matmuls a chunk). Returns (coefficients, ∂/∂h unscaled, ∂L/∂W, ∂L/∂b)."""
    hidden, weight, acc = sweep.hidden, sweep.weight, sweep.acc
    chunks_of: list[list[Tensor]] = [[] for _ in range(len(logprobs))]
    for rows, sequence in chunks:
        chunks_of[sequence].append(rows)
    buffers = max((len(group) for group in members), default=0) if weights is None else min(1, len(members))
    buffers = buffers if needs[1] or needs[2] else 0
    coefficients = torch.zeros_like(logprobs)
    hidden_grad = torch.zeros(hidden.shape, dtype=acc, device=hidden.device) if needs[0] else None
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
                assert chunk.logprobs is not None  # computed whenever no log-sum-exp is given
                logprobs[sequence] += chunk.logprobs.sum()
                ones = torch.ones_like(chunk.lse)
                if hidden_grad is not None:  # ∂ log p_t/∂h_t; scaled by the coefficient at the end
                    hidden_grad[rows] = sweep.hidden_grad(chunk, ones)
                row_scale = ones if weights is None else ones.mul_(weights[sequence])
                if weight_buffers:
                    sweep.weight_grad_into(chunk, row_scale, weight_buffers[slot], overwrite=slot not in filled)
                if len(bias_buffers):
                    sweep.bias_grad_into(chunk, row_scale, bias_buffers[slot], overwrite=slot not in filled)
                filled.add(slot)
        if not any(needs):
            continue
        coefficients[group] = loss_gradient(loss_fn, logprobs)[group]  # later groups are still 0
        multipliers = _multipliers(group, coefficients, weights, used)
        for slot in filled:
            if weight_total is not None:
                weight_total.addcmul_(weight_buffers[slot], multipliers[slot])
            if bias_total is not None:
                bias_total.addcmul_(bias_buffers[slot], multipliers[slot])
    del weight_buffers, bias_buffers
    if any(needs) and len(logprobs) and value_checks_enabled():
        full = loss_gradient(loss_fn, logprobs)
        _check_separable(torch.cat([coefficients, used]), torch.cat([full, full]), weights is not None)
    return coefficients, hidden_grad, weight_total, bias_total
