"""The chunk kernel every path shares: one chunk's transformed logits, softmax and gradient pieces.

For a chunk of rows with raw logits z = W h + b, transformed logits ℓ = c·tanh(s·z / c) (or s·z, or z; see
:class:`~rmreg.ops._common.LogitTransform`), e = exp(ℓ − m) for a per-row constant m and Z = Σ_v e::

    log p_y = ℓ_y − logsumexp(ℓ)
    ∂ log p_y / ∂z = a·onehot(y) − k·E,   a = dℓ_y/dz_y,   k = s / Z,   E = e ⊙ (dℓ/dz) / s

with dℓ/dz = s·(1 − t²), t = tanh(s·z / c), under a soft-cap (E = e ⊙ (1 − t²)), and s otherwise (E = e). For a
weighted sum Σ_t r_t log p_t the gradients are ∂/∂h_t = r_t a_t W[y_t] − r_t k_t E_t W,
∂/∂W = Σ_t r_t a_t onehot(y_t) h_tᵀ − Eᵀ((r ⊙ k) ⊙ H) and ∂/∂b = Σ_t r_t a_t onehot(y_t) − (r ⊙ k)ᵀ E: the
[chunk, V] buffer only ever holds z, ℓ, e and E in place, and the one-hot part and the per-row factors act on
[chunk, H] operands.

Dtypes: the matmuls run in the compute dtype (the inputs' dtype, or the autocast dtype); the [chunk, V] buffers,
the log-sum-exp and every accumulated gradient are fp32 (float64 for float64). On CUDA, bf16/fp16 matmuls write
fp32 results directly (``out_dtype``: fp32 logits and fp32 accumulation of the weight gradient, no rounding of
the products); elsewhere (CPU) the low-precision product is rounded once to the compute dtype and then added in
fp32 (the weight gradient through one reused [V, H] low-precision scratch).
"""

from dataclasses import dataclass

import torch

from rmreg._typing import Tensor
from rmreg.ops._common import LogitTransform, accumulation_dtype

_FP32_OUTPUT_MATMULS: dict[tuple[str, torch.dtype], bool] = {}


