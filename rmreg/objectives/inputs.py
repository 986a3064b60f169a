"""What terms read: :class:`Needs` (names of inputs) and :class:`PairInputs` (the named per-pair tensors).

A term declares the inputs it reads by name; the model computes exactly those and passes every other per-pair
batch column through under its own name. The names the model provides are :data:`MODEL_INPUTS`:

==========================================  =====================  ==================================================
name                                        shape                  what
==========================================  =====================  ==================================================
``chosen_rewards``, ``rejected_rewards``    ``[pairs]``            rewards (always there)
``chosen_logps``, ``rejected_logps``        ``[pairs]``            summed fp32 response log-probs under the LM head
``ref_chosen_logps``, ``ref_rejected_logps``  ``[pairs]``          the same under the reference model (or the batch's)
``chosen_hidden``, ``rejected_hidden``      ``[pairs, hidden]``    final hidden state at the last real token
``chosen_token_logps``, ``rejected_token_logps``  ``[pairs, seq−1]``  per-token log-probs (position t scores token t+1;
                                                                   0 off the response)
``chosen_token_mask``, ``rejected_token_mask``  ``[pairs, seq−1]``  True where the position scores a response token
``chosen_lengths``, ``rejected_lengths``    ``[pairs]``            number of response tokens (int64)
``group_rewards``                           ``[groups, K]``        rewards of a ranked group's completions, best first
``chosen_attribute_rewards``, ``rejected_…``  ``[pairs, A]``        a :class:`~rmreg.RewardHead`'s A outputs
``chosen_head_rewards``, ``rejected_…``     ``[pairs, K]``         a :class:`~rmreg.heads.RewardEnsemble`'s K heads
``head_bootstrap_weights``                  ``[pairs, K]``         the ensemble's bootstrap counts of this batch
``group_logps``, ``ref_group_logps``        ``[groups, K]``        their summed log-probs (policy, reference)
==========================================  =====================  ==================================================

``chosen_rewards`` is always the scalar reward: the head's weighted combination of its attributes
(:meth:`~rmreg.RewardHead.combine`) or the ensemble's mean, so every pair term works with any head.

For a batch of ranked groups (:class:`~rmreg.data.GroupCollator`; its ``group_index`` and ``group_mask``
``[groups, K]`` columns say where each completion sits) the objective's "pairs" are the groups: ``chosen_*`` are each
group's best completion and ``rejected_*`` its worst, so pair terms apply unchanged.

Any other name (``margin``, a ``tie`` flag, a rating) is a batch column: a ``[pairs]`` or ``[pairs, ...]`` tensor
given to :meth:`rmreg.RegularizedRewardModel.forward` as a keyword argument, or a numeric column of the dataset
that :class:`~rmreg.data.PairCollator` or the TRL trainer passed on.
"""

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from rmreg._typing import Tensor

if TYPE_CHECKING:
    from rmreg.objectives.term import Term

__all__ = [
    "ATTRIBUTE_INPUTS",
    "ENSEMBLE_INPUTS",
    "HIDDEN_INPUTS",
    "LOGPS_INPUTS",
    "MODEL_INPUTS",
    "REFERENCE_INPUTS",
    "SCALAR_COLUMNS",
    "TOKEN_INPUTS",
    "Needs",
    "PairInputs",
    "check_input_shape",
]

REWARD_INPUTS = frozenset({"chosen_rewards", "rejected_rewards"})
LOGPS_INPUTS = frozenset({"chosen_logps", "rejected_logps"})
REFERENCE_INPUTS = frozenset({"ref_chosen_logps", "ref_rejected_logps"})
HIDDEN_INPUTS = frozenset({"chosen_hidden", "rejected_hidden"})
TOKEN_INPUTS = frozenset({"chosen_token_logps", "rejected_token_logps", "chosen_token_mask", "rejected_token_mask"})
LENGTH_INPUTS = frozenset({"chosen_lengths", "rejected_lengths"})
SCALAR_COLUMNS = frozenset({"margin", "tie"})
"""Batch columns with a fixed meaning and shape ``[pairs]``: the margin loss's margin, a tie flag."""
GROUP_INPUTS = frozenset({"group_rewards", "group_logps", "ref_group_logps"})
ATTRIBUTE_INPUTS = frozenset({"chosen_attribute_rewards", "rejected_attribute_rewards"})
ENSEMBLE_INPUTS = frozenset({"chosen_head_rewards", "rejected_head_rewards", "head_bootstrap_weights"})
MODEL_INPUTS = (
    REWARD_INPUTS
    | LOGPS_INPUTS
    | REFERENCE_INPUTS
    | HIDDEN_INPUTS
    | TOKEN_INPUTS
    | LENGTH_INPUTS
    | GROUP_INPUTS
    | ATTRIBUTE_INPUTS
    | ENSEMBLE_INPUTS
)
"""Every input name the model computes on request (all others are batch columns)."""

