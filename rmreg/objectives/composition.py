"""Composition: a weighted sum of named terms, the :class:`Objective` a model trains with.

``loss = Σ_k w_k · mean_pairs(term_k)``; every term's value is reported for logging, in the spirit of optax's
``named_chain``. Terms compose with ``+`` and scalar ``*``::

    objective = 0.99 * BradleyTerry() + 0.01 * SFTRegularizer(beta=0.1)   # == rmreg.objective("grm-sft")
"""

import dataclasses
import math
from collections.abc import Iterator, Mapping
from typing import Any

from torch import nn

from rmreg import functional
from rmreg._typing import Tensor, shape_checked
from rmreg.functional import Reduction
from rmreg.objectives.inputs import Needs, PairInputs, union
from rmreg.objectives.term import Term, is_number, registered_term

__all__ = ["Objective", "ObjectiveOutput", "as_objective"]


@dataclasses.dataclass(frozen=True)
class ObjectiveOutput:
    """What an :class:`Objective` returns.

    Attributes:
        loss: the reduced weighted sum of the terms (a scalar unless ``reduction="none"``).
        per_pair: the weighted sum per pair, ``[pairs]``.
        terms: each term's unweighted mean over the pairs, detached, by term name (for logging).
    """

    loss: Tensor
    per_pair: Tensor
    terms: dict[str, Tensor]


def _check_weight(weight: object) -> float:
    if not isinstance(weight, (int, float)) or not is_number(weight) or not math.isfinite(weight):
        raise ValueError(f"a term's weight must be a finite number, got {weight!r}")
    return float(weight)


class Objective(nn.Module):
    """A weighted sum of named terms: ``loss = Σ_k w_k · mean_pairs(term_k)``.

    Build one with ``+`` and scalar ``*`` on terms (or :func:`objective` for the paper's presets). It needs
    the union of its terms' needs, and reports each term's unweighted mean in ``output.terms``.

    Example:
        >>> import torch
        >>> from rmreg.objectives import BradleyTerry, PairInputs, SFTRegularizer
        >>> objective = 0.99 * BradleyTerry() + 0.01 * SFTRegularizer(beta=0.1)
        >>> objective.needs.chosen_logps, objective.needs.rejected_logps
        (True, False)
        >>> inputs = PairInputs(torch.tensor([1.0]), torch.tensor([0.0]), chosen_logps=torch.tensor([-3.0]))
        >>> sorted(objective(inputs).terms)
        ['bradley_terry', 'sft']
    """

    def __init__(self, weighted_terms: list[tuple[float, Term]], *, name: str | None = None) -> None:
        super().__init__()
        if not weighted_terms:
            raise ValueError("an objective needs at least one term")
        names = [term.name for _, term in weighted_terms]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"term names must be unique within an objective, repeated: {duplicates}; pass name=")
        for _, term in weighted_terms:
            if not isinstance(term, Term):
                raise TypeError(f"objectives combine Term instances, got {type(term).__name__}")
        self.weights = [_check_weight(weight) for weight, _ in weighted_terms]
        self.terms = nn.ModuleList(term for _, term in weighted_terms)
        self.name = name

    def weighted_terms(self) -> Iterator[tuple[float, Term]]:
        yield from zip(self.weights, self.terms, strict=True)

    @property
    def needs(self) -> Needs:
        return union(term.needs for term in self.terms)  # type: ignore[misc]

    @shape_checked
    def forward(self, inputs: PairInputs, reduction: Reduction = "mean") -> ObjectiveOutput:
        """Weighted loss of the batch and every term's value; fails early if an input a term needs is None."""
        per_pair = None
        terms: dict[str, Tensor] = {}
        for weight, term, values in self.term_values(inputs):
            terms[term.name] = values.detach().mean()
            per_pair = weight * values if per_pair is None else per_pair + weight * values
        assert per_pair is not None
        return ObjectiveOutput(loss=functional.reduce(per_pair, reduction), per_pair=per_pair, terms=terms)

    def term_values(self, inputs: PairInputs) -> list[tuple[float, Term, Tensor]]:
        """``(weight, term, per-pair values [pairs])`` of every term; every input is checked before any is computed.

        Raises:
            ValueError: an input a term needs is missing, or a term returns another shape than ``[pairs]``.
        """
        for _, term in self.weighted_terms():
            inputs.check(term.needs, term.name)
        computed = []
        for weight, term in self.weighted_terms():
            values = term.per_pair(inputs)
            if values.shape != (inputs.num_pairs,):
                raise ValueError(
                    f"term {term.name!r} returned shape {tuple(values.shape)}, expected [pairs] = ({inputs.num_pairs},)"
                )
            computed.append((weight, term, values))
        return computed

    def __add__(self, other: "Term | Objective") -> "Objective":
        if isinstance(other, Term):
            other = Objective([(1.0, other)])
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective([*self.weighted_terms(), *other.weighted_terms()])

    def __radd__(self, other: "Term") -> "Objective":
        return Objective([(1.0, other)]) + self if isinstance(other, Term) else NotImplemented

    def __mul__(self, scale: float) -> "Objective":
        if not is_number(scale):
            return NotImplemented
        scale = _check_weight(scale)
        return Objective([(scale * weight, term) for weight, term in self.weighted_terms()], name=self.name)

    __rmul__ = __mul__

    def config(self) -> dict[str, Any]:
        """JSON-able description; :meth:`from_config` rebuilds an equal objective."""
        return {
            "name": self.name,
            "terms": [{"weight": weight, **term.config()} for weight, term in self.weighted_terms()],
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Objective":
        """Rebuild an objective saved with :meth:`config` (custom terms must be registered first)."""
        weighted_terms = []
        for entry in config["terms"]:
            term_type = registered_term(entry["type"])
            weighted_terms.append((entry["weight"], term_type(name=entry["name"], **entry["params"])))
        return cls(weighted_terms, name=config.get("name"))

    def extra_repr(self) -> str:
        formula = " + ".join(f"{weight:g} * {term.name}" for weight, term in self.weighted_terms())
        return f"name={self.name!r}, loss = {formula}" if self.name else f"loss = {formula}"


def as_objective(objective: "Objective | Term") -> Objective:
    """``objective`` itself, or a bare :class:`~rmreg.objectives.Term` wrapped with weight 1.

    Raises:
        TypeError: anything else, naming its type.
    """
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, Term):
        return Objective([(1.0, objective)])
    raise TypeError(f"an objective must be an rmreg.Objective or a Term, got {type(objective).__name__}")
