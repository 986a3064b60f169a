"""Loss terms and regularizers, their weighted composition, and GRM's named presets.

* :mod:`rmreg.objectives.inputs` — :class:`Needs` (the names a term reads) and :class:`PairInputs` (the named
  per-pair tensors: rewards, log-probs, hidden states, batch columns);
* :mod:`rmreg.objectives.term` — the :class:`Term` base class and :func:`register_term`;
* :mod:`rmreg.objectives.pairwise`, :mod:`rmreg.objectives.regularizers` — the built-in terms;
* :mod:`rmreg.objectives.composition` — :class:`Objective`, a named weighted sum of terms;
* :mod:`rmreg.objectives.presets` — :func:`objective` (``"bt"``, ``"grm-sft"``, …).

Example:
    >>> import rmreg
    >>> objective = 0.99 * rmreg.BradleyTerry() + 0.01 * rmreg.SFTRegularizer(beta=0.1)
    >>> objective.needs
    Needs('chosen_logps')
"""

from rmreg.objectives.batch import BatchSumRegularizer
from rmreg.objectives.beyond_pairs_presets import BEYOND_PAIRS_PRESETS
from rmreg.objectives.composition import Objective, ObjectiveOutput, as_objective
from rmreg.objectives.ensemble import EnsembleBradleyTerry
from rmreg.objectives.inputs import MODEL_INPUTS, Needs, PairInputs
from rmreg.objectives.pairwise import BradleyTerry, RewardCentering
from rmreg.objectives.presets import PRESETS, objective
from rmreg.objectives.rankings import GroupDPORegularizer, ListwiseSoftmax, PlackettLuce
from rmreg.objectives.ratings import OrdinalRating, RatingMSE
from rmreg.objectives.regularizers import DPORegularizer, SFTRegularizer
from rmreg.objectives.term import Term, register_term
from rmreg.objectives.ties import Davidson, RaoKupper

__all__ = [
    "BEYOND_PAIRS_PRESETS",
    "MODEL_INPUTS",
    "PRESETS",
    "BatchSumRegularizer",
    "BradleyTerry",
    "DPORegularizer",
    "Davidson",
    "EnsembleBradleyTerry",
    "GroupDPORegularizer",
    "ListwiseSoftmax",
    "Needs",
    "Objective",
    "ObjectiveOutput",
    "OrdinalRating",
    "PairInputs",
    "PlackettLuce",
    "RaoKupper",
    "RatingMSE",
    "RewardCentering",
    "SFTRegularizer",
    "Term",
    "as_objective",
    "objective",
    "register_term",
]
