"""Tiny tokenizers and causal LMs built in code, for tests, examples and offline demos.

Nothing here touches the network: the tokenizer is character-level with a vocabulary written below, and the
models are randomly initialised from small configs of four families (Llama, Qwen2, Gemma, GPT-2). They are
meant for checking plumbing and for miniature experiments, not for quality.

Needs the ``hf`` extra (``transformers`` and ``tokenizers``); importing :mod:`rmreg` does not import this module.

Example:
    >>> from rmreg.testing import tiny_causal_lm, tiny_tokenizer
    >>> tok = tiny_tokenizer()
    >>> lm = tiny_causal_lm("llama", vocab_size=len(tok))
    >>> lm.config.hidden_size
    32
"""

import random
import string
from typing import Any, Literal

import torch

__all__ = [
    "CHAT_TEMPLATE",
    "FAMILIES",
    "SPECIAL_TOKENS",
    "Family",
    "fast_tokenizer",
    "tiny_causal_lm",
    "tiny_tokenizer",
    "toy_pairs",
]

Family = Literal["llama", "qwen2", "gemma", "gpt2"]
FAMILIES: tuple[Family, ...] = ("llama", "qwen2", "gemma", "gpt2")

#: Special tokens, in vocabulary order: ids 0..7.
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
_PAD, _BOS, _EOS, _UNK = 0, 1, 2, 3

#: A minimal chat template: ``<bos><|role|>content<|end|>...`` and ``<|assistant|>`` as generation prompt.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

_CHARACTERS = string.ascii_letters + string.digits + string.punctuation + " \n"


def tiny_tokenizer(*, padding_side: Literal["left", "right"] = "right", chat_template: bool = True):
    """A character-level ``PreTrainedTokenizerFast`` built in code (no files, no network).

    Ids 0..7 are :data:`SPECIAL_TOKENS` (``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3, then the
    chat role markers); every printable ASCII character, space and newline has one id after them. Encoding
    with ``add_special_tokens=True`` prepends ``<bos>``.

    Args:
        padding_side: Side on which the tokenizer pads.
        chat_template: Whether to set :data:`CHAT_TEMPLATE` (a tokenizer without one is useful to test the
            error for conversational data).

    Returns:
        The tokenizer, with pad, bos, eos and unk tokens set.

    Example:
        >>> tok = tiny_tokenizer()
        >>> tok("hi").input_ids
        [1, 15, 16]
        >>> tok.decode([15, 16])
        'hi'
    """
    from tokenizers import Tokenizer, decoders, models

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    vocab.update({char: len(SPECIAL_TOKENS) + i for i, char in enumerate(_CHARACTERS)})
    # A BPE model without merges splits every word into its characters.
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.decoder = decoders.Fuse()
    tokenizer = fast_tokenizer(backend, SPECIAL_TOKENS, padding_side=padding_side)
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def fast_tokenizer(backend: Any, special_tokens: tuple[str, ...], *, padding_side: Literal["left", "right"] = "right"):
    """Wrap a ``tokenizers.Tokenizer`` whose first four ids are ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``.

    Registers ``special_tokens``, prepends ``<bos>`` when encoding with special tokens, and returns a
    ``transformers.PreTrainedTokenizerFast`` with pad, bos, eos and unk set.
    """
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    if tuple(special_tokens[:4]) != ("<pad>", "<bos>", "<eos>", "<unk>"):
        raise ValueError(f"special_tokens must start with <pad>, <bos>, <eos>, <unk>; got {special_tokens[:4]}")
    backend.add_special_tokens(list(special_tokens))
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", _BOS)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        padding_side=padding_side,
    )


def tiny_causal_lm(
    family: Family = "llama",
    *,
    vocab_size: int = len(SPECIAL_TOKENS) + len(_CHARACTERS),
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    tie_word_embeddings: bool | None = None,
    max_positions: int = 512,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    attn_implementation: str | None = None,
):
    """A randomly initialised ``*ForCausalLM`` of the given family, small enough for CPU tests.

    The special-token ids match :func:`tiny_tokenizer` (pad 0, bos 1, eos 2); dropout is off, so train and
    eval mode compute the same function. The global random state is left untouched.

    Args:
        family: ``"llama"``, ``"qwen2"``, ``"gemma"`` or ``"gpt2"``.
        vocab_size: Vocabulary size; the default fits :func:`tiny_tokenizer`.
        hidden_size: Model width (a multiple of ``num_heads``).
        num_layers: Number of decoder layers.
        num_heads: Attention heads (Llama, Qwen2 and Gemma use half as many key/value heads).
        tie_word_embeddings: Tie the LM head to the input embeddings; ``None`` keeps the family's default
            (untied for Llama and Qwen2, tied for Gemma and GPT-2).
        max_positions: Longest sequence the position embeddings cover.
        seed: Seed of the random initialisation.
        dtype: Parameter dtype.
        attn_implementation: ``"eager"``, ``"sdpa"``, ...; ``None`` lets transformers choose.

    Returns:
        The model, in eval mode.

    Example:
        >>> lm = tiny_causal_lm("gpt2", hidden_size=16, num_heads=2)
        >>> type(lm).__name__
        'GPT2LMHeadModel'
    """
    from transformers import AutoModelForCausalLM

    config = _config(family, vocab_size, hidden_size, num_layers, num_heads, max_positions)
    if tie_word_embeddings is not None:
        config.tie_word_embeddings = tie_word_embeddings
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation)
    return model.to(dtype).eval()


def _config(family: str, vocab_size: int, hidden_size: int, num_layers: int, num_heads: int, positions: int):
    from transformers import GemmaConfig, GPT2Config, LlamaConfig, Qwen2Config

    if hidden_size % num_heads:
        raise ValueError(f"hidden_size ({hidden_size}) must be a multiple of num_heads ({num_heads})")
    if family == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size,
            n_embd=hidden_size,
            n_layer=num_layers,
            n_head=num_heads,
            n_positions=positions,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            pad_token_id=_PAD,
            bos_token_id=_BOS,
            eos_token_id=_EOS,
        )
    classes = {"llama": LlamaConfig, "qwen2": Qwen2Config, "gemma": GemmaConfig}
    if family not in classes:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    return classes[family](
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        head_dim=hidden_size // num_heads,
        max_position_embeddings=positions,
        attention_dropout=0.0,
        pad_token_id=_PAD,
        bos_token_id=_BOS,
        eos_token_id=_EOS,
    )


def toy_pairs(num_pairs: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """A trivially learnable preference set: the chosen response is made of vowels, the rejected of consonants.

    For plumbing tests (does training lower the loss, does accuracy rise above chance), not for studies.

    Args:
        num_pairs: number of examples.
        seed: seed of the private random generator.

    Returns:
        Text examples ``{"prompt", "chosen", "rejected", "margin"}`` (margin = length difference + 1).

    Example:
        >>> toy_pairs(1)[0].keys()
        dict_keys(['prompt', 'chosen', 'rejected', 'margin'])
    """
    rng = random.Random(seed)
    consonants = "".join(c for c in string.ascii_lowercase if c not in "aeiou")

    def word(letters: str) -> str:
        return "".join(rng.choice(letters) for _ in range(rng.randint(3, 8)))

    pairs = []
    for _ in range(num_pairs):
        chosen, rejected = word("aeiou"), word(consonants)
        pairs.append(
            {
                "prompt": word(string.ascii_lowercase) + "?",
                "chosen": chosen,
                "rejected": rejected,
                "margin": float(abs(len(chosen) - len(rejected)) + 1),
            }
        )
    return pairs