def fp32_output_matmuls(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``torch.mm``/``addmm`` with ``out_dtype=float32`` work for ``dtype`` inputs on this device (CUDA).

    Probed once per (device type, dtype) on a 2×2 product; a later failure switches it off (see :func:`_mm`).
    """
    key = (device.type, dtype)
    if key not in _FP32_OUTPUT_MATMULS:
        ok = False
        if device.type == "cuda":
            try:
                a = torch.ones(2, 2, device=device, dtype=dtype)
                out = torch.zeros(2, 2, device=device)
                torch.mm(a, a, out_dtype=torch.float32, out=out)
                torch.addmm(out, a, a, out_dtype=torch.float32, out=out)
                ok = bool((out == 4).all())
            except (RuntimeError, TypeError, NotImplementedError):
                ok = False
        _FP32_OUTPUT_MATMULS[key] = ok
    return _FP32_OUTPUT_MATMULS[key]


def _mm(out: Tensor, a: Tensor, b: Tensor, *, accumulate: bool, scratch: Tensor | None = None) -> Tensor:
    """``out (+)= a @ b`` with ``out`` in the accumulation dtype and ``a``, ``b`` in the compute dtype."""
    if a.dtype == out.dtype:
        return torch.addmm(out, a, b, beta=1 if accumulate else 0, out=out)
    if fp32_output_matmuls(out.device, a.dtype):
        try:
            return torch.addmm(out, a, b, beta=1 if accumulate else 0, out_dtype=out.dtype, out=out)
        except (RuntimeError, NotImplementedError):  # a shape or layout the fp32-output kernel refuses
            _FP32_OUTPUT_MATMULS[(out.device.type, a.dtype)] = False
    product = torch.mm(a, b, out=scratch) if scratch is not None else a @ b
    return out.add_(product) if accumulate else out.copy_(product)


@dataclass
class Chunk:
    """One chunk's softmax pieces (see the module docstring); ``probs`` is E, a view of the sweep's buffer."""

    rows: Tensor
    inputs: Tensor  # hidden rows [n, H], compute dtype
    targets: Tensor
    probs: Tensor  # E [n, V], accumulation dtype
    onehot: Tensor | None  # a [n]
    coef: Tensor | None  # k [n]
    logprobs: Tensor | None  # [n]; None when the log-sum-exp was given
    lse: Tensor  # [n]
    probs_low: Tensor | None = None  # E in the compute dtype, made once on first use


def work_buffers(
    like: Tensor, shape: tuple[int, ...], compute: torch.dtype, transform: LogitTransform
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """A pass's [rows, V]-like work buffers: logits (accumulation dtype), tanh (only under a soft-cap) and a
    compute-dtype copy (only when the matmuls run in a lower precision)."""
    acc = accumulation_dtype(compute)
    logits = like.new_empty(shape, dtype=acc)
    tanh = None if transform.softcap is None else torch.empty_like(logits)
    low = None if compute == acc else like.new_empty(shape, dtype=compute)
    return logits, tanh, low


def _grad_factors(chunk: Chunk) -> tuple[Tensor, Tensor]:
    """The chunk's a and k, set by ``Sweep.softmax(..., with_grad=True)`` (every gradient's caller asks for them)."""
    assert chunk.onehot is not None and chunk.coef is not None, "chunk made with with_grad=False"
    return chunk.onehot, chunk.coef


class Sweep:
    """The buffers and the LM head (in the compute dtype) for one pass over chunks of at most ``max_rows`` rows."""

    def __init__(
        self,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        targets: Tensor,
        transform: LogitTransform,
        compute: torch.dtype,
        max_rows: int,
    ) -> None:
        self.hidden, self.targets, self.transform, self.compute = hidden, targets, transform, compute
        self.acc = accumulation_dtype(compute)
        self.weight = weight.to(compute)
        self.bias = None if bias is None else bias.to(self.acc)
        self.logits, self.tanh, self.low = work_buffers(hidden, (max_rows, weight.shape[0]), compute, transform)
        self.product: Tensor | None = None  # [V, H] compute-dtype scratch of the CPU weight-gradient matmul

    def _raw_logits(self, out: Tensor, inputs: Tensor) -> Tensor:
        if inputs.dtype == out.dtype and self.bias is not None:
            return torch.addmm(self.bias, inputs, self.weight.T, out=out)
        scratch = None if self.low is None else self.low[: len(inputs)]
        _mm(out, inputs, self.weight.T, accumulate=False, scratch=scratch)
        return out if self.bias is None else out.add_(self.bias)

    def softmax(self, rows: Tensor, *, lse: Tensor | None = None, with_grad: bool = True) -> Chunk:
        """The chunk's log-probs and log-sum-exps; with ``with_grad``, also E, a and k. With ``lse`` (of an earlier
        pass), e = exp(ℓ − lse) is the softmax itself and the log-probs are not computed."""
        n, t = len(rows), self.transform
        inputs, targets = self.hidden[rows].to(self.compute), self.targets[rows]
        logits, tanh = t.apply_(self._raw_logits(self.logits[:n], inputs), None if self.tanh is None else self.tanh[:n])
        if lse is None:
            picked = logits.gather(1, targets[:, None]).squeeze(1)
            peak = logits.amax(dim=1)
            norm = logits.sub_(peak[:, None]).exp_().sum(dim=1)
            lse = peak + norm.log()
            logprobs, coef = picked - lse, t.multiplier / norm
        else:
            logits.sub_(lse[:, None]).exp_()
            logprobs, coef = None, torch.full_like(lse, t.multiplier)
        onehot = None
        if with_grad:
            if tanh is None:
                onehot = torch.full_like(lse, t.multiplier)
            else:
                onehot = t.multiplier * (1 - tanh.gather(1, targets[:, None]).squeeze(1).square())
                logits.mul_(tanh.square_().neg_().add_(1))  # E = e ⊙ (1 − t²)
        return Chunk(rows, inputs, targets, logits, onehot, coef if with_grad else None, logprobs, lse)

    def _probs_low(self, chunk: Chunk) -> Tensor:
        if self.low is None:
            return chunk.probs
        if chunk.probs_low is None:
            chunk.probs_low = self.low[: len(chunk.rows)].copy_(chunk.probs)
        return chunk.probs_low

    def hidden_grad(self, chunk: Chunk, row_scale: Tensor) -> Tensor:
        """∂(Σ_t r_t log p_t)/∂h for the chunk's rows, [n, H] in the accumulation dtype."""
        onehot, coef = _grad_factors(chunk)
        probs_w = _mm(
            chunk.inputs.new_empty(chunk.inputs.shape, dtype=self.acc),
            self._probs_low(chunk),
            self.weight,
            accumulate=False,
        )
        onehot_w = self.weight[chunk.targets].to(self.acc)
        return onehot_w.mul_((row_scale * onehot)[:, None]).sub_(probs_w.mul_((row_scale * coef)[:, None]))

    def weight_grad_into(self, chunk: Chunk, row_scale: Tensor, out: Tensor, *, overwrite: bool = False) -> None:
        """``out`` (+)= ∂(Σ_t r_t log p_t)/∂W over the chunk's rows (``out`` [V, H], accumulation dtype)."""
        onehot, coef = _grad_factors(chunk)
        scaled = (chunk.inputs.to(self.acc) * -(row_scale * coef)[:, None]).to(self.compute)
        if self.low is not None and self.product is None and not fp32_output_matmuls(out.device, self.compute):
            self.product = torch.empty(out.shape, dtype=self.compute, device=out.device)
        _mm(out, self._probs_low(chunk).T, scaled, accumulate=not overwrite, scratch=self.product)
        out.index_add_(0, chunk.targets, chunk.inputs.to(self.acc) * (row_scale * onehot)[:, None])

    def bias_grad_into(self, chunk: Chunk, row_scale: Tensor, out: Tensor, *, overwrite: bool = False) -> None:
        """``out`` (+)= ∂(Σ_t r_t log p_t)/∂b over the chunk's rows (``out`` [V], accumulation dtype)."""
        onehot, coef = _grad_factors(chunk)
        weighted = (row_scale * coef) @ chunk.probs
        (out.copy_(weighted.neg_()) if overwrite else out.sub_(weighted)).index_add_(
            0, chunk.targets, row_scale * onehot
        )
