"""From checked preference rows to pre-tokenized training examples: tokenized once, checked, truncated up front.

:func:`encode_pairs` tokenizes every row as :class:`~rmreg.data.PairCollator` would, checks every token id
against the model's vocabulary, truncates to ``max_length`` with the collator's policy and counts what it cut (in
a :class:`~rmreg.data.TruncationStats`), so that a training run can say how many pairs lost tokens before it
starts, and the collator has nothing left to truncate. Errors name the file, the line (or row) and the field.

A text far longer than ``max_length`` tokens is cut to its last ``(max_length + 16) × longest token`` characters
before tokenizing: it would lose those characters to truncation anyway (truncation keeps each part's end), and
tokenizing megabytes to throw them away takes minutes. Such a pair counts as truncated.

Example:
    >>> from rmreg.data import TruncationStats
    >>> from rmreg.testing import tiny_tokenizer
    >>> stats = TruncationStats()
    >>> rows = [{"prompt": "Q", "chosen": "A", "rejected": "B"}, {"prompt": "Q" * 9, "chosen": "A", "rejected": "B"}]
    >>> [example["prompt_ids"] for example in encode_pairs(tiny_tokenizer(), rows, max_length=6, stats=stats)]
    [[1, 50], [50, 50, 50, 50]]
    >>> stats
    TruncationStats(pairs=2, truncated=1, responses_cut=0, dropped=0)
"""

from collections.abc import Mapping, Sequence
from typing import Any

from rmreg.data.encoding import EncodedPair, encode_pair
from rmreg.data.files import DataFile, DataFileError
from rmreg.data.rows import RowError, check_pair_row, cut_long_texts
from rmreg.data.truncation import TruncationPolicy, TruncationStats, truncate_pair

__all__ = ["encode_pairs", "longest_token"]

_SLACK_TOKENS = 16


def longest_token(tokenizer: Any) -> int:
    """Characters in the tokenizer's longest token (as stored, which is at least as long as the text it covers)."""
    return max(1, max(map(len, tokenizer.get_vocab()), default=1))


def _check_vocabulary(pair: EncodedPair, vocab_size: int, pre_tokenized: bool) -> None:
    for field, ids in (
        ("prompt_ids", pair.prompt_ids),
        ("chosen_ids", pair.chosen_ids),
        ("rejected_ids", pair.rejected_ids),
    ):
        outside = [token for token in ids if token >= vocab_size]
        if outside:
            cause = "" if pre_tokenized else " after tokenizing (the tokenizer does not match the model)"
            raise RowError(
                field if pre_tokenized else field.removesuffix("_ids"),
                f"token id {outside[0]} is outside the model's vocabulary of {vocab_size}{cause}",
            )


def _check_scorable(pair: EncodedPair) -> None:
    if not pair.prompt_ids and min(len(pair.chosen_ids), len(pair.rejected_ids)) < 2:
        raise RowError(
            "chosen_ids" if len(pair.chosen_ids) < 2 else "rejected_ids",
            "one token and no prompt: the first token of a row is never predicted, so there is nothing to score; "
            "give 'prompt_ids' (e.g. the BOS id) or a longer response",
        )


def _truncate(
    pair: EncodedPair, max_length: int, policy: TruncationPolicy, stats: TruncationStats
) -> EncodedPair | None:
    try:
        shortened = truncate_pair(pair, max_length, policy=policy)
    except ValueError as error:
        raise RowError(None, str(error)) from None
    if shortened is None:
        stats.dropped += 1
    elif shortened is not pair:
        stats.truncated += 1
        stats.responses_cut += int(
            (shortened.chosen_ids, shortened.rejected_ids) != (pair.chosen_ids, pair.rejected_ids)
        )
    return shortened


def encode_pairs(
    tokenizer: Any,
    rows: DataFile | Sequence[Mapping[str, Any]],
    source: str | None = None,
    *,
    max_length: int | None = None,
    truncation: TruncationPolicy = "keep_end",
    vocab_size: int | None = None,
    stats: TruncationStats | None = None,
) -> list[dict[str, Any]]:
    """Tokenize preference rows once, up front, as pre-tokenized examples for :class:`~rmreg.data.PairCollator`.

    Args:
        tokenizer: the model's tokenizer.
        rows: a :class:`~rmreg.data.files.DataFile` from :func:`~rmreg.data.files.read_pairs`, or rows
            (checked here, located as ``row N``).
        source: where the rows came from, for messages (default: the file's path).
        max_length: most tokens per row; ``None`` keeps pairs whole.
        truncation: ``"keep_end"``, ``"drop"`` or ``"error"`` (see :func:`~rmreg.data.truncate_pair`).
        vocab_size: the model's vocabulary size; every token id must be below it.
        stats: counts of truncated and dropped pairs are added to it.

    Returns:
        ``prompt_ids``, ``chosen_ids``, ``rejected_ids`` and the per-pair columns of each kept pair.

    Raises:
        DataFileError: a row that cannot be used (see :mod:`rmreg.data.rows`), a token id outside the vocabulary,
            a response with nothing to score, or (policy ``"error"``) a pair longer than ``max_length``.
    """
    if isinstance(rows, DataFile):
        source, where, rows = source or str(rows.path), rows.where, rows.rows
    else:
        where = [f"row {index}" for index in range(len(rows))]
    stats = TruncationStats() if stats is None else stats
    max_chars = None if max_length is None else (max_length + _SLACK_TOKENS) * longest_token(tokenizer)
    examples = []
    for row, here in zip(rows, where, strict=True):
        try:
            pre_tokenized = check_pair_row(row) == "tokenized"
            if max_chars is not None and not pre_tokenized:
                row = cut_long_texts(row, max_chars)
            try:
                pair = encode_pair(tokenizer, row)
            except (ValueError, TypeError) as error:
                raise RowError(None, str(error)) from None
            if vocab_size is not None:
                _check_vocabulary(pair, vocab_size, pre_tokenized)
            _check_scorable(pair)
            stats.pairs += 1
            kept = pair if max_length is None else _truncate(pair, max_length, truncation, stats)
        except RowError as error:
            raise DataFileError(source or "data", str(error), where=here) from None
        if kept is not None:
            ids = {
                "prompt_ids": list(kept.prompt_ids),
                "chosen_ids": list(kept.chosen_ids),
                "rejected_ids": list(kept.rejected_ids),
            }
            examples.append({**ids, **kept.columns})
    if rows and not examples:
        raise DataFileError(source or "data", f"every pair is longer than max_length={max_length} and was dropped")
    return examples
