"""Named objectives beyond Bradley–Terry on binarized pairs: rankings, ties, batch-sum regularization, and each
composed with GRM's regularizers.

``"<reward>"`` is the reward term alone; ``"<reward>+<grm preset>"`` is ``(1 − α)·reward + α·regularizer`` with
GRM's regularizer of that preset (α = 0.01, β = 0.1 as in the paper):

==================== ====================================================== =====================================
reward               loss                                                   GRM regularizers
==================== ====================================================== =====================================
``plackett-luce``    Plackett–Luce over each group's ranking                SFT on the best; DPO best vs each
``listwise-softmax`` the best completion against the others of its group    SFT on the best; DPO best vs each
``rao-kupper``       Rao–Kupper on pairs with a ``tie`` flag (θ = 2)        SFT on the chosen
``davidson``         Davidson on pairs with a ``tie`` flag (ν = 1)          SFT on the chosen
``bsr``              Bradley–Terry + 0.016·(mean reward)² (Hong et al.)     SFT; DPO
``ensemble``         each head of a :class:`~rmreg.heads.RewardEnsemble` on    SFT; DPO
                     its own bootstrap resample (Coste et al., ICLR 2024)
``ratings``          MSE of a multi-output head on per-attribute ratings      SFT; DPO
                     + Bradley–Terry on the heads' weighted combination
==================== ====================================================== =====================================

The DPO regularizer is not offered with the tie models: it would push the "chosen" response of a tied pair
above the other. BSR's weight 0.016 is the paper's λ = 1e-3 times the per-device batch of 16 pairs its code
multiplies by; for another weight compose ``rmreg.BradleyTerry() + w * BatchSumRegularizer()``.

Example:
    >>> from rmreg.objectives.beyond_pairs_presets import beyond_pairs_objective
    >>> beyond_pairs_objective("plackett-luce+grm-sft")
    Objective(
      name='plackett-luce+grm-sft', loss = 0.99 * plackett_luce + 0.01 * sft
      (terms): ModuleList(
        (0): PlackettLuce(name='plackett_luce')
        (1): SFTRegularizer(name='sft', beta=0.1, log_sigmoid=True)
      )
    )
"""

from collections.abc import Callable

from rmreg import functional
from rmreg.objectives.batch import BatchSumRegularizer
from rmreg.objectives.composition import Objective
from rmreg.objectives.ensemble import EnsembleBradleyTerry
from rmreg.objectives.pairwise import BradleyTerry
from rmreg.objectives.rankings import GroupDPORegularizer, ListwiseSoftmax, PlackettLuce
from rmreg.objectives.ratings import RatingMSE
from rmreg.objectives.regularizers import DPORegularizer, SFTRegularizer
from rmreg.objectives.term import Term
from rmreg.objectives.ties import Davidson, RaoKupper

__all__ = ["BEYOND_PAIRS_PRESETS", "BSR_WEIGHT", "beyond_pairs_objective"]

BSR_WEIGHT = 0.016
"""λ = 1e-3 of Hong et al. (ICML 2025) times the per-device batch size 16 their code multiplies it by."""

_REWARDS: dict[str, Callable[[], list[tuple[float, Term]]]] = {
    "plackett-luce": lambda: [(1.0, PlackettLuce())],
    "listwise-softmax": lambda: [(1.0, ListwiseSoftmax())],
    "rao-kupper": lambda: [(1.0, RaoKupper())],
    "davidson": lambda: [(1.0, Davidson())],
    "bsr": lambda: [(1.0, BradleyTerry()), (BSR_WEIGHT, BatchSumRegularizer())],
    "ensemble": lambda: [(1.0, EnsembleBradleyTerry())],
    "ratings": lambda: [(1.0, RatingMSE()), (1.0, BradleyTerry())],
}
_GROUPS = ("plackett-luce", "listwise-softmax")
_TIES = ("rao-kupper", "davidson")


def _regularizer(reward: str, name: str, beta: float) -> Term:
    if name == "grm-sft":
        return SFTRegularizer(beta=beta)
    if name == "grm-sft-nll":
        return SFTRegularizer(beta=beta, log_sigmoid=False)
    reference = name == "grm-dpo"
    if reward in _GROUPS:
        return GroupDPORegularizer(beta=beta, reference=reference)
    return DPORegularizer(beta=beta, reference=reference)


def _regularizers_of(reward: str) -> tuple[str, ...]:
    sft = ("grm-sft", "grm-sft-nll")
    return sft if reward in _TIES else (*sft, "grm-dpo", "grm-dpo-noref")


BEYOND_PAIRS_PRESETS: tuple[str, ...] = tuple(
    name for reward in _REWARDS for name in (reward, *(f"{reward}+{reg}" for reg in _regularizers_of(reward)))
)


def beyond_pairs_objective(name: str, *, alpha: float = 0.01, beta: float = 0.1) -> Objective:
    """The objective named ``name`` (one of :data:`BEYOND_PAIRS_PRESETS`).

    Raises:
        ValueError: an unknown name (listing the known ones), α outside ``[0, 1]``, β ≤ 0.
    """
    if name not in BEYOND_PAIRS_PRESETS:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(BEYOND_PAIRS_PRESETS)}")
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be in [0, 1] (the regularizer's weight), got {alpha!r}")
    functional._check_beta(beta)
    reward, _, regularizer = name.partition("+")
    terms = _REWARDS[reward]()
    if not regularizer:
        return Objective(terms, name=name)
    weighted = [((1.0 - alpha) * weight, term) for weight, term in terms]
    return Objective([*weighted, (alpha, _regularizer(reward, regularizer, beta))], name=name)
