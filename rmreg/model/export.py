"""Export a linear-head reward model as a plain ``AutoModelForSequenceClassification`` checkpoint.

PPO trainers and evaluation tools load reward models with transformers alone. A model whose reward head is
``RewardHead(H, kind="linear")`` is exactly a sequence classifier: the backbone's decoder, then a linear
``score`` layer at the last non-pad token. The exported checkpoint holds the decoder's weights (PEFT adapters
merged into a copy first) and the head's weight as ``score.weight``.

What is equal and what is not:

* The classifier's ``score`` layer has no bias, so its logit is ``reward − b``, with ``b`` the head's bias.
  Bradley–Terry and its variants see only reward differences, so the constant changes no comparison; add
  ``b`` back (it is stored in the config as ``rmreg_reward_bias``) where absolute rewards matter.
* transformers pools at the rightmost token that is not ``pad_token_id`` and numbers positions from the start
  of the row. So logits equal :meth:`~rmreg.RegularizedRewardModel.score` for right-padded or unpadded rows
  whose last real token is not the pad token (use a pad token distinct from EOS). With left padding, pass
  ``position_ids`` counted over real tokens, as rmreg does.
"""

import copy
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rmreg.heads import RewardHead
from rmreg.model import causal_lm as lm

__all__ = ["export_sequence_classifier"]


@torch.no_grad()
def export_sequence_classifier(
    causal_lm: nn.Module, reward_head: RewardHead, directory: str | os.PathLike[str], *, tokenizer: Any = None
) -> None:
    """Write ``causal_lm`` with a linear ``reward_head`` as a sequence-classification checkpoint.

    ``transformers.AutoModelForSequenceClassification.from_pretrained(directory)`` then loads it without rmreg;
    its logits equal the reward minus the head's bias (see the module docstring for padding).

    Args:
        causal_lm: the backbone (a PEFT model is merged into a copy; the original is untouched).
        reward_head: a ``RewardHead`` with ``kind="linear"``.
        directory: where to write the checkpoint.
        tokenizer: optionally saved beside it.

    Raises:
        ValueError: an MLP head or several outputs, a config without ``pad_token_id``, or an architecture without a
            ``*ForSequenceClassification`` class with a ``score`` layer.

    Example:
        >>> import tempfile, rmreg
        >>> from rmreg.testing import tiny_causal_lm
        >>> lm = tiny_causal_lm("qwen2")
        >>> with tempfile.TemporaryDirectory() as d:
        ...     export_sequence_classifier(lm, rmreg.RewardHead(32, kind="linear"), d)
    """
    from transformers import AutoModelForSequenceClassification

    if reward_head.kind != "linear" or reward_head.num_outputs != 1:
        raise ValueError(
            "only a linear reward head with one output (RewardHead(H, kind='linear')) is a sequence classifier"
        )
    model = copy.deepcopy(causal_lm).merge_and_unload() if lm.is_peft_model(causal_lm) else causal_lm
    config = copy.deepcopy(model.config)
    if config.pad_token_id is None:
        raise ValueError("the backbone's config has no pad_token_id, which sequence classifiers pool by; set it")
    config.num_labels = 1
    config.architectures = None
    bias = reward_head.output_layer.bias
    config.rmreg_reward_bias = 0.0 if bias is None else bias.item()
    classifier = AutoModelForSequenceClassification.from_config(config)
    score = getattr(classifier, "score", None)
    if not isinstance(score, nn.Linear):
        raise ValueError(f"{type(classifier).__name__} has no linear 'score' layer to hold the reward head")
    classifier.base_model.load_state_dict(model.base_model.state_dict())
    score.weight.copy_(reward_head.output_layer.weight)
    classifier.to(model.dtype).save_pretrained(Path(directory))
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
