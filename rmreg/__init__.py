"""rmreg: reward models that generalize, by regularizing hidden states (GRM, arXiv 2406.10216).

The public API is what this module exports: the functional math (:mod:`rmreg.functional`), the
memory-efficient LM-head log-probs (:mod:`rmreg.ops`), heads, objectives and their presets, pair collation
(:mod:`rmreg.data`) and :class:`RegularizedRewardModel`, which turns a Hugging Face causal LM into a
regularized reward model. Integrations with TRL and Accelerate live in :mod:`rmreg.integrations` and are
imported only when used.
"""

__version__ = "0.1.0.dev0"

from rmreg import data, functional, ops
from rmreg._typing import (
    TypeCheckError,
    set_debug_checks,
    set_typechecking,
    typechecking,
    typechecking_enabled,
)
from rmreg.data import PairCollator
from rmreg.heads import RetainedLMHead, RewardHead
from rmreg.model import RegularizedRewardModel, RewardModelOutput
from rmreg.objectives import (
    PRESETS,
    BradleyTerry,
    DPORegularizer,
    Needs,
    Objective,
    ObjectiveOutput,
    PairInputs,
    RewardCentering,
    SFTRegularizer,
    Term,
    as_objective,
    objective,
    register_term,
)

__all__ = [
    "PRESETS",
    "BradleyTerry",
    "DPORegularizer",
    "Needs",
    "Objective",
    "ObjectiveOutput",
    "PairCollator",
    "PairInputs",
    "RegularizedRewardModel",
    "RetainedLMHead",
    "RewardCentering",
    "RewardHead",
    "RewardModelOutput",
    "SFTRegularizer",
    "Term",
    "TypeCheckError",
    "__version__",
    "as_objective",
    "data",
    "functional",
    "objective",
    "ops",
    "register_term",
    "set_debug_checks",
    "set_typechecking",
    "typechecking",
    "typechecking_enabled",
]
