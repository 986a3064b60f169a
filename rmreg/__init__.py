"""rmreg: reward models that generalize, by regularizing hidden states (GRM, arXiv 2406.10216).

The public API is what this module exports: the functional math (:mod:`rmreg.functional`), the
memory-efficient LM-head log-probs (:mod:`rmreg.ops`), heads, objectives and their presets.
"""

__version__ = "0.1.0.dev0"

from rmreg import functional, ops
from rmreg._typing import TypeCheckError, set_typechecking, typechecking, typechecking_enabled
from rmreg.heads import RetainedLMHead, RewardHead
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
    "PairInputs",
    "RetainedLMHead",
    "RewardCentering",
    "RewardHead",
    "SFTRegularizer",
    "Term",
    "TypeCheckError",
    "__version__",
    "functional",
    "objective",
    "ops",
    "register_term",
    "set_typechecking",
    "typechecking",
    "typechecking_enabled",
]
