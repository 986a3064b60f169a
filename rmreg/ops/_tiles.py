"""The two-pass tile kernel of :func:`~rmreg.ops.fused_logprob_loss`: log-sum-exps first, then every gradient.

Rows (tokens) and the vocabulary are cut into tiles of ``rows × cols`` logits, visited vocabulary block by
vocabulary block (the block of W stays in cache while the rows pass under it). With raw logits z = W h + b, the
head's transform ℓ (see :class:`~rmreg.ops._common.LogitTransform`) and per-row weights r (the loss's coefficient
∂L/∂log π of the row's sequence)::

    pass 1:  lse_t = logsumexp_v ℓ_tv          (online: a running max m_t and sum Σ_v exp(ℓ_tv − m_t))
    pass 2:  E_tv = r_t · p_tv · dℓ_tv/dz_tv,   p_tv = exp(ℓ_tv − lse_t)
             ∂/∂h_t = r_t a_t W[y_t] − Σ_v E_tv W_v        ∂/∂W = Σ_t r_t a_t onehot(y_t) h_tᵀ − Eᵀ H
             ∂/∂b = Σ_t r_t a_t onehot(y_t) − Σ_t E_t       a_t = dℓ_ty/dz_ty

The target logit comes from one row-wise dot product h_t · W[y_t], not from the tiles. Four LM-head matmuls in
all (the logits twice, ∂/∂h, ∂/∂W), none left for a backward pass; memory: the gradients themselves and one tile
(two under a soft-cap, plus a low-precision copy when the matmuls run in bf16/fp16). Dtypes as in
:mod:`rmreg.ops._kernel`: matmuls in the compute dtype, tiles, log-sum-exps and gradient sums in fp32 (float64
for float64).
"""

import math

import torch

from rmreg._typing import Tensor
from rmreg.ops._common import LogitTransform, accumulation_dtype, bytes_per_logit, chunk_budget
from rmreg.ops._kernel import _mm, fp32_output_matmuls, work_buffers

CPU_TILE_BYTES = 2 * 2**20
"""Bytes of one tile's buffers on a CPU: small enough to stay in cache between the matmul and its element-wise
passes (measured: 2 MiB tiles 8 % faster than 64 MiB ones at V = 128k, H = 256, one thread). Elsewhere (CUDA)
the budget is :func:`~rmreg.ops._common.chunk_budget`, as for the other paths' chunks."""

TILE_ROWS = {"cpu": 1024, "cuda": 4096}
"""Rows per tile unless given (fewer when there are fewer rows); devices not listed use the CUDA value."""


