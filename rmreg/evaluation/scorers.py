"""Scorers: anything that turns a list of items into one reward per item, and the checks on what comes back.

An *item* is a ``(prompt, response)`` pair of strings, or a conversation (a list of ``{"role", "content"}``
messages whose last message is the scored response) where the benchmark holds conversations (HHH-Alignment,
MT-Bench, RewardBench's prior sets). A *scorer* is any callable ``scorer(items) -> rewards`` returning one number
per item (a list, a tensor or an array), or a ``(RegularizedRewardModel, tokenizer)`` tuple, scored through
:meth:`~rmreg.RegularizedRewardModel.score_texts` in eval mode. :func:`sequence_classifier_scorer` scores with a
plain ``transformers`` sequence classifier (an exported rmreg model, or any reward model on the hub's
``AutoModelForSequenceClassification`` layout, from a local directory).

With ``chat_template=True`` a ``(prompt, response)`` item is scored as the conversation
``[{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]`` rendered by the
tokenizer's chat template, as the official RewardBench, RM-Bench and JudgeBench scripts format their inputs for
a reward model; with ``False`` (default) it is scored as text, as rmreg trains on text pairs.
"""

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from rmreg._typing import Float, Tensor

__all__ = [
    "Item",
    "Scorer",
    "as_scorer",
    "as_user_turn",
    "check_rewards",
    "reward_model_scorer",
    "sequence_classifier_scorer",
]

Item = tuple[str, str] | list[dict[str, str]]
Scorer = Callable[[list[Item]], Any]


def as_user_turn(item: Item) -> Item:
    """A ``(prompt, response)`` item as a one-turn user/assistant conversation; a conversation unchanged."""
    if isinstance(item, tuple):
        prompt, response = item
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    return item


def reward_model_scorer(
    model: Any, tokenizer: Any, *, max_length: int | None = None, chat_template: bool = False
) -> Scorer:
    """A scorer for a :class:`~rmreg.RegularizedRewardModel` and its tokenizer.

    Each call runs :meth:`~rmreg.RegularizedRewardModel.score_texts` on its items in one batch, in eval mode
    (dropout off) and without autograd; the model's train/eval mode is restored afterwards.

    Args:
        model: the reward model.
        tokenizer: the tokenizer it was trained with (with a chat template for conversations).
        max_length: keep at most the last ``max_length`` tokens of each row.
        chat_template: score ``(prompt, response)`` items as user/assistant conversations (see the module doc).
    """

    def score(items: list[Item]) -> Float[Tensor, " rows"]:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                rows = [as_user_turn(item) for item in items] if chat_template else items
                return model.score_texts(tokenizer, rows, batch_size=max(1, len(rows)), max_length=max_length)
        finally:
            model.train(was_training)

    return score


def as_scorer(scorer: Any) -> Scorer:
    """``scorer`` as a callable on a list of items: a ``(RegularizedRewardModel, tokenizer)`` tuple becomes
    :func:`reward_model_scorer`; any other callable is used as it is.

    Raises:
        TypeError: neither such a tuple nor a callable.
    """
    from rmreg.model import RegularizedRewardModel

    if isinstance(scorer, tuple) and len(scorer) == 2 and isinstance(scorer[0], RegularizedRewardModel):
        return reward_model_scorer(*scorer)
    if callable(scorer) and not isinstance(scorer, tuple):
        return scorer
    raise TypeError(
        f"scorer must be a (RegularizedRewardModel, tokenizer) tuple or a callable taking a list of items, got "
        f"{type(scorer).__name__}"
    )


def check_rewards(rewards: Any, items: Sequence[Item]) -> list[float]:
    """What a scorer returned for ``items``, as a list of finite floats.

    Accepts a list or tuple of numbers, a tensor or an array of shape ``[len(items)]`` (or ``[len(items), 1]``,
    as a sequence classifier's logits).

    Raises:
        ValueError: the wrong number of rewards, or a reward that is not a finite number (NaN, inf, text).
    """
    values = rewards.tolist() if hasattr(rewards, "tolist") else rewards
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"the scorer returned {type(rewards).__name__}; it must return one number per item")
    values = [value[0] if isinstance(value, (list, tuple)) and len(value) == 1 else value for value in values]
    if len(values) != len(items):
        raise ValueError(f"the scorer returned {len(values)} rewards for {len(items)} items; it must return one each")
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(
                f"the scorer returned {value!r} for item {index} of a batch; rewards must be finite numbers"
            )
    return [float(value) for value in values]


def sequence_classifier_scorer(
    model: Any,
    tokenizer: Any = None,
    *,
    max_length: int | None = None,
    chat_template: bool = False,
    add_eos: bool = True,
    trust_remote_code: bool = False,
) -> Scorer:
    """A scorer for a ``transformers`` sequence classifier with one output (a reward model's logit).

    Items are tokenized as rmreg tokenizes them for :meth:`~rmreg.RegularizedRewardModel.score_texts`
    (:func:`rmreg.data.collate_texts`), so a model written by ``export_sequence_classifier`` scores as the rmreg
    model it came from (up to the head's bias, which the classifier cannot hold), and padded on the right, so that
    position ids count real tokens. The classifier reads the last token that is not ``pad_token_id``
    (transformers' rule); with a tokenizer whose pad token is its EOS token that is the token before a trailing
    EOS.

    Args:
        model: an ``AutoModelForSequenceClassification`` model, or the path of a local directory written by its
            ``save_pretrained`` (with the tokenizer's files, unless ``tokenizer`` is given). Nothing is
            downloaded.
        tokenizer: its tokenizer; default the one saved in the directory. Without a pad token, EOS pads.
        max_length: keep at most the last ``max_length`` tokens of each row.
        chat_template: score ``(prompt, response)`` items as user/assistant conversations (see the module doc).
        add_eos: append ``eos_token`` to text responses (as rmreg's collator does in training).
        trust_remote_code: load a directory whose model class is its own code (``auto_map`` in its config, as
            rmreg's export writes for heads other than a bias-free linear one); that code runs on this machine.

    Raises:
        ValueError: a classifier with more than one output (``num_labels`` must be 1), or a tokenizer with neither
            pad nor EOS token.

    Example:
        >>> import transformers
        >>> from rmreg.testing import tiny_tokenizer
        >>> tok = tiny_tokenizer()
        >>> config = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
        ...     num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, num_labels=1, pad_token_id=0)
        >>> classifier = transformers.AutoModelForSequenceClassification.from_config(config)
        >>> scorer = sequence_classifier_scorer(classifier, tok)
        >>> len(scorer([("2+2=", "4"), ("2+2=", "5")]))
        2
    """
    from rmreg.data import collate_texts

    if isinstance(model, (str, os.PathLike)):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        directory = Path(model)
        model = AutoModelForSequenceClassification.from_pretrained(
            directory, local_files_only=True, trust_remote_code=trust_remote_code
        )
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    if tokenizer is None:
        raise ValueError("pass the classifier's tokenizer (or the path of a directory that holds both)")
    if getattr(model.config, "num_labels", 1) != 1:
        raise ValueError(f"a reward model has one output; this classifier has num_labels={model.config.num_labels}")
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither a pad nor an EOS token; set tokenizer.pad_token")
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id  # as RewardBench's scripts do; batches need it

    def score(items: list[Item]) -> Float[Tensor, " rows"]:
        rows = [as_user_turn(item) for item in items] if chat_template else items
        batch = collate_texts(tokenizer, rows, max_length=max_length, padding_side="right", add_eos=add_eos)
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                logits = model(
                    input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
                )
        finally:
            model.train(was_training)
        return logits.logits[:, 0].float()

    return score
