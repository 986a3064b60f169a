"""Shared pieces of the LM-head log-prob paths: the logit transform, input checks, dtypes, chunking.

See :mod:`rmreg.ops` for the formulas and the design.
"""

import math
from dataclasses import dataclass

import torch

from rmreg._typing import Tensor, value_checks_enabled

DEFAULT_CHUNK_BYTES = 64 * 2**20
"""Least memory budget of one chunk's [chunk, V] work buffers, in bytes (see :func:`auto_chunk_size`)."""


@dataclass(frozen=True)
class LogitTransform:
    """``ℓ = softcap·tanh(scale·z / softcap)`` of the raw logits z (each part only when given).

    Its derivative, used by every path: ``dℓ/dz = scale·(1 − tanh²(scale·z / softcap))`` with a soft-cap,
    ``scale`` without one (1 when neither is given).
    """

    softcap: float | None = None
    scale: float | None = None

    @property
    def multiplier(self) -> float:
        """The constant factor of dℓ/dz: ``scale`` (1.0 when not given)."""
        return 1.0 if self.scale is None else float(self.scale)

    def apply_(self, logits: Tensor, tanh_out: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """ℓ of the raw logits z, in place in ``logits``; under a soft-cap also t = tanh(scale·z / softcap), written
        into ``tanh_out`` (same shape) and returned beside ℓ (None without a soft-cap)."""
        if self.softcap is None:
            return (logits if self.scale is None else logits.mul_(self.scale)), None
        assert tanh_out is not None, "a soft-cap needs a tanh buffer"
        tanh = torch.mul(logits, self.multiplier / self.softcap, out=tanh_out).tanh_()
        return torch.mul(tanh, self.softcap, out=logits), tanh


def auto_chunk_size(vocab_size: int, hidden_size: int, *, bytes_per_logit: int = 4) -> int:
    """Rows per chunk such that the [chunk, V] work buffers fit ``max(DEFAULT_CHUNK_BYTES, 4·V·H/8)`` bytes.

    ``bytes_per_logit`` is what one row entry costs across those buffers: 4 for the fp32 logits alone, 8 with a
    soft-cap (a second fp32 buffer for tanh), plus 2 when the matmuls run in bf16/fp16 (a low-precision copy).

    Example:
        >>> auto_chunk_size(128_000, 256)
        131
        >>> auto_chunk_size(128_000, 256, bytes_per_logit=8)
        65
    """
    return max(1, chunk_budget(vocab_size, hidden_size) // (bytes_per_logit * vocab_size))


def chunk_budget(vocab_size: int, hidden_size: int) -> int:
    """Bytes of one chunk's work buffers: ``max(DEFAULT_CHUNK_BYTES, 4·V·H/8)``."""
    return max(DEFAULT_CHUNK_BYTES, 4 * vocab_size * hidden_size // 8)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for fp32, bf16 and fp16; float64 stays float64."""
    return torch.promote_types(dtype, torch.float32)


def compute_dtype(hidden: Tensor) -> torch.dtype:
    """The dtype of the LM-head matmuls: the autocast dtype inside ``torch.autocast`` (float64 is never cast,
    as autocast itself leaves float64 alone), the inputs' dtype otherwise."""
    device = hidden.device.type
    if hidden.dtype != torch.float64 and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return hidden.dtype


def bytes_per_logit(compute: torch.dtype, transform: LogitTransform) -> int:
    """Bytes per [chunk, V] entry of the work buffers (see :func:`auto_chunk_size`)."""
    fp32_buffers = 2 if transform.softcap is not None else 1
    low = compute.itemsize if compute.itemsize < 4 else 0
    return 4 * fp32_buffers + low


def resolve_chunk_size(chunk_size: int | None, weight: Tensor, compute: torch.dtype, transform: LogitTransform) -> int:
    if chunk_size is not None:
        return chunk_size
    return auto_chunk_size(*weight.shape, bytes_per_logit=bytes_per_logit(compute, transform))


def check_inputs(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    bias: Tensor | None,
    chunk_size: int | None,
    ignore_index: int,
    transform: LogitTransform,
) -> None:
    """Raise ValueError naming the problem when the inputs do not fit the contract.

    The checks of values (targets in range, finite hidden states) read the device; they are skipped where
    :func:`rmreg._typing.value_checks_enabled` is off (inside the model's hot path, which checks its batch once).
    """
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
    autocast = torch.is_autocast_enabled(hidden.device.type) and hidden.dtype != torch.float64
    for name, tensor in (("weight", weight), ("bias", bias)):
        if tensor is not None and tensor.dtype != hidden.dtype and not autocast:
            raise ValueError(
                f"{name} dtype {tensor.dtype} differs from hidden dtype {hidden.dtype} (mixed dtypes are accepted "
                "only inside torch.autocast, where the matmuls run in the autocast dtype)"
            )
    if chunk_size is not None and chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive number of rows; got {chunk_size}")
    if transform.softcap is not None and not (math.isfinite(transform.softcap) and transform.softcap > 0):
        raise ValueError(f"softcap must be a positive finite number or None; got {transform.softcap}")
    if transform.scale is not None and not math.isfinite(transform.scale):
        raise ValueError(f"scale must be a finite number or None; got {transform.scale}")
    if not value_checks_enabled():
        return
    bad = (targets != ignore_index) & ((targets < 0) | (targets >= weight.shape[0]))
    if bad.any():
        raise ValueError(
            f"targets must lie in [0, {weight.shape[0]}) or equal ignore_index={ignore_index}; "
            f"found {targets[bad][0].item()}"
        )
    if not torch.isfinite(hidden).all():
        raise ValueError("hidden contains NaN or infinite values")


def check_sequence_ids(sequence_ids: Tensor, targets: Tensor, num_sequences: int | None) -> int:
    """Validate per-row sequence ids [N] and return the number of sequences S (inferred when None)."""
    if sequence_ids.shape != targets.shape or sequence_ids.dtype.is_floating_point:
        raise ValueError(
            f"sequence_ids must be integer ids of shape {tuple(targets.shape)}; "
            f"got {sequence_ids.dtype} {tuple(sequence_ids.shape)}"
        )
    if num_sequences is None:
        num_sequences = int(sequence_ids.max()) + 1 if sequence_ids.numel() else 0
    in_range = (sequence_ids >= 0) & (sequence_ids < num_sequences)
    if value_checks_enabled() and not bool(in_range.all()):
        raise ValueError(f"sequence_ids must lie in [0, num_sequences={num_sequences})")
    return num_sequences


def needs_grad(hidden: Tensor, weight: Tensor, bias: Tensor | None) -> tuple[bool, bool, bool]:
    """Which of (hidden, weight, bias) need a gradient from this call (none under ``torch.no_grad``)."""
    enabled = torch.is_grad_enabled()
    return (
        enabled and hidden.requires_grad,
        enabled and weight.requires_grad,
        enabled and (bias is not None and bias.requires_grad),
    )


def spans(valid: Tensor, groups: Tensor | None, num_groups: int, chunk_size: int) -> list[tuple[Tensor, int]]:
    """Split the valid rows into chunks of at most ``chunk_size`` rows, each inside one group.

    Returns (row indices, group) pairs in group order; with ``groups=None`` every row is in group 0.
    """
    rows = valid.nonzero().squeeze(1)
    if groups is None:
        counts = [rows.numel()]
    else:
        rows = rows[torch.argsort(groups[rows], stable=True)]
        counts = torch.bincount(groups[rows], minlength=num_groups).tolist()
    out = []
    start = 0
    for group, count in enumerate(counts):
        out += [(rows[i : min(i + chunk_size, start + count)], group) for i in range(start, start + count, chunk_size)]
        start += count
    return out