def tile_shape(
    rows: int, weight: Tensor, compute: torch.dtype, transform: LogitTransform, tile_rows: int | None
) -> tuple[int, int]:
    """``(rows, cols)`` of a tile: ``tile_rows`` rows (default ``TILE_ROWS``, at most ``rows``) and as many
    vocabulary columns as the device's tile budget allows (at least one, at most V)."""
    device, (vocab, hidden) = weight.device, weight.shape
    if tile_rows is None:
        tile_rows = max(1, min(rows, TILE_ROWS.get(device.type, TILE_ROWS["cuda"])))
    budget = CPU_TILE_BYTES if device.type == "cpu" else chunk_budget(vocab, hidden)
    return tile_rows, max(1, min(vocab, budget // (bytes_per_logit(compute, transform) * tile_rows)))


def _tile(buffer: Tensor, shape: tuple[int, int] | torch.Size) -> Tensor:
    """A contiguous [rows, cols] view of the front of a flat tile buffer."""
    return buffer[: shape[0] * shape[1]].view(shape[0], shape[1])


class Tiles:
    """The tile buffers and the LM head (in the compute dtype) for the two passes over ``hidden`` [n, H]."""

    def __init__(
        self,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        targets: Tensor,
        transform: LogitTransform,
        compute: torch.dtype,
        shape: tuple[int, int],
    ) -> None:
        self.acc = accumulation_dtype(compute)
        self.hidden, self.weight = hidden.to(compute), weight.to(compute)
        self.bias = None if bias is None else bias.to(self.acc)
        self.targets, self.transform, self.compute = targets, transform, compute
        self.rows, self.cols = shape
        # flat buffers, viewed as each tile's contiguous [rows, cols]
        self.logits, self.tanh, self.low = work_buffers(hidden, (self.rows * self.cols,), compute, transform)
        self.product: Tensor | None = None  # [cols, H] compute-dtype scratch of the CPU weight-gradient matmul

    def _blocks(self) -> list[tuple[slice, slice]]:
        """The tiles' (vocabulary block, row block) slices, vocabulary outermost."""
        vocab, rows = self.weight.shape[0], self.hidden.shape[0]
        return [
            (slice(v, min(v + self.cols, vocab)), slice(r, min(r + self.rows, rows)))
            for v in range(0, vocab, self.cols)
            for r in range(0, rows, self.rows)
        ]

    def _transformed(self, vocab: slice, rows: slice) -> tuple[Tensor, Tensor | None]:
        """The tile's transformed logits ℓ (fp32 buffer view) and, under a soft-cap, tanh(s·z/c)."""
        shape = (rows.stop - rows.start, vocab.stop - vocab.start)
        out, scratch = _tile(self.logits, shape), None if self.low is None else _tile(self.low, shape)
        _mm(out, self.hidden[rows], self.weight[vocab].T, accumulate=False, scratch=scratch)
        if self.bias is not None:
            out.add_(self.bias[vocab])
        return self.transform.apply_(out, None if self.tanh is None else _tile(self.tanh, shape))

    def target_logits(self) -> tuple[Tensor, Tensor]:
        """ℓ_ty and a_t = dℓ_ty/dz_ty at every row's target, from h_t · W[y_t] (fp32 products of the
        compute-dtype operands)."""
        picked = self.weight[self.targets].to(self.acc).mul_(self.hidden.to(self.acc)).sum(1)
        if self.bias is not None:
            picked = picked + self.bias[self.targets]
        t = self.transform
        logits, tanh = t.apply_(picked, None if t.softcap is None else torch.empty_like(picked))
        onehot = torch.full_like(picked, t.multiplier) if tanh is None else t.multiplier * (1 - tanh.square())
        return logits, onehot

    def log_sum_exp(self) -> Tensor:
        """Pass 1: logsumexp_v ℓ_tv for every row [n] (fp32)."""
        rows = self.hidden.shape[0]
        peak = self.hidden.new_full((rows,), -math.inf, dtype=self.acc)
        total = self.hidden.new_zeros(rows, dtype=self.acc)
        for vocab, block in self._blocks():
            logits, _ = self._transformed(vocab, block)
            old = peak[block]
            new = torch.maximum(old, logits.amax(dim=1))
            total[block] = total[block].mul_((old - new).exp_()).add_(logits.sub_(new[:, None]).exp_().sum(dim=1))
            peak[block] = new
        return peak + total.log()

    def gradients(
        self, lse: Tensor, row_scale: Tensor, onehot: Tensor, needs: tuple[bool, bool, bool]
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """Pass 2: ∂(Σ_t r_t log p_t)/∂ of (hidden [n, H], weight [V, H], bias [V]) in fp32, each only when
        ``needs`` says so; ``onehot`` is a_t of :meth:`target_logits`."""
        rows, hidden_size = self.hidden.shape
        hidden_grad = self.hidden.new_zeros((rows, hidden_size), dtype=self.acc) if needs[0] else None
        make = self.weight.new_empty if rows else self.weight.new_zeros  # no tiles write them when there are no rows
        weight_grad = make(self.weight.shape, dtype=self.acc) if needs[1] else None
        bias_grad = make(self.weight.shape[:1], dtype=self.acc) if needs[2] else None
        if needs[1] and self.low is not None and not fp32_output_matmuls(self.hidden.device, self.compute):
            self.product = self.hidden.new_empty((self.cols, hidden_size), dtype=self.compute)
        for vocab, block in self._blocks():
            probs, tanh = self._transformed(vocab, block)
            probs.sub_(lse[block, None]).exp_()
            if tanh is not None:
                probs.mul_(tanh.square_().neg_().add_(1))
            probs.mul_((row_scale[block] * -self.transform.multiplier)[:, None])  # −E
            operand = probs if self.low is None else _tile(self.low, probs.shape).copy_(probs)
            if hidden_grad is not None:
                _mm(hidden_grad[block], operand, self.weight[vocab], accumulate=True, scratch=None)
            first = block.start == 0
            if weight_grad is not None:
                product = None if self.product is None else self.product[: probs.shape[1]]
                _mm(weight_grad[vocab], operand.T, self.hidden[block], accumulate=not first, scratch=product)
            if bias_grad is not None:
                column_sums = probs.sum(dim=0)
                bias_grad[vocab] = column_sums if first else bias_grad[vocab] + column_sums
        return self._add_onehot(hidden_grad, weight_grad, bias_grad, row_scale * onehot)

    def _add_onehot(
        self, hidden_grad: Tensor | None, weight_grad: Tensor | None, bias_grad: Tensor | None, factor: Tensor
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """Add the target parts r_t a_t (onehot(y_t) ⊗ ·) to the softmax parts −E."""
        if hidden_grad is not None:
            hidden_grad.add_(self.weight[self.targets].to(self.acc).mul_(factor[:, None]))
        if weight_grad is not None:
            weight_grad.index_add_(0, self.targets, self.hidden.to(self.acc) * factor[:, None])
        if bias_grad is not None:
            bias_grad.index_add_(0, self.targets, factor)
        return hidden_grad, weight_grad, bias_grad
