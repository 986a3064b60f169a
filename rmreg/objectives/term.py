"""The term base class and the registry that lets saved objectives name their terms' types.

A *term* turns named per-pair inputs into per-pair losses and declares the inputs it reads (its
:class:`~rmreg.objectives.Needs`), so the model computes only those. Writing one takes a class with ``needs``,
a ``default_name`` and ``per_pair``::

    @register_term("hidden_norm")
    class HiddenNormPenalty(Term):
        needs = Needs(hidden_states=True)
        default_name = "hidden_norm"

        def per_pair(self, inputs: PairInputs) -> Tensor:
            return inputs.require("chosen_hidden", self).square().sum(-1)

Registering it with :func:`register_term` lets objectives that use it be saved and reloaded.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from torch import nn

from rmreg import functional
from rmreg._typing import Float, Tensor
from rmreg.functional import Reduction
from rmreg.objectives.inputs import Needs, PairInputs

if TYPE_CHECKING:
    from rmreg.objectives.composition import Objective

__all__ = ["Term", "is_number", "register_term", "registered_term"]

T = TypeVar("T", bound="type[Term]")
_TERM_TYPES: dict[str, "type[Term]"] = {}


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_term(type_key: str) -> Callable[[T], T]:
    """Class decorator: make a term type restorable by :meth:`Objective.from_config` under ``type_key``.

    Registering the same class again (a re-run notebook cell, a reloaded module) replaces it; another class
    under a taken key is an error.
    """

    def decorate(cls: T) -> T:
        registered = _TERM_TYPES.get(type_key)
        redefined = registered is not None and _qualified_name(registered) == _qualified_name(cls)
        if registered is not None and registered is not cls and not redefined:
            raise ValueError(f"another term type is already registered as {type_key!r}: {_qualified_name(registered)}")
        cls.type_key = type_key
        _TERM_TYPES[type_key] = cls
        return cls

    return decorate


def registered_term(type_key: str) -> "type[Term]":
    """The term class registered under ``type_key``, or a ``ValueError`` listing the known ones."""
    term_type = _TERM_TYPES.get(type_key)
    if term_type is None:
        raise ValueError(
            f"unknown term type {type_key!r} (known: {sorted(_TERM_TYPES)}); register custom terms "
            "with @rmreg.objectives.register_term before loading"
        )
    return term_type


def is_number(value: object) -> bool:
    """A real number that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Term(nn.Module):
    """One loss or regularizer: named per-pair inputs in, per-pair losses out.

    Subclasses set ``needs`` (a class attribute, or a property when it depends on hyperparameters) and
    implement :meth:`per_pair`; hyperparameters that :meth:`config` should save are listed in
    ``config_fields``. ``name`` labels the term in logs and must be unique within an objective. A bare term is
    a valid objective (the model and :func:`~rmreg.objectives.as_objective` wrap it with weight 1).
    """

    needs: ClassVar[Needs] = Needs()
    logps_weights: ClassVar[tuple[float, float] | None] = None
    """``(w_c, w_r)`` when the term reads the LM head only through ``w_c·log π(y_c|x) + w_r·log π(y_r|x)`` of each
    pair and reads nothing else that needs a gradient (GRM's SFT: ``(1, 0)``; DPO: ``(1, −1)``): the model may then
    fuse the term's loss into the LM-head pass (:mod:`rmreg.model.fused_regularizers`); terms with different weights
    fuse together in two passes, terms sharing one also in one (``model.fused_passes = 1``). ``None``: never
    fused."""
    default_name: ClassVar[str] = "term"
    config_fields: ClassVar[tuple[str, ...]] = ()
    type_key: ClassVar[str | None] = None

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__()
        self.name = name or self.default_name

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        """Unreduced loss of each pair, ``[pairs]``."""
        raise NotImplementedError(f"{type(self).__name__} must implement per_pair(inputs)")

    def forward(self, inputs: PairInputs, reduction: Reduction = "mean") -> Tensor:
        inputs.check(self.needs, self.name)
        return functional.reduce(self.per_pair(inputs), reduction)

    def config(self) -> dict[str, Any]:
        """JSON-able description: registered type, name and hyperparameters."""
        if self.type_key is None:
            raise ValueError(
                f"{type(self).__name__} is not registered; decorate it with @rmreg.objectives.register_term(...) "
                "to save objectives that use it"
            )
        params = {field: getattr(self, field) for field in self.config_fields}
        return {"type": self.type_key, "name": self.name, "params": params}

    def extra_repr(self) -> str:
        params = ", ".join(f"{field}={getattr(self, field)!r}" for field in self.config_fields)
        return f"name={self.name!r}" + (f", {params}" if params else "")

    def __mul__(self, weight: float) -> "Objective":
        from rmreg.objectives.composition import Objective

        if not is_number(weight):
            return NotImplemented
        return Objective([(weight, self)])

    __rmul__ = __mul__

    def __add__(self, other: "Term | Objective") -> "Objective":
        from rmreg.objectives.composition import Objective

        return Objective([(1.0, self)]) + other
