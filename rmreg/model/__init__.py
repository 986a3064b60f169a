"""The reward model: a Hugging Face causal LM with a reward head, producing typed per-pair outputs.

* :mod:`rmreg.model.reward_model` — :class:`RegularizedRewardModel` (``pair_outputs``, ``forward``, ``score``);
* :mod:`rmreg.model.pair_outputs` — from a batch to the named inputs a :class:`~rmreg.Needs` asks for;
* :mod:`rmreg.model.causal_lm` — the causal-LM side: hidden states, last-token pooling, response log-probs;
* :mod:`rmreg.model.reference` — the reference policy for the DPO regularizer;
* :mod:`rmreg.model.batch_checks` — input checks with as few device reads as possible;
* :mod:`rmreg.model.checkpoint`, :mod:`rmreg.model.export` — saving, loading, exporting.
"""

from rmreg.model.outputs import RewardModelOutput
from rmreg.model.reference import Reference, ReferencePolicy
from rmreg.model.reward_model import RegularizedRewardModel

__all__ = ["Reference", "ReferencePolicy", "RegularizedRewardModel", "RewardModelOutput"]
