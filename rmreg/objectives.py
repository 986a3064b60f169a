"""Loss terms and regularizers as modules, their weighted composition, and GRM's named presets.

A *term* turns per-pair model outputs into per-pair losses and declares what it needs (rewards are always
there; policy log-probs of the chosen and/or rejected response, reference log-probs, a per-pair margin, the
pooled hidden states), so the model computes only that. Terms compose with ``+`` and scalar ``*`` into an
:class:`Objective`, which reports every term's value for logging::

    objective = 0.99 * BradleyTerry() + 0.01 * SFTRegularizer(beta=0.1)   # == rmreg.objective("grm-sft")

GRM's loss is ``L = (1 − α)·L_reward + α·L_reg`` (Yang et al., NeurIPS 2024, Eq. 5,
https://arxiv.org/abs/2406.10216), α = 0.01 and β = 0.1 in the paper.

Writing your own term takes a class with ``needs``, a ``name`` and ``per_pair``::

    class HiddenNormPenalty(Term):
        needs = Needs(hidden_states=True)

        def per_pair(self, inputs: PairInputs) -> Tensor:
            return inputs.require("chosen_hidden", self).square().sum(-1)

    objective = rmreg.objective("grm-sft") + 1e-3 * HiddenNormPenalty(name="hidden_norm")

Register it with :func:`register_term` to save and reload objectives that use it.
"""

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

from torch import nn

from rmreg import functional
from rmreg._typing import Float, Tensor, shape_checked
from rmreg.functional import Reduction

__all__ = [
    "PRESETS",
    "BradleyTerry",
    "DPORegularizer",
    "Needs",
    "Objective",
    "ObjectiveOutput",
    "PairInputs",
    "RewardCentering",
    "SFTRegularizer",
    "Term",
    "objective",
    "register_term",
]


@dataclasses.dataclass(frozen=True)
class Needs:
    """What a term needs beyond the rewards; ``a | b`` is the union of two terms' needs."""

    chosen_logps: bool = False
    rejected_logps: bool = False
    reference_logps: bool = False
    margin: bool = False
    hidden_states: bool = False

    def __or__(self, other: "Needs") -> "Needs":
        return Needs(**{f.name: getattr(self, f.name) or getattr(other, f.name) for f in dataclasses.fields(self)})

    @property
    def policy_logps(self) -> bool:
        """Whether the LM head must run at all."""
        return self.chosen_logps or self.rejected_logps


_PER_PAIR_FIELDS = (
    "chosen_rewards",
    "rejected_rewards",
    "chosen_logps",
    "rejected_logps",
    "ref_chosen_logps",
    "ref_rejected_logps",
    "margin",
)
_HIDDEN_FIELDS = ("chosen_hidden", "rejected_hidden")
_FIELDS_OF_NEED = {
    "chosen_logps": ("chosen_logps",),
    "rejected_logps": ("rejected_logps",),
    "reference_logps": ("ref_chosen_logps", "ref_rejected_logps"),
    "margin": ("margin",),
    "hidden_states": _HIDDEN_FIELDS,
}


