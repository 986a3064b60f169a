"""The task's word-level tokenizer, built in code: one token per word of :data:`rmreg.task.synthetic.WORDS`.

Ids 0..3 are ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>`` (the special-token ids of
:func:`rmreg.testing.tiny_causal_lm`); encoding with ``add_special_tokens=True`` prepends ``<bos>``. Text is
split on whitespace, so the task's text (words separated by single spaces) round-trips exactly.
"""

from typing import Literal

from rmreg.task.synthetic import WORDS
from rmreg.testing import fast_tokenizer

__all__ = ["SPECIAL_TOKENS", "task_tokenizer"]

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")


def task_tokenizer(*, padding_side: Literal["left", "right"] = "right"):
    """A ``PreTrainedTokenizerFast`` over the task's words (no files, no network).

    Args:
        padding_side: side on which the tokenizer pads.

    Returns:
        The tokenizer, with pad, bos, eos and unk tokens set.

    Example:
        >>> tok = task_tokenizer()
        >>> ids = tok("user : describe moon . assistant :").input_ids
        >>> ids[0] == tok.bos_token_id, tok.decode(ids, skip_special_tokens=True)
        (True, 'user : describe moon . assistant :')
    """
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *WORDS))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return fast_tokenizer(backend, SPECIAL_TOKENS, padding_side=padding_side)
