"""GRM's built-in regularizer terms: the SFT and DPO regularizers on the retained LM head's log-probs.

Yang et al., "Regularizing Hidden States Enables Learning Generalizable Reward Model for LLMs", NeurIPS 2024,
https://arxiv.org/abs/2406.10216, Eq. 5–7. Formulas live in :mod:`rmreg.functional`.
"""

from rmreg import functional
from rmreg._typing import Float, Tensor
from rmreg.objectives.inputs import Needs, PairInputs
from rmreg.objectives.term import Term, register_term

__all__ = ["DPORegularizer", "SFTRegularizer"]


@register_term("sft_regularizer")
class SFTRegularizer(Term):
    """GRM's SFT regularizer on the chosen responses; see :func:`rmreg.functional.sft_regularizer`.

    Args:
        beta: β > 0 (0.1 in the paper).
        log_sigmoid: ``−log σ(β·log π)`` (default) or plain NLL ``−log π``.
        name: label in logs (default ``"sft"``, or ``"sft_nll"`` for the NLL form).
    """

    needs = Needs(chosen_logps=True)
    logps_weights = (1.0, 0.0)
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
    logps_weights = (1.0, -1.0)  # the loss reads (log π(y_c) − log π(y_r)), the reference terms are constants

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
