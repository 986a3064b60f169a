"""The paper's named objectives (GRM and its baselines), built from the built-in terms.

GRM's loss is ``L = (1 − α)·L_reward + α·L_reg`` (Yang et al., NeurIPS 2024, Eq. 5,
https://arxiv.org/abs/2406.10216), α = 0.01 and β = 0.1 in the paper.
"""

from collections.abc import Callable

from rmreg import functional
from rmreg.objectives.beyond_pairs_presets import BEYOND_PAIRS_PRESETS, beyond_pairs_objective
from rmreg.objectives.composition import Objective
from rmreg.objectives.pairwise import BradleyTerry
from rmreg.objectives.regularizers import DPORegularizer, SFTRegularizer
from rmreg.objectives.term import Term

__all__ = ["PRESETS", "objective"]


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
    if name in BEYOND_PAIRS_PRESETS:
        return beyond_pairs_objective(name, alpha=alpha, beta=beta)
    if name not in PRESETS:
        raise ValueError(
            f"unknown objective {name!r}; choose one of {', '.join(PRESETS)}, or beyond pairs: "
            f"{', '.join(BEYOND_PAIRS_PRESETS)}"
        )
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