@dataclasses.dataclass(frozen=True)
class PairInputs:
    """Per-pair model outputs that terms read: pair ``i`` is ``chosen_*[i]`` against ``rejected_*[i]``.

    Attributes:
        chosen_rewards: ``[pairs]``.
        rejected_rewards: ``[pairs]``.
        chosen_logps: summed response log-probs of the chosen rows under the retained LM head, ``[pairs]``.
        rejected_logps: the same for the rejected rows.
        ref_chosen_logps: the reference model's summed log-probs of the chosen responses, ``[pairs]``.
        ref_rejected_logps: the same for the rejected responses.
        margin: per-pair margin for the margin loss, ``[pairs]``.
        chosen_hidden: final hidden state at the last real token of each chosen row, ``[pairs, hidden]``.
        rejected_hidden: the same for the rejected rows.

    Fields a term does not need may be ``None``. Shapes are checked on construction.
    """

    chosen_rewards: Tensor
    rejected_rewards: Tensor
    chosen_logps: Tensor | None = None
    rejected_logps: Tensor | None = None
    ref_chosen_logps: Tensor | None = None
    ref_rejected_logps: Tensor | None = None
    margin: Tensor | None = None
    chosen_hidden: Tensor | None = None
    rejected_hidden: Tensor | None = None

    def __post_init__(self) -> None:
        if self.chosen_rewards.ndim != 1:
            raise ValueError(f"chosen_rewards must be [pairs], got shape {tuple(self.chosen_rewards.shape)}")
        pairs = self.chosen_rewards.shape[0]
        for name in _PER_PAIR_FIELDS:
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != (pairs,):
                raise ValueError(f"{name} must have shape [pairs] = ({pairs},), got {tuple(value.shape)}")
        for name in _HIDDEN_FIELDS:
            value = getattr(self, name)
            if value is not None and (value.ndim != 2 or value.shape[0] != pairs):
                raise ValueError(f"{name} must have shape [pairs={pairs}, hidden], got {tuple(value.shape)}")

    @property
    def num_pairs(self) -> int:
        return int(self.chosen_rewards.shape[0])

    def require(self, field: str, term: "Term | str") -> Tensor:
        """The tensor ``field``, or a ``ValueError`` naming the term that needs it."""
        value = getattr(self, field)
        if value is None:
            who = term if isinstance(term, str) else term.name
            raise ValueError(f"term {who!r} needs {field}, but it was not provided")
        return value

    def check(self, needs: Needs, who: str) -> None:
        """Raise before any loss is computed if a field that ``needs`` asks for is missing."""
        for need, fields in _FIELDS_OF_NEED.items():
            if getattr(needs, need):
                for field in fields:
                    self.require(field, who)


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


class Term(nn.Module):
    """One loss or regularizer: per-pair outputs in, per-pair losses out.

    Subclasses set the class attribute ``needs`` and implement :meth:`per_pair`; hyperparameters that
    :meth:`config` should save are listed in ``config_fields``. ``name`` labels the term in logs and must
    be unique within an objective.
    """

    needs: ClassVar[Needs] = Needs()
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
        if not _is_number(weight):
            return NotImplemented
        return Objective([(weight, self)])

    __rmul__ = __mul__

    def __add__(self, other: "Term | Objective") -> "Objective":
        return Objective([(1.0, self)]) + other


@register_term("bradley_terry")
class BradleyTerry(Term):
    """Bradley–Terry loss, optionally with the pair's margin and label smoothing.

    See :func:`rmreg.functional.bradley_terry_loss` for the formula.

    Args:
        label_smoothing: ε in ``[0, 0.5]``.
        use_margin: subtract the batch's per-pair ``margin`` (the margin baseline).
        name: label in logs.
    """

    default_name = "bradley_terry"
    config_fields = ("label_smoothing", "use_margin")

    def __init__(self, *, label_smoothing: float = 0.0, use_margin: bool = False, name: str | None = None):
        super().__init__(name=name)
        if not 0.0 <= label_smoothing <= 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
        self.use_margin = bool(use_margin)

    @property
    def needs(self) -> Needs:  # type: ignore[override]
        return Needs(margin=self.use_margin)

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        return functional.bradley_terry_loss(
            inputs.chosen_rewards,
            inputs.rejected_rewards,
            margin=inputs.require("margin", self) if self.use_margin else None,
            label_smoothing=self.label_smoothing,
            reduction="none",
        )


@register_term("reward_centering")
class RewardCentering(Term):
    """``(r_c + r_r)²``: keeps rewards centred; see :func:`rmreg.functional.reward_centering`."""

    default_name = "centering"

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        return functional.reward_centering(inputs.chosen_rewards, inputs.rejected_rewards, reduction="none")


