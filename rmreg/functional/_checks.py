"""Input checks and the reduction shared by every function of :mod:`rmreg.functional`.

Each check raises a ValueError that names the argument and the problem (shape, dtype, non-finite value) before
any math runs, and upcasts half precision to float32 (float64 stays float64), so every loss computes in float32
at least.
"""

from typing import Literal

import torch

from rmreg._typing import Float, Tensor, value_checks_enabled

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")


def reduce(per_pair: Float[Tensor, "..."], reduction: Reduction) -> Float[Tensor, "..."]:
    """Reduce unreduced losses: ``"mean"`` and ``"sum"`` give a scalar, ``"none"`` returns them unchanged.

    The losses are per pair (``[pairs]``), per group of completions (``[groups]``) or per rating, whatever the
    function computed.
    """
    if reduction == "mean":
        return per_pair.mean()
    if reduction == "sum":
        return per_pair.sum()
    if reduction == "none":
        return per_pair
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_beta(beta: float) -> None:
    if not (isinstance(beta, (int, float)) and beta > 0 and beta < float("inf")):
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")


def _loss_dtype(values: Tensor) -> Tensor:
    return values if values.dtype == torch.float64 else values.float()


def _check_float_tensor(name: str, values: Tensor) -> None:
    if not isinstance(values, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(values).__name__}")
    if not values.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {values.dtype}")
    if values.numel() == 0:
        raise ValueError(f"{name} is empty: a loss needs at least one value")


def _as_loss_dtype(name: str, values: Tensor, dims: str = "pairs") -> Tensor:
    """Validate a vector (``[pairs]`` or ``[groups]``) and upcast half precision to float32 (float64 stays)."""
    _check_float_tensor(name, values)
    if values.ndim != 1:
        raise ValueError(f"{name} must have shape [{dims}], got shape {tuple(values.shape)}")
    if value_checks_enabled() and not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} contains NaN or infinite values; check the model's outputs")
    return _loss_dtype(values)


def _as_pair(chosen_name: str, chosen: Tensor, rejected_name: str, rejected: Tensor) -> tuple[Tensor, Tensor]:
    chosen = _as_loss_dtype(chosen_name, chosen)
    rejected = _as_loss_dtype(rejected_name, rejected)
    if chosen.shape != rejected.shape:
        raise ValueError(
            f"{chosen_name} and {rejected_name} must have the same shape [pairs], got "
            f"{tuple(chosen.shape)} and {tuple(rejected.shape)}"
        )
    return chosen, rejected


def _as_masked_matrix(
    name: str, values: Tensor, mask_name: str, mask: Tensor | None, dims: str
) -> tuple[Tensor, Tensor]:
    """Validate a ``[rows, columns]`` float tensor and its bool mask (all True when ``mask`` is None).

    Entries where the mask is True must be finite; entries where it is False may hold anything (padding, NaN for
    a missing value) and come back as 0, so neither the loss nor its gradient can see them. Returns the values
    in the loss dtype and the mask on their device.
    """
    _check_float_tensor(name, values)
    if values.ndim != 2:
        raise ValueError(f"{name} must have shape [{dims}], got shape {tuple(values.shape)}")
    if mask is None:
        mask = torch.ones(values.shape, dtype=torch.bool, device=values.device)
    elif not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise ValueError(f"{mask_name} must be a bool tensor of shape [{dims}], got {getattr(mask, 'dtype', mask)!r}")
    elif mask.shape != values.shape:
        raise ValueError(
            f"{mask_name} must have the shape of {name} [{dims}] = {tuple(values.shape)}, got {tuple(mask.shape)}"
        )
    mask = mask.to(values.device)
    bad = mask & ~torch.isfinite(values)
    if value_checks_enabled() and bool(bad.any()):
        row, column = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{name} contains NaN or infinite values (first at row {row}, column {column}); mask missing "
            "entries out, or check the model's outputs"
        )
    return torch.where(mask, _loss_dtype(values), 0.0), mask


def _as_hyperparameter(name: str, value: float | Tensor, minimum: float, like: Tensor) -> Tensor:
    """A fixed (number) or learnable (tensor of shape ``[]`` or ``[pairs]``) parameter that must be ≥ ``minimum``.

    Returned in ``like``'s dtype and device; a tensor keeps its autograd graph.
    """
    if isinstance(value, Tensor):
        if not value.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
        if value.ndim != 0 and value.shape != like.shape:
            raise ValueError(
                f"{name} must be a number, a 0-d tensor or a tensor of shape [pairs] = {tuple(like.shape)}, "
                f"got shape {tuple(value.shape)}"
            )
        tensor = value.to(like.dtype)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        tensor = torch.tensor(float(value), dtype=like.dtype, device=like.device)
    else:
        raise ValueError(f"{name} must be a number or a floating-point tensor, got {type(value).__name__}")
    if (isinstance(value, (int, float)) or value_checks_enabled()) and (
        not bool(torch.isfinite(tensor).all()) or bool((tensor < minimum).any())
    ):
        shown = value if not isinstance(value, Tensor) else value.detach().flatten()[:4].tolist()
        raise ValueError(f"{name} must be finite and >= {minimum:g}, got {shown!r}")
    return tensor


def _as_flags(name: str, flags: Tensor, like: Tensor) -> Tensor:
    """A bool vector with ``like``'s shape ``[pairs]``, on ``like``'s device."""
    if not isinstance(flags, Tensor) or flags.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool tensor of shape [pairs], got {getattr(flags, 'dtype', flags)!r}")
    if flags.shape != like.shape:
        raise ValueError(f"{name} must have shape [pairs] = {tuple(like.shape)}, got {tuple(flags.shape)}")
    return flags.to(like.device)
