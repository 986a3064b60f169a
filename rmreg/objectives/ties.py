"""Terms for pairs that may be tied: Rao–Kupper and Davidson, with a fixed or a learned tie parameter.

A tied pair carries ``tie = True`` in the batch column ``tie`` (``[pairs]`` bool); formulas live in
:func:`rmreg.functional.rao_kupper_loss` and :func:`rmreg.functional.davidson_loss`. With no tied pair and
θ = 1 (ν = 0) both are Bradley–Terry.

A learned parameter is an ``nn.Parameter`` of the term, so it trains with the model's parameters:
θ = 1.0001 + softplus(w) and ν = 1e-6 + softplus(w) stay in range whatever the optimizer does. Its current value is what
:meth:`~rmreg.objectives.Term.config` saves.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from rmreg import functional
from rmreg._typing import Float, Tensor
from rmreg.objectives.inputs import Needs, PairInputs
from rmreg.objectives.term import Term, is_number, register_term

__all__ = ["Davidson", "RaoKupper"]


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


class _TieTerm(Term):
    """A tie model with one parameter: a fixed number, or ``offset + softplus(w)`` learned.

    ``offset`` sits a little above the parameter's bound (1 for θ, 0 for ν), so that no optimizer step can make a
    learned value round to the bound, where a tied pair has probability 0.
    """

    needs = Needs("tie")
    parameter_name: str
    bound: float
    offset: float

    def __init__(self, value: float, *, learn: bool, name: str | None) -> None:
        super().__init__(name=name)
        lowest = self.offset if learn else self.bound
        if not is_number(value) or not math.isfinite(value) or value <= lowest:
            raise ValueError(
                f"{self.parameter_name} must be a finite number > {lowest:g}{' to learn it' if learn else ''}, "
                f"got {value!r}"
            )
        self.learn = bool(learn)
        self.fixed_value = float(value)
        self.raw = nn.Parameter(torch.tensor(_inverse_softplus(value - self.offset))) if self.learn else None

    def current(self) -> Tensor | float:
        """The parameter for the loss: a tensor on the graph when learned, else the fixed number."""
        if self.raw is None:
            return self.fixed_value
        return self.offset + F.softplus(self.raw)

    def _value(self) -> float:
        value = self.current()
        return float(value.detach()) if isinstance(value, Tensor) else value


@register_term("rao_kupper")
class RaoKupper(_TieTerm):
    """Rao–Kupper loss on pairs with a ``tie`` flag; see :func:`rmreg.functional.rao_kupper_loss`.

    Args:
        theta: θ > 1 (2.0: a tie has probability 1/3 at equal rewards); the initial value when learned.
        learn_theta: learn θ (as ``1.0001 + softplus(w)``) with the model.
        name: label in logs.

    Example:
        >>> import torch
        >>> from rmreg.objectives import PairInputs
        >>> from rmreg.objectives.ties import RaoKupper
        >>> inputs = PairInputs(torch.zeros(2), torch.zeros(2), tie=torch.tensor([False, True]))
        >>> RaoKupper(theta=3.0).per_pair(inputs)  # P(win) = 1/4, P(tie) = 1/2
        tensor([1.3863, 0.6931])
    """

    default_name = "rao_kupper"
    config_fields = ("theta", "learn_theta")
    parameter_name = "theta"
    bound, offset = 1.0, 1.0 + 1e-4

    def __init__(self, *, theta: float = 2.0, learn_theta: bool = False, name: str | None = None) -> None:
        super().__init__(theta, learn=learn_theta, name=name)

    @property
    def theta(self) -> float:
        return self._value()

    @property
    def learn_theta(self) -> bool:
        return self.learn

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        return functional.rao_kupper_loss(
            inputs.chosen_rewards,
            inputs.rejected_rewards,
            inputs.require("tie", self),
            theta=self.current(),
            reduction="none",
        )


@register_term("davidson")
class Davidson(_TieTerm):
    """Davidson loss on pairs with a ``tie`` flag; see :func:`rmreg.functional.davidson_loss`.

    Args:
        nu: ν > 0 (1.0: a tie has probability 1/3 at equal rewards); the initial value when learned.
        learn_nu: learn ν (as ``1e-6 + softplus(w)``) with the model.
        name: label in logs.

    Example:
        >>> import torch
        >>> from rmreg.objectives import PairInputs
        >>> from rmreg.objectives.ties import Davidson
        >>> inputs = PairInputs(torch.zeros(2), torch.zeros(2), tie=torch.tensor([False, True]))
        >>> Davidson(nu=2.0).per_pair(inputs)  # P(win) = 1/4, P(tie) = 1/2
        tensor([1.3863, 0.6931])
    """

    default_name = "davidson"
    config_fields = ("nu", "learn_nu")
    parameter_name = "nu"
    bound, offset = 0.0, 1e-6

    def __init__(self, *, nu: float = 1.0, learn_nu: bool = False, name: str | None = None) -> None:
        super().__init__(nu, learn=learn_nu, name=name)

    @property
    def nu(self) -> float:
        return self._value()

    @property
    def learn_nu(self) -> bool:
        return self.learn

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        return functional.davidson_loss(
            inputs.chosen_rewards,
            inputs.rejected_rewards,
            inputs.require("tie", self),
            nu=self.current(),
            reduction="none",
        )