@register_term("sft_regularizer")
class SFTRegularizer(Term):
    """GRM's SFT regularizer on the chosen responses; see :func:`rmreg.functional.sft_regularizer`.

    Args:
        beta: β > 0 (0.1 in the paper).
        log_sigmoid: ``−log σ(β·log π)`` (default) or plain NLL ``−log π``.
        name: label in logs (default ``"sft"``, or ``"sft_nll"`` for the NLL form).
    """

    needs = Needs(chosen_logps=True)
    config_fields = ("beta", "log_sigmoid")

    def __init__(self, *, beta: float = 0.1, log_sigmoid: bool = True, name: str | None = None):
        super().__init__(name=name or ("sft" if log_sigmoid else "sft_nll"))
        functional._check_beta(beta)
        self.beta = float(beta)
        self.log_sigmoid = bool(log_sigmoid)

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        return functional.sft_regularizer(
            inputs.require("chosen_logps", self),
            beta=self.beta,
            log_sigmoid=self.log_sigmoid,
            reduction="none",
        )


@register_term("dpo_regularizer")
class DPORegularizer(Term):
    """GRM's DPO regularizer; see :func:`rmreg.functional.dpo_regularizer`.

    Args:
        beta: β > 0 (0.1 in the paper).
        reference: compare against reference log-probs ("dpo") or not ("dpo-noref").
        name: label in logs (default ``"dpo"`` or ``"dpo_noref"``).
    """

    config_fields = ("beta", "reference")

    def __init__(self, *, beta: float = 0.1, reference: bool = True, name: str | None = None):
        super().__init__(name=name or ("dpo" if reference else "dpo_noref"))
        functional._check_beta(beta)
        self.beta = float(beta)
        self.reference = bool(reference)

    @property
    def needs(self) -> Needs:  # type: ignore[override]
        return Needs(chosen_logps=True, rejected_logps=True, reference_logps=self.reference)

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        return functional.dpo_regularizer(
            inputs.require("chosen_logps", self),
            inputs.require("rejected_logps", self),
            inputs.require("ref_chosen_logps", self) if self.reference else None,
            inputs.require("ref_rejected_logps", self) if self.reference else None,
            beta=self.beta,
            reduction="none",
        )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_weight(weight: object) -> float:
    if not _is_number(weight) or not math.isfinite(weight):  # type: ignore[arg-type]
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
        yield from zip(self.weights, self.terms, strict=True)  # type: ignore[misc]

    @property
    def needs(self) -> Needs:
        needs = Needs()
        for term in self.terms:
            needs = needs | term.needs  # type: ignore[operator]
        return needs

    @shape_checked
    def forward(self, inputs: PairInputs, reduction: Reduction = "mean") -> ObjectiveOutput:
        """Weighted loss of the batch and every term's value; fails early if an input a term needs is None."""
        for _, term in self.weighted_terms():
            inputs.check(term.needs, term.name)
        per_pair = None
        terms: dict[str, Tensor] = {}
        for weight, term in self.weighted_terms():
            values = term.per_pair(inputs)
            if values.shape != (inputs.num_pairs,):
                raise ValueError(
                    f"term {term.name!r} returned shape {tuple(values.shape)}, expected [pairs] = ({inputs.num_pairs},)"
                )
            terms[term.name] = values.detach().mean()
            per_pair = weight * values if per_pair is None else per_pair + weight * values
        assert per_pair is not None
        return ObjectiveOutput(loss=functional.reduce(per_pair, reduction), per_pair=per_pair, terms=terms)

    def __add__(self, other: "Term | Objective") -> "Objective":
        if isinstance(other, Term):
            other = Objective([(1.0, other)])
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective([*self.weighted_terms(), *other.weighted_terms()])

    def __radd__(self, other: "Term") -> "Objective":
        return Objective([(1.0, other)]) + self if isinstance(other, Term) else NotImplemented

    def __mul__(self, scale: float) -> "Objective":
        if not _is_number(scale):
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
            term_type = _TERM_TYPES.get(entry["type"])
            if term_type is None:
                raise ValueError(
                    f"unknown term type {entry['type']!r} (known: {sorted(_TERM_TYPES)}); register custom terms "
                    "with @rmreg.objectives.register_term before loading"
                )
            weighted_terms.append((entry["weight"], term_type(name=entry["name"], **entry["params"])))
        return cls(weighted_terms, name=config.get("name"))

    def extra_repr(self) -> str:
        formula = " + ".join(f"{weight:g} * {term.name}" for weight, term in self.weighted_terms())
        return f"name={self.name!r}, loss = {formula}" if self.name else f"loss = {formula}"


