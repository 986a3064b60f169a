"""A byte-level BPE tokenizer trained in code (no files, no network), Qwen-like: ChatML, no BOS, pad ≠ EOS.

Its merges are learned from whole sentences, so they cross any boundary drawn inside a word or before a space:
tokenizing ``prompt`` alone and ``prompt + response`` gives different ids there, the case that tokenizing the
two apart gets wrong.
"""

from collections.abc import Sequence
from typing import Any

ZEN = (
    "Beautiful is better than ugly.",
    "Explicit is better than implicit.",
    "Simple is better than complex.",
    "Complex is better than complicated.",
    "Flat is better than nested.",
    "Sparse is better than dense.",
    "Readability counts.",
    "Special cases aren't special enough to break the rules.",
    "Although practicality beats purity.",
    "Errors should never pass silently.",
    "Unless explicitly silenced.",
    "In the face of ambiguity, refuse the temptation to guess.",
    "There should be one obvious way to do it.",
    "Now is better than never.",
    "Although never is often better than right now.",
    "If the implementation is hard to explain, it's a bad idea.",
    "If the implementation is easy to explain, it may be a good idea.",
    "Namespaces are one honking great idea.",
)
"""The training sentences (and the sentences the TRL stand-in datasets are cut from)."""

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

CHATML = (
    "{% if tools %}<|im_start|>system\n# Tools\n{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}<|im_end|>\n"
    "{% endif %}{% for message in messages %}<|im_start|>"
    "{{ message['role'].upper() if role_capital else message['role'] }}\n"
    "{% if message['content'] %}{{ message['content'] }}{% endif %}"
    "{% for call in message.get('tool_calls') or [] %}<tool_call>{{ call['function'] | tojson }}</tool_call>"
    "{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>{{ 'ASSISTANT' if role_capital else 'assistant' }}\n{% endif %}"
)
"""ChatML with tools (rendered as JSON in a system turn), tool calls, and a ``role_capital`` template argument."""


def bpe_tokenizer(
    corpus: Sequence[str] = ZEN,
    *,
    vocab_size: int = 400,
    pad_token: str | None = "<|endoftext|>",
    chat_template: str | None = CHATML,
    padding_side: str = "right",
) -> Any:
    """A ``PreTrainedTokenizerFast``: byte-level BPE trained on ``corpus``, EOS ``<|im_end|>``, no BOS.

    Args:
        corpus: training texts (merges follow them).
        vocab_size: vocabulary size to train to (byte alphabet, special tokens and merges).
        pad_token: the pad token; ``None`` leaves none (TRL then pads with EOS).
        chat_template: the chat template (``None``: none).
        padding_side: the side the tokenizer pads.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator([*corpus, *(" " + text for text in corpus)], trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token=pad_token, padding_side=padding_side
    )
    tokenizer.chat_template = chat_template
    return tokenizer
