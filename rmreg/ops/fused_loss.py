"""A loss on per-sequence summed log-probs, fused into the LM-head pass: :func:`fused_logprob_loss`.

Every gradient is computed in the forward pass, with memory bounded for any number of sequences, and the backward
pass only scales them: in two passes over the vocabulary for any loss of the sums, or in one for losses separable
over groups of sequences (GRM's SFT regularizer: one chosen sequence per pair; its DPO regularizers: the chosen and
rejected sequences of one pair). See :mod:`rmreg.ops` for the formulas shared with the other paths.
"""

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from rmreg._typing import Float, Int, Tensor, shape_checked, value_checks_enabled
from rmreg.ops._common import (
    LogitTransform,
    accumulation_dtype,
    check_inputs,
    check_sequence_ids,
    compute_dtype,
    needs_grad,
    resolve_chunk_size,
    spans,
)
from rmreg.ops._grouped import LossFn, loss_gradient, one_pass, parse_groups
from rmreg.ops._kernel import Sweep
from rmreg.ops._tiles import Tiles, tile_shape

__all__ = ["fused_logprob_loss"]


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


def _two_pass(
    tiles: Tiles, token_sequences: Tensor, loss_fn: LossFn, logprobs: Tensor, needs: tuple[bool, bool, bool]
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Every log-sum-exp, then the log-probs and the loss's coefficients, then every gradient (four matmuls a
    tile). Returns ∂L/∂ of (the rows' hidden states, W, b)."""
    target, onehot = tiles.target_logits()
    lse = tiles.log_sum_exp()
    wide = logprobs.dtype if logprobs.device.type == "mps" else torch.float64  # long sums lose nothing (MPS: no fp64)
    sums = logprobs.new_zeros(logprobs.shape, dtype=wide)
    logprobs.copy_(sums.index_add_(0, token_sequences, (target - lse).to(wide)))
    if not any(needs):
        return None, None, None
    coefficients = loss_gradient(loss_fn, logprobs)
    if value_checks_enabled() and not bool(torch.isfinite(coefficients).all()):
        raise ValueError(f"loss_fn has a non-finite gradient at the log-probs: {coefficients.tolist()}")
    return tiles.gradients(lse, coefficients[token_sequences], onehot, needs)


class _FusedLogprobLoss(torch.autograd.Function):
    """The loss, its log-probs and every gradient in the forward pass; the backward pass only scales."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        targets: Tensor,
        sequence_ids: Tensor,
        num_sequences: int,
        members: list[list[int]] | None,
        weights: list[float] | None,
        loss_fn: LossFn,
        chunk_size: int | None,
        ignore_index: int,
        transform: LogitTransform,
        compute: torch.dtype,
        needs: tuple[bool, bool, bool],
    ) -> tuple[Tensor, Tensor]:
        valid = targets != ignore_index
        with torch.autocast(hidden.device.type, enabled=False):
            logprobs = hidden.new_zeros(num_sequences, dtype=accumulation_dtype(compute))
            hidden_grad: Tensor | None = None
            if members is None:
                rows = valid.nonzero().squeeze(1)
                every = len(rows) == len(targets)
                shape = tile_shape(len(rows), weight, compute, transform, chunk_size)
                tiles = Tiles(hidden if every else hidden[rows], weight, bias, targets[rows], transform, compute, shape)
                rows_grad, weight_grad, bias_grad = _two_pass(tiles, sequence_ids[rows], loss_fn, logprobs, needs)
                if rows_grad is not None:  # ignored rows get no gradient
                    rows_grad = rows_grad.to(hidden.dtype)
                    hidden_grad = rows_grad if every else torch.zeros_like(hidden).index_copy_(0, rows, rows_grad)
            else:
                chunk_size = resolve_chunk_size(chunk_size, weight, compute, transform)
                chunks = spans(valid, sequence_ids, num_sequences, chunk_size)
                largest = max((len(rows) for rows, _ in chunks), default=0)
                sweep = Sweep(hidden, weight, bias, targets, transform, compute, largest)
                coefficients, raw, weight_grad, bias_grad = one_pass(
                    sweep, chunks, members, weights, loss_fn, logprobs, needs
                )
                if raw is not None:  # ∂ log p_t/∂h_t, scaled by its sequence's coefficient (0 on ignored rows)
                    hidden_grad = raw.mul_(coefficients[sequence_ids, None]).to(hidden.dtype)
            loss = loss_fn(logprobs.clone())
        ctx.gradients = hidden_grad, weight_grad, bias_grad
        ctx.dtypes = weight.dtype, None if bias is None else bias.dtype
        ctx.mark_non_differentiable(logprobs)
        return loss, logprobs

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: Tensor, _grad_logprobs: Tensor) -> tuple[Tensor | None, ...]:
        if ctx.gradients is None:
            raise RuntimeError(
                "fused_logprob_loss allows one backward pass per forward pass (its gradients are scaled in "
                "place); run the forward pass again, or use linear_logprobs to backpropagate twice"
            )
        (hidden_grad, weight_grad, bias_grad), ctx.gradients = ctx.gradients, None
        scale = grad_loss.float() if grad_loss.dtype != torch.float64 else grad_loss
        hidden_grad = None if hidden_grad is None else hidden_grad.mul_(scale.to(hidden_grad.dtype))
        weight_grad = None if weight_grad is None else weight_grad.mul_(scale).to(ctx.dtypes[0])
        bias_grad = None if bias_grad is None else bias_grad.mul_(scale).to(ctx.dtypes[1])
        return hidden_grad, weight_grad, bias_grad, *(None,) * 11


@shape_checked
def fused_logprob_loss(
    hidden: Float[Tensor, "n hidden"],
    weight: Float[Tensor, "vocab hidden"],
    targets: Int[Tensor, " n"],
    sequence_ids: Int[Tensor, " n"],
    loss_fn: LossFn,
    *,
    num_sequences: int | None = None,
    group_ids: Int[Tensor, " sequences"] | None = None,
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
    L = loss_fn(log π) (GRM's SFT and DPO regularizers; Yang et al., NeurIPS 2024, arXiv 2406.10216). With the
    coefficients c_s = ∂L/∂log π_s (autograd on the small ``loss_fn``)::

        ∂L/∂W = Σ_s c_s ∂log π_s/∂W        ∂L/∂h_t = c_{s(t)} ∂log p_t/∂h_t

    Every gradient is computed in the forward pass; the backward pass only scales them by the incoming gradient,
    so it runs once per forward pass (a second backward raises ``RuntimeError``). Two strategies:

    * **Two passes** (the default, any ``loss_fn``): the first pass over the vocabulary computes every token's
      log-sum-exp (the logits once), then log π and c; the second recomputes each tile of logits and adds its
      gradients, each row already scaled by its c (see :mod:`rmreg.ops._tiles`). Four LM-head matmuls per token
      (naive: three), none in the backward pass; extra memory beyond the returned weight gradient: the hidden
      gradient [N, H] and one tile's work buffers (2 MiB on a CPU, :func:`~rmreg.ops._common.chunk_budget` on a
      GPU): no weight-sized buffer, for any number of sequences.
    * **One pass** (``group_ids`` given): the caller declares ``loss_fn`` separable over the groups,
      L = Σ_g ℓ_g(log π_{s ∈ g}), so c_s depends only on s's own group; group by group, the pass computes the
      group's log-probs and each sequence's ∂log π_s/∂W into a buffer, then the group's coefficients, and adds
      Σ_{s ∈ g} c_s · buffer_s into the weight gradient. Three matmuls per token, at the cost of one weight-sized
      buffer per sequence of the largest group (1 for SFT, 2 for DPO pairs). With ``sequence_weights`` w the caller
      also declares that each group's loss depends on its log-probs only through u_g = Σ_{s ∈ g} w_s·log π_s (GRM's
      SFT, w = 1; its DPO regularizers, w = +1 chosen and −1 rejected, with or without reference): then
      c_s = κ_g·w_s and one buffer serves every group size. After the pass, the coefficients used are checked
      against the gradient of ``loss_fn`` at the final log-probs: a loss that is not separable (or not of the
      declared form) raises ``ValueError``. Faster where matmuls dominate; one more weight-sized buffer.

    A frozen head (``weight`` and ``bias`` not requiring grad) needs no weight-sized memory in either. Value
    checks (finite coefficients, separability) are skipped, with the other value checks, inside the model's hot
    path (see :func:`rmreg._typing.value_checks_enabled`).

    Args:
        hidden: final hidden states [N, H] of the response tokens, already shifted.
        weight: LM head weight [V, H], same dtype as ``hidden`` (any float dtypes inside ``torch.autocast``).
        targets: token ids [N] in [0, V), or ``ignore_index``.
        sequence_ids: sequence of each row [N], in [0, S); rows need not be sorted.
        loss_fn: maps the summed log-probs [S] (fp32; float64 for float64 inputs) to the scalar loss; it may read
            other tensors (reference log-probs) but none that require grad.
        num_sequences: S; by default the length of ``group_ids``, else ``sequence_ids.max() + 1`` (a device read).
        group_ids: group of each sequence [S], in [0, G), declaring ``loss_fn`` separable over the groups (one
            pass); read on the host, so best kept on the CPU.
        sequence_weights: with ``group_ids``, optional w [S] declaring each group's loss a function of
            Σ_{s ∈ g} w_s·log π_s (one weight-gradient buffer for any group size); read on the host.
        softcap: logit soft-cap, or None (see :func:`~rmreg.ops.linear_logprobs`).
        scale: logit scale, or None.
        chunk_size: rows per chunk (one pass; chunks never straddle sequences; None picks
            :func:`~rmreg.ops.auto_chunk_size`) or per tile (two passes; None: 1024 on a CPU, 4096 elsewhere).
        ignore_index: target value whose row is skipped.
        bias: optional LM head bias [V].

    Returns:
        ``(loss, logprobs)``: the scalar loss, differentiable in ``hidden``, ``weight`` and ``bias``, and the
        detached summed log-probs [S].

    Raises:
        ValueError: as :func:`~rmreg.ops.linear_logprobs`; when the ids do not fit; when ``loss_fn`` does not
            return a scalar, depends on another tensor that requires grad, has a non-finite gradient, or (one
            pass) is not separable over the groups.

    Example:
        >>> import torch
        >>> from torch.nn.functional import logsigmoid
        >>> from rmreg.ops import linear_logprobs_naive
        >>> hidden, weight = torch.randn(8, 4, requires_grad=True), torch.randn(20, 4, requires_grad=True)
        >>> targets, sequence_ids = torch.randint(0, 20, (8,)), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
        >>> def dpo(logps):  # −log σ(β·(log π_c − log π_r)), mean over 2 pairs: chosen 0, 1, rejected 2, 3
        ...     return -logsigmoid(0.1 * (logps[:2] - logps[2:])).mean()
        >>> loss, logps = fused_logprob_loss(hidden, weight, targets, sequence_ids, dpo, num_sequences=4)
        >>> token_logps = linear_logprobs_naive(hidden, weight, targets)
        >>> torch.allclose(logps, token_logps.view(4, 2).sum(1), atol=1e-5), loss.requires_grad
        (True, True)
        >>> loss.backward(); weight.grad.shape
        torch.Size([20, 4])
        >>> pairs, signs = torch.tensor([0, 1, 0, 1]), torch.tensor([1.0, 1.0, -1.0, -1.0])  # one pass
        >>> again, _ = fused_logprob_loss(hidden, weight, targets, sequence_ids, dpo, group_ids=pairs,
        ...                               sequence_weights=signs)
        >>> torch.allclose(again, loss)
        True
    """
    transform = LogitTransform(softcap, scale)
    check_inputs(hidden, weight, targets, bias, chunk_size, ignore_index, transform)
    members, weights = None, None
    if group_ids is not None:
        members, weights = parse_groups(group_ids, sequence_weights)
        num_sequences = len(group_ids) if num_sequences is None else num_sequences
    elif sequence_weights is not None:
        raise ValueError("sequence_weights declares the form of a loss separable over groups: give group_ids too")
    num_sequences = check_sequence_ids(sequence_ids, targets, num_sequences)
    if group_ids is not None and num_sequences != len(group_ids):
        raise ValueError(f"group_ids must be [S] = [{num_sequences}]; got {tuple(group_ids.shape)}")
    _check_loss_fn(loss_fn, num_sequences, hidden.new_zeros((), dtype=torch.promote_types(hidden.dtype, torch.float32)))
    return _FusedLogprobLoss.apply(
        hidden,
        weight,
        bias,
        targets.long(),
        sequence_ids.long(),
        num_sequences,
        members,
        weights,
        loss_fn,
        chunk_size,
        ignore_index,
        transform,
        compute_dtype(hidden),
        needs_grad(hidden, weight, bias),
    )
