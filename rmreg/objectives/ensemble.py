r"""Training an ensemble of reward heads: each head's Bradley–Terry loss on its own bootstrap resample of the pairs.

Inputs (a :class:`~rmreg.heads.RewardEnsemble` of K heads gives them; see :mod:`rmreg.objectives.inputs`):
``chosen_head_rewards``, ``rejected_head_rewards`` ``[pairs, K]`` and ``head_bootstrap_weights`` ``[pairs, K]``
(how often pair p is in head k's resample of the batch, drawn per batch by the ensemble). With
:math:`\ell_{pk}` head k's Bradley–Terry loss on pair p and :math:`w_{pk}` the counts:

.. math::
    L = \frac1K \sum_k \frac{\sum_p w_{pk}\,\ell_{pk}}{\sum_p w_{pk}}

each head's mean loss over its resample (a head whose resample is empty this batch counts 0), averaged over the
heads. The per-pair value is :math:`\frac1K \sum_k P\,w_{pk}\,\ell_{pk} / \sum_{p'} w_{p'k}`, whose mean over the P
pairs is L. GRM's regularizers read the shared backbone's log-probs and compose with ``+`` as for one head::

    0.99 * EnsembleBradleyTerry() + 0.01 * SFTRegularizer(beta=0.1)
"""

from rmreg import functional
from rmreg._typing import Float, Tensor
from rmreg.objectives.inputs import Needs, PairInputs
from rmreg.objectives.term import Term, is_number, register_term

__all__ = ["EnsembleBradleyTerry"]


@register_term("ensemble_bradley_terry")
class EnsembleBradleyTerry(Term):
    """Bradley–Terry loss of every head of an ensemble on its own bootstrap resample; see the module docstring.

    Args:
        label_smoothing: ε of :func:`rmreg.functional.bradley_terry_loss`, for every head.
        bootstrap: weight each head's pairs by the ensemble's ``head_bootstrap_weights``; ``False`` trains every
            head on every pair (then the term is the mean of K Bradley–Terry losses).
        name: label in logs.

    Example:
        >>> import torch
        >>> from rmreg.objectives import PairInputs
        >>> inputs = PairInputs(
        ...     torch.zeros(2), torch.zeros(2),
        ...     chosen_head_rewards=torch.tensor([[1.0, 0.0], [2.0, 0.0]]), rejected_head_rewards=torch.zeros(2, 2),
        ...     head_bootstrap_weights=torch.tensor([[2.0, 1.0], [0.0, 1.0]]),
        ... )
        >>> EnsembleBradleyTerry()(inputs)  # head 0 sees pair 0 twice, head 1 each pair once
        tensor(0.5032)
    """

    default_name = "ensemble_bradley_terry"
    config_fields = ("label_smoothing", "bootstrap")

    def __init__(self, *, label_smoothing: float = 0.0, bootstrap: bool = True, name: str | None = None) -> None:
        super().__init__(name=name)
        if not is_number(label_smoothing) or not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing!r}")
        if not isinstance(bootstrap, bool):
            raise ValueError(f"bootstrap must be True or False, got {bootstrap!r}")
        self.label_smoothing, self.bootstrap = float(label_smoothing), bootstrap

    @property
    def needs(self) -> Needs:  # type: ignore[override]
        names = ("chosen_head_rewards", "rejected_head_rewards")
        return Needs(*names, *(("head_bootstrap_weights",) if self.bootstrap else ()))

    def per_pair(self, inputs: PairInputs) -> Float[Tensor, " pairs"]:
        chosen = inputs.require("chosen_head_rewards", self)
        rejected = inputs.require("rejected_head_rewards", self)
        if chosen.shape != rejected.shape:
            raise ValueError(
                f"term {self.name!r}: chosen_head_rewards {tuple(chosen.shape)} and rejected_head_rewards "
                f"{tuple(rejected.shape)} differ in shape"
            )
        per_head = functional.bradley_terry_loss(
            chosen.flatten(), rejected.flatten(), label_smoothing=self.label_smoothing, reduction="none"
        ).view_as(chosen)
        if not self.bootstrap:
            return per_head.mean(dim=1)
        weights = inputs.require("head_bootstrap_weights", self)
        if weights.shape != chosen.shape:
            raise ValueError(
                f"term {self.name!r}: head_bootstrap_weights has shape {tuple(weights.shape)}, the heads' rewards "
                f"{tuple(chosen.shape)}"
            )
        if bool((weights < 0).any()):
            raise ValueError(f"term {self.name!r}: head_bootstrap_weights must be >= 0")
        weights = weights.to(per_head.dtype)
        resample_sizes = weights.sum(dim=0, keepdim=True)
        scale = inputs.num_pairs / resample_sizes.clamp(min=1e-12)
        return (weights * scale * per_head).mean(dim=1)