def _reward_term(name: str, label_smoothing: float) -> BradleyTerry:
    if name == "margin":
        return BradleyTerry(use_margin=True)
    if name == "label-smoothing":
        return BradleyTerry(label_smoothing=label_smoothing)
    return BradleyTerry()


def _regularizer(name: str, beta: float) -> Term | None:
    regularizers: dict[str, Callable[[], Term]] = {
        "grm-sft": lambda: SFTRegularizer(beta=beta),
        "grm-sft-nll": lambda: SFTRegularizer(beta=beta, log_sigmoid=False),
        "grm-dpo": lambda: DPORegularizer(beta=beta, reference=True),
        "grm-dpo-noref": lambda: DPORegularizer(beta=beta, reference=False),
    }
    build = regularizers.get(name)
    return build() if build else None


PRESETS: tuple[str, ...] = ("bt", "margin", "label-smoothing", "grm-sft", "grm-sft-nll", "grm-dpo", "grm-dpo-noref")


def objective(name: str, *, alpha: float = 0.01, beta: float = 0.1, label_smoothing: float = 0.1) -> Objective:
    r"""The paper's named objectives, with its defaults (α = 0.01, β = 0.1, ε = 0.1).

    ============== ==============================================================
    name           loss
    ============== ==============================================================
    bt             Bradley–Terry
    margin         Bradley–Terry with the batch's per-pair margin
    label-smoothing Bradley–Terry with label smoothing ε
    grm-sft        (1 − α)·BT + α·SFT regularizer (log-sigmoid form, β)
    grm-sft-nll    (1 − α)·BT + α·SFT regularizer (plain NLL form)
    grm-dpo        (1 − α)·BT + α·DPO regularizer with a reference model (β)
    grm-dpo-noref  (1 − α)·BT + α·DPO regularizer without reference (β)
    ============== ==============================================================

    Args:
        name: one of :data:`PRESETS`.
        alpha: regularizer weight α in ``[0, 1]`` (GRM presets only).
        beta: β > 0 (GRM presets only).
        label_smoothing: ε in ``[0, 0.5]`` (``label-smoothing`` only).

    Raises:
        ValueError: an unknown name or a hyperparameter out of range, with what is allowed.

    Example:
        >>> import rmreg
        >>> rmreg.objective("grm-sft")
        Objective(
          name='grm-sft', loss = 0.99 * bradley_terry + 0.01 * sft
          (terms): ModuleList(
            (0): BradleyTerry(name='bradley_terry', label_smoothing=0.0, use_margin=False)
            (1): SFTRegularizer(name='sft', beta=0.1, log_sigmoid=True)
          )
        )
    """
    if name not in PRESETS:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(PRESETS)}")
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be in [0, 1] (the regularizer's weight), got {alpha!r}")
    functional._check_beta(beta)
    if not 0.0 <= label_smoothing <= 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5], got {label_smoothing!r}")
    reward = _reward_term(name, label_smoothing)
    regularizer = _regularizer(name, beta)
    if regularizer is None:
        return Objective([(1.0, reward)], name=name)
    return Objective([(1.0 - alpha, reward), (alpha, regularizer)], name=name)
