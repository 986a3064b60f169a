"""Export a reward model as a plain transformers sequence-classification checkpoint, PEFT adapters merged.

PPO/GRPO trainers, best-of-N samplers, RewardBench and inference servers load reward models with transformers
alone. The exported directory holds the classifier files of :mod:`rmreg.model.checkpoint` (``config.json``,
``model.safetensors``, for non-linear heads ``modeling_rmreg.py``), the tokenizer if given and a manifest, and
nothing of rmreg's training state (objective, LM head, reference). For a full model this is what
``save_pretrained`` writes already; for a PEFT model it is the one way to a loadable classifier.

``AutoModelForSequenceClassification.from_pretrained(dir)`` loads a bias-free linear head natively (with a pad
token that is not EOS, and a head in the backbone's dtype); any other head, a bias, a float32 head on a bf16
backbone, or ``pad = eos`` loads with ``trust_remote_code=True``. Either way its logits equal
:meth:`~rmreg.RegularizedRewardModel.score` (see :mod:`rmreg.model.checkpoint.classifier` for padding).
"""

import copy
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rmreg.heads import RewardEnsemble, RewardHead
from rmreg.model import causal_lm as lm
from rmreg.model.atomic import staged_directory
from rmreg.model.checkpoint.classifier import plan_classifier, write_classifier
from rmreg.model.checkpoint.layout import checkpoint_entries
from rmreg.model.checkpoint.tensors import MAX_SHARD_SIZE
from rmreg.model.manifest import MANIFEST_NAME, write_manifest

__all__ = ["export_sequence_classifier"]


@torch.no_grad()
def export_sequence_classifier(
    causal_lm: nn.Module,
    reward_head: RewardHead | RewardEnsemble,
    directory: str | os.PathLike[str],
    *,
    tokenizer: Any = None,
    max_shard_size: int | str = MAX_SHARD_SIZE,
) -> None:
    """Write ``causal_lm`` with ``reward_head`` as a sequence-classification checkpoint, atomically.

    Args:
        causal_lm: the backbone (a PEFT model is merged into a copy; the original is untouched).
        reward_head: a :class:`~rmreg.RewardHead` (several outputs give ``num_outputs`` logits per row) or a
            :class:`~rmreg.heads.RewardEnsemble` (one logit per head; remote code).
        directory: where to write; an earlier checkpoint there is replaced whole, other entries are kept.
        tokenizer: saved beside it; its pad token decides the form (see the module docstring).
        max_shard_size: largest weight file before the weights are split into shards.

    Example:
        >>> import tempfile, rmreg
        >>> from rmreg.testing import tiny_causal_lm
        >>> from transformers import AutoModelForSequenceClassification
        >>> directory = tempfile.mkdtemp()
        >>> export_sequence_classifier(tiny_causal_lm("qwen2"), rmreg.RewardHead(32, hidden=8), directory)
        >>> type(AutoModelForSequenceClassification.from_pretrained(directory, trust_remote_code=True)).__name__
        'RmregRewardModel'
    """
    copied: Any = copy.deepcopy(causal_lm) if lm.is_peft_model(causal_lm) else None
    model = copied.merge_and_unload() if copied is not None else causal_lm
    plan = plan_classifier(model, reward_head, tokenizer)
    directory = Path(directory)
    with staged_directory(directory, replaces=checkpoint_entries(directory), commit_file=MANIFEST_NAME) as staging:
        write_classifier(staging, model, reward_head, plan, max_shard_size=max_shard_size)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        write_manifest(staging, writer=_rmreg_version())


def _rmreg_version() -> str:
    import rmreg

    return rmreg.__version__
