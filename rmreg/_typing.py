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
    "set_typechecking",
    "shape_checked",
    "typechecking",
    "typechecking_enabled",
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