_FLAGS = {
    "chosen_logps": ("chosen_logps",),
    "rejected_logps": ("rejected_logps",),
    "reference_logps": tuple(sorted(REFERENCE_INPUTS)),
    "margin": ("margin",),
    "hidden_states": tuple(sorted(HIDDEN_INPUTS)),
}


class Needs:
    """The names of the inputs a term (or an objective) reads; ``a | b`` is the union.

    Give names (``Needs("chosen_token_logps", "chosen_token_mask")``, ``Needs("rating")``) or the shorthand
    flags ``chosen_logps``, ``rejected_logps``, ``reference_logps`` (both reference log-probs), ``margin`` and
    ``hidden_states`` (both pooled hidden states). The rewards are always there and need not be named.

    Example:
        >>> needs = Needs(chosen_logps=True) | Needs("tie")
        >>> sorted(needs.names), needs.chosen_logps, needs.policy_logps
        (['chosen_logps', 'tie'], True, True)
    """

    __slots__ = ("names",)
    names: frozenset[str]

    def __init__(
        self,
        *names: str,
        chosen_logps: bool = False,
        rejected_logps: bool = False,
        reference_logps: bool = False,
        margin: bool = False,
        hidden_states: bool = False,
    ) -> None:
        flags = {
            "chosen_logps": chosen_logps,
            "rejected_logps": rejected_logps,
            "reference_logps": reference_logps,
            "margin": margin,
            "hidden_states": hidden_states,
        }
        for name in names:
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"an input name must be an identifier string, got {name!r}")
        flagged = [name for flag, on in flags.items() if on for name in _FLAGS[flag]]
        object.__setattr__(self, "names", (frozenset(names) | frozenset(flagged)) - REWARD_INPUTS)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("Needs is immutable")

    def __or__(self, other: "Needs") -> "Needs":
        if not isinstance(other, Needs):
            return NotImplemented
        return Needs(*(self.names | other.names))

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.names))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Needs) and self.names == other.names

    def __hash__(self) -> int:
        return hash(self.names)

    def __repr__(self) -> str:
        return f"Needs({', '.join(map(repr, sorted(self.names)))})"

    @property
    def chosen_logps(self) -> bool:
        """Whether the chosen responses' summed (or per-token) log-probs are read."""
        return bool({"chosen_logps", "chosen_token_logps"} & self.names)

    @property
    def rejected_logps(self) -> bool:
        """Whether the rejected responses' summed (or per-token) log-probs are read."""
        return bool({"rejected_logps", "rejected_token_logps"} & self.names)

    @property
    def token_logps(self) -> bool:
        """Whether per-token log-probs (or their masks) are read."""
        return bool(TOKEN_INPUTS & self.names)

    @property
    def policy_logps(self) -> bool:
        """Whether the LM head must run at all."""
        return self.chosen_logps or self.rejected_logps

    @property
    def reference_logps(self) -> bool:
        """Whether reference log-probs are read."""
        return bool(REFERENCE_INPUTS & self.names)

    @property
    def margin(self) -> bool:
        """Whether the per-pair ``margin`` column is read."""
        return "margin" in self.names

    @property
    def hidden_states(self) -> bool:
        """Whether pooled hidden states are read."""
        return bool(HIDDEN_INPUTS & self.names)

    @property
    def groups(self) -> bool:
        """Whether ranked groups are read (batches of :class:`~rmreg.data.GroupCollator`, not of pairs)."""
        return bool((GROUP_INPUTS | {"group_mask", "group_index"}) & self.names)

    @property
    def columns(self) -> frozenset[str]:
        """The names that are batch columns (not computed by the model)."""
        return self.names - MODEL_INPUTS


