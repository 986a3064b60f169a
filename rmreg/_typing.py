"""Shape and dtype annotations, and the switch that checks them at run time.

Public functions and ``forward`` methods in rmreg are annotated with jaxtyping shapes
(``Float[Tensor, "pairs"]``) and wrapped by :func:`shape_checked`. Checking costs a few microseconds
per call, so it is off by default and switched on by either

* the environment variable ``RMREG_TYPECHECK=1`` (read once, at import), or
* :func:`set_typechecking` / the context manager :func:`typechecking` at run time.

The checker is jaxtyping with typeguard 2.x (typeguard 4 cannot parse jaxtyping shape strings).
A wrong shape or dtype raises :class:`TypeCheckError` naming the parameter.
"""

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import typeguard
from jaxtyping import Bool, Float, Int, jaxtyped
from torch import Tensor

__all__ = [
    "Bool",
    "Float",
    "Int",
    "Tensor",
    "TypeCheckError",
    "debug_checks_enabled",
    "hot_path",
    "set_debug_checks",
    "set_typechecking",
    "shape_checked",
    "typechecking",
    "typechecking_enabled",
    "value_checks_enabled",
]

try:  # jaxtyping >= 0.2.24 names its error; older releases raise typeguard's TypeError.
    from jaxtyping import TypeCheckError
except ImportError:  # pragma: no cover - depends on the installed jaxtyping
    TypeCheckError = TypeError  # type: ignore[misc,assignment]

_ENV_VAR = "RMREG_TYPECHECK"
_enabled: bool = os.environ.get(_ENV_VAR, "").strip().lower() in {"1", "true", "yes", "on"}

F = TypeVar("F", bound=Callable[..., object])


def typechecking_enabled() -> bool:
    """Whether rmreg checks shapes and dtypes of its public functions at run time."""
    return _enabled


def set_typechecking(enabled: bool) -> None:
    """Switch run-time shape and dtype checking of rmreg's public functions on or off."""
    global _enabled
    _enabled = bool(enabled)


@contextlib.contextmanager
def typechecking(enabled: bool = True) -> Iterator[None]:
    """Check (or, with ``enabled=False``, do not check) shapes and dtypes inside a ``with`` block.

    Example:
        >>> import torch, rmreg
        >>> from rmreg.functional import bradley_terry_loss
        >>> with rmreg.typechecking():
        ...     bradley_terry_loss(torch.zeros(3), torch.zeros(4))  # doctest: +SKIP
        Traceback (most recent call last):
        TypeCheckError: ...
    """
    previous = _enabled
    set_typechecking(enabled)
    try:
        yield
    finally:
        set_typechecking(previous)


def shape_checked(fn: F) -> F:
    """Wrap ``fn`` so that its jaxtyping annotations are checked whenever checking is switched on."""
    checked = jaxtyped(typechecker=typeguard.typechecked)(fn)

    @functools.wraps(fn)
    def dispatch(*args: object, **kwargs: object) -> object:
        if _enabled:
            return checked(*args, **kwargs)
        return fn(*args, **kwargs)

    return dispatch  # type: ignore[return-value]


_VALUE_CHECKS_ENV_VAR = "RMREG_DEBUG_CHECKS"
_debug_checks: bool = os.environ.get(_VALUE_CHECKS_ENV_VAR, "").strip().lower() in {"1", "true", "yes", "on"}
_value_checks_suspended = 0


def debug_checks_enabled() -> bool:
    """Whether the model's forward pass re-checks every value (finite losses per term) at a device read each."""
    return _debug_checks


def set_debug_checks(enabled: bool) -> None:
    """Switch per-term value checks inside the model's forward pass on (slower on a GPU) or off (default).

    Outside the model, rmreg's loss functions always check their inputs are finite. Inside
    :meth:`rmreg.RegularizedRewardModel.forward` the batch is checked once (one device read) and the
    per-term checks are skipped unless this is on (or ``RMREG_DEBUG_CHECKS=1``).
    """
    global _debug_checks
    _debug_checks = bool(enabled)


def value_checks_enabled() -> bool:
    """Whether loss functions should check their inputs' values (False inside a model's hot path)."""
    return _value_checks_suspended == 0


@contextlib.contextmanager
def hot_path() -> Iterator[None]:
    """Inside the block, loss functions skip value checks that read the device, unless debug checks are on."""
    global _value_checks_suspended
    suspend = not _debug_checks
    _value_checks_suspended += suspend
    try:
        yield
    finally:
        _value_checks_suspended -= suspend
