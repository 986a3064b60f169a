"""Saving and loading a regularized reward model: safetensors and JSON, never pickle; verified, atomic, local.

A full (non-PEFT) model's directory is itself a transformers sequence-classification checkpoint, with rmreg's
extras beside it::

    config.json                  the classifier's config: the backbone's own (model_type "llama", ...) for a
                                 bias-free linear head, else model_type "rmreg_reward_model" (remote code)
    model.safetensors            the decoder's weights and the head's under "score." (or shards + index)
    configuration_rmreg.py       remote code only: the classifier for trust_remote_code=True (torch +
    modeling_rmreg.py              transformers, no rmreg)
    rmreg_extras/lm_head.safetensors   the retained LM head, when it is not tied to the embeddings
    reference/                   a separate reference model's save_pretrained, when the model has one
    tokenizer files              when a tokenizer is given
    rmreg_config.json            format version, the rmreg version that wrote it, head, objective, layout,
                                 reference kind, attention implementation, how the backbone is stored
    rmreg_manifest.json          every file's size and SHA-256, written last

so that ``AutoModelForSequenceClassification.from_pretrained(dir)`` (plus ``trust_remote_code=True`` for
other heads) scores like :meth:`~rmreg.RegularizedRewardModel.score` (see :mod:`rmreg.model.checkpoint.classifier`
for which form a model gets and why). A PEFT model's directory holds ``backbone/`` (its adapters),
``reward_head.safetensors``, the config (with its base model's path) and the manifest; ``export_sequence_classifier``
writes the merged classifier.

Saves are staged beside the target and moved in whole (:mod:`rmreg.model.atomic`); loads verify the manifest,
read every tensor into a model that needs exactly those tensors, and never contact a network. Checkpoints of
format 1 (``backbone/`` + ``reward_head.safetensors``, no manifest, rmreg before 0.1.0) load with
``verify=False``; their heads have an output bias.

Example:
    >>> import tempfile, torch, rmreg
    >>> from rmreg.testing import tiny_causal_lm
    >>> from transformers import AutoModelForSequenceClassification
    >>> model = rmreg.RegularizedRewardModel(tiny_causal_lm(), reward_head=rmreg.RewardHead(32, kind="linear"))
    >>> directory = tempfile.mkdtemp()
    >>> model.save_pretrained(directory)
    >>> classifier = AutoModelForSequenceClassification.from_pretrained(directory)
    >>> ids, mask = torch.tensor([[1, 40, 41, 2]]), torch.ones(1, 4, dtype=torch.long)
    >>> torch.allclose(classifier(ids, attention_mask=mask).logits[:, 0], model.eval().score(ids, mask), atol=1e-5)
    True
"""

from rmreg.model.checkpoint.classifier import ClassifierPlan, plan_classifier
from rmreg.model.checkpoint.layout import CONFIG_NAME, FORMAT_VERSION, HEAD_NAME, find_checkpoints, is_checkpoint
from rmreg.model.checkpoint.loading import load
from rmreg.model.checkpoint.parts import Parts
from rmreg.model.checkpoint.saving import save
from rmreg.model.manifest import MANIFEST_NAME

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "HEAD_NAME",
    "MANIFEST_NAME",
    "ClassifierPlan",
    "Parts",
    "find_checkpoints",
    "is_checkpoint",
    "load",
    "plan_classifier",
    "save",
]