class PairInputs(Mapping[str, Tensor]):
    """Named per-pair tensors that terms read: pair ``i`` is ``chosen_*[i]`` against ``rejected_*[i]``.

    A read-only mapping from input name to tensor (see the module docstring for the names the model provides);
    every value's first dimension is the number of pairs. Attribute access works for present names and returns
    ``None`` for absent model inputs (``inputs.chosen_logps``); :meth:`require` is what terms use.

    Args:
        chosen_rewards: ``[pairs]``.
        rejected_rewards: ``[pairs]``.
        **values: any other inputs; ``None`` values are left out.

    Raises:
        ValueError: a value whose shape does not fit the number of pairs, naming it.

    Example:
        >>> import torch
        >>> inputs = PairInputs(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 3.0]), tie=torch.tensor([False, True]))
        >>> inputs.num_pairs, inputs.require("tie", "my_term").tolist(), inputs.chosen_logps
        (2, [False, True], None)
    """

    def __init__(self, chosen_rewards: Tensor, rejected_rewards: Tensor, **values: Tensor | None) -> None:
        if not isinstance(chosen_rewards, Tensor) or chosen_rewards.ndim != 1:
            raise ValueError(f"chosen_rewards must be a [pairs] tensor, got {_describe(chosen_rewards)}")
        self._values = {"chosen_rewards": chosen_rewards, "rejected_rewards": rejected_rewards}
        self._values.update({name: value for name, value in values.items() if value is not None})
        for name, value in self._values.items():
            check_input_shape(name, value, int(chosen_rewards.shape[0]))

    def __getitem__(self, name: str) -> Tensor:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Tensor | None:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._values:
            return self._values[name]
        if name in MODEL_INPUTS:
            return None
        raise AttributeError(f"PairInputs has no input {name!r} (present: {sorted(self._values)})")

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}={tuple(value.shape)}" for name, value in self._values.items())
        return f"PairInputs({shapes})"

    @property
    def chosen_rewards(self) -> Tensor:
        """Rewards of the chosen responses, ``[pairs]``."""
        return self._values["chosen_rewards"]

    @property
    def rejected_rewards(self) -> Tensor:
        """Rewards of the rejected responses, ``[pairs]``."""
        return self._values["rejected_rewards"]

    @property
    def num_pairs(self) -> int:
        return int(self._values["chosen_rewards"].shape[0])

    def replace(self, **values: Tensor | None) -> "PairInputs":
        """A copy with some inputs replaced, added, or (``None``) removed."""
        merged: dict[str, Any] = {**self._values, **values}
        return PairInputs(**{name: value for name, value in merged.items() if value is not None})

    def require(self, name: str, term: "Term | str") -> Tensor:
        """The tensor ``name``, or a ``ValueError`` naming the term that needs it and where it comes from."""
        value = self._values.get(name)
        if value is None:
            who = term if isinstance(term, str) else term.name
            source = (
                "the model computes it when the objective's needs name it"
                if name in MODEL_INPUTS
                else "pass it as a keyword of forward()/pair_outputs() or as a numeric dataset column"
            )
            raise ValueError(f"term {who!r} needs input {name!r}, but it was not provided ({source})")
        return value

    def check(self, needs: Needs, who: str) -> None:
        """Raise before any loss is computed if an input that ``needs`` names is missing."""
        for name in needs:
            self.require(name, who)


def _describe(value: object) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__


_MATRIX_INPUTS = {
    **dict.fromkeys(HIDDEN_INPUTS, "hidden"),
    **dict.fromkeys(TOKEN_INPUTS, "positions"),
    **dict.fromkeys(GROUP_INPUTS, "K"),
    **dict.fromkeys(ATTRIBUTE_INPUTS, "attributes"),
    **dict.fromkeys(ENSEMBLE_INPUTS, "heads"),
}
"""Model inputs of shape ``[pairs, second]``, by name: what the second dimension counts."""


def check_input_shape(name: str, value: object, pairs: int) -> None:
    """Raise ``ValueError`` unless ``value`` is a tensor of the shape input ``name`` has for ``pairs`` pairs."""
    if not isinstance(value, Tensor):
        raise ValueError(f"input {name!r} must be a tensor, got {type(value).__name__}")
    if name in _MATRIX_INPUTS:
        if value.ndim != 2 or value.shape[0] != pairs:
            raise ValueError(
                f"{name} must have shape [pairs={pairs}, {_MATRIX_INPUTS[name]}], got {tuple(value.shape)}"
            )
    elif name in MODEL_INPUTS or name in SCALAR_COLUMNS:
        if tuple(value.shape) != (pairs,):
            raise ValueError(f"{name} must have shape [pairs] = ({pairs},), got {tuple(value.shape)}")
    elif value.ndim == 0 or value.shape[0] != pairs:
        raise ValueError(
            f"per-pair input {name!r} must have shape [pairs={pairs}, ...], got {tuple(value.shape)} "
            "(one value per pair)"
        )


def union(needs: Iterable[Needs]) -> Needs:
    """The union of several :class:`Needs`."""
    total = Needs()
    for each in needs:
        total = total | each
    return total
