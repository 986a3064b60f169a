"""rmreg: reward models that generalize, by regularizing hidden states (GRM, arXiv 2406.10216).

The public API is what this module exports: the functional math (:mod:`rmreg.functional`), the
memory-efficient LM-head log-probs (:mod:`rmreg.ops`), heads, objectives and their presets, pair collation
(:mod:`rmreg.data`) and :class:`RegularizedRewardModel`, which turns a Hugging Face causal LM into a
regularized reward model. Integrations with TRL and Accelerate live in :mod:`rmreg.integrations` and are
imported only when used.
"""

__version__ = "0.1.0.dev0"

import importlib
from typing import TYPE_CHECKING, Any

# The public API, imported on first use (PEP 562), so that `import rmreg` and the `rmreg --help` command line are
# instant and need no torch; `from rmreg import RegularizedRewardModel` works as usual.
_EXPORTS = {
    "TypeCheckError": "rmreg._typing",
    "set_debug_checks": "rmreg._typing",
    "set_typechecking": "rmreg._typing",
    "typechecking": "rmreg._typing",
    "typechecking_enabled": "rmreg._typing",
    "PairCollator": "rmreg.data",
    "RetainedLMHead": "rmreg.heads",
    "RewardHead": "rmreg.heads",
    "RegularizedRewardModel": "rmreg.model",
    "RewardModelOutput": "rmreg.model",
    **dict.fromkeys(
        (
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
            "as_objective",
            "objective",
            "register_term",
        ),
        "rmreg.objectives",
    ),
}
_SUBMODULES = ("data", "functional", "objectives", "ops")

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
    "objectives",
    "ops",
    "register_term",
    "set_debug_checks",
    "set_typechecking",
    "typechecking",
    "typechecking_enabled",
]

if TYPE_CHECKING:
    from rmreg import data, functional, objectives, ops
    from rmreg._typing import TypeCheckError, set_debug_checks, set_typechecking, typechecking, typechecking_enabled
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


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"rmreg.{name}")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rmreg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
