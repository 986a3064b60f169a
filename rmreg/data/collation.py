"""Collation: from preference examples to the batch a reward model trains on.

A list of preference examples becomes one batch of ``2·P`` rows, each row ``prompt + response``, with

* ``input_ids`` and ``attention_mask`` ``[2P, T]``, padded on the tokenizer's side (or ``padding_side``);
* ``labels`` ``[2P, T]``: the response's token ids, ``-100`` on prompt tokens and padding, so that the GRM
  regularizers' ``log π(y|x)`` sums over response tokens only (Yang et al., NeurIPS 2024, arXiv 2406.10216);
* every per-pair column the examples carry (``margin``, ``ref_chosen_logps``, a ``tie`` flag, a rating, ...),
  ``[P]``, under its own name: float32 for numbers, bool for flags.

Rows are ordered by ``layout`` (see :mod:`rmreg.data.layout`). The batch's keys are keyword arguments of
:meth:`rmreg.RegularizedRewardModel.forward`, so ``model(**batch)`` works, and per-pair columns reach the
objective's terms by name. Value checks (empty responses, rows without a scorable token, NaN per-pair values)
happen here, once per batch on the CPU, so the model's forward pass need not read the device to make them.

Example:
    >>> from rmreg.data import PairCollator
    >>> from rmreg.testing import tiny_tokenizer
    >>> collate = PairCollator(tiny_tokenizer(), max_length=16)
    >>> batch = collate([{"prompt": "2+2=", "chosen": "4", "rejected": "5"}])
    >>> batch["input_ids"].shape, batch["labels"][0].tolist()
    (torch.Size([2, 7]), [-100, -100, -100, -100, -100, 64, 2])
"""

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch

from rmreg._typing import Int, Tensor
from rmreg.data.encoding import EncodedPair, Message, encode_pair, encode_text, is_messages
from rmreg.data.layout import IGNORE_INDEX, LAYOUTS, Layout, check_choice, pair_order
from rmreg.data.truncation import POLICIES, TruncationPolicy, TruncationStats, truncate_pair

__all__ = ["PaddingSide", "PairCollator", "collate_pairs", "collate_texts", "pad_rows"]

PaddingSide = Literal["left", "right"]


def pad_rows(
    rows: Sequence[Sequence[int]],
    prompt_lengths: Sequence[int],
    *,
    pad_token_id: int,
    padding_side: PaddingSide = "right",
    pad_to_multiple_of: int | None = None,
) -> dict[str, Tensor]:
    """Pad token rows into ``input_ids``, ``attention_mask`` and ``labels`` (``-100`` on prompt and padding).

    Args:
        rows: token ids of each row (prompt then response).
        prompt_lengths: number of prompt tokens at the start of each row.
        pad_token_id: id written into padding positions (masked by ``attention_mask``).
        padding_side: ``"right"`` or ``"left"``.
        pad_to_multiple_of: round the padded length up to a multiple of this.

    Returns:
        ``{"input_ids", "attention_mask", "labels"}``, each int64 ``[rows, T]``.

    Example:
        >>> pad_rows([[1, 2, 3], [1, 4]], [1, 1], pad_token_id=0, padding_side="left")["labels"].tolist()
        [[-100, 2, 3], [-100, -100, 4]]
    """
    check_choice("padding_side", padding_side, ("left", "right"))
    if len(rows) != len(prompt_lengths):
        raise ValueError(f"got {len(rows)} rows but {len(prompt_lengths)} prompt lengths")
    width = max(map(len, rows), default=0)
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, (row, prompt_length) in enumerate(zip(rows, prompt_lengths, strict=True)):
        start = 0 if padding_side == "right" else width - len(row)
        span = slice(start, start + len(row))
        input_ids[i, span] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, span] = 1
        labels[i, start + prompt_length : start + len(row)] = input_ids[i, start + prompt_length : start + len(row)]
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _per_pair_column(pairs: Sequence[EncodedPair], key: str) -> Tensor:
    """``[P]`` for numbers or flags, ``[P, A]`` for lists of A numbers or flags; float32 or bool."""
    values = [pair.columns.get(key) for pair in pairs]
    if any(value is None for value in values):
        raise ValueError(f"column {key!r} is given for some pairs of the batch but not for others")
    lengths = {len(value) if isinstance(value, tuple) else None for value in values}
    if len(lengths) > 1:
        shown = sorted(lengths, key=lambda n: -1 if n is None else n)
        raise ValueError(
            f"column {key!r} holds lists of different lengths (or lists and single values) in one batch: "
            f"{['a single value' if n is None else f'{n} values' for n in shown]}; every pair needs the same number"
        )
    flat = [v for value in values for v in (value if isinstance(value, tuple) else (value,))]
    if all(isinstance(v, bool) for v in flat):
        return torch.tensor(values, dtype=torch.bool)
    if any(isinstance(v, bool) for v in flat):
        raise ValueError(f"column {key!r} mixes flags (True/False) and numbers")
    return torch.tensor(values, dtype=torch.float32)


def collate_pairs(
    pairs: Sequence[EncodedPair],
    *,
    pad_token_id: int,
    layout: Layout = "concat",
    padding_side: PaddingSide = "right",
    pad_to_multiple_of: int | None = None,
) -> dict[str, Tensor]:
    """Build the model's batch from encoded (and already truncated) pairs.

    Args:
        pairs: the pairs, P ≥ 1.
        pad_token_id: id of padding tokens.
        layout: ``"concat"`` (chosen rows, then rejected rows) or ``"interleaved"``.
        padding_side: ``"right"`` or ``"left"``.
        pad_to_multiple_of: round the padded length up to a multiple of this.

    Returns:
        ``input_ids``, ``attention_mask``, ``labels`` ``[2P, T]``, and each per-pair column the pairs carry,
        ``[P]`` (float32, or bool for flags).

    Raises:
        ValueError: no pairs, a per-pair value given for only some pairs, or a row whose response has no
            scorable token (a one-token response with no prompt before it).

    Example:
        >>> batch = collate_pairs([EncodedPair((1,), (5, 2), (6, 7, 2))], pad_token_id=0, layout="interleaved")
        >>> batch["input_ids"].tolist()
        [[1, 5, 2, 0], [1, 6, 7, 2]]
    """
    if not pairs:
        raise ValueError("cannot collate an empty list of pairs")
    for pair in pairs:
        if not pair.prompt_ids and min(len(pair.chosen_ids), len(pair.rejected_ids)) < 2:
            raise ValueError(
                "a response of one token with no prompt before it has no scorable token (the first token of a "
                "row is never predicted); give the pair a prompt (e.g. BOS) or a longer response"
            )
    chosen_rows = [[*pair.prompt_ids, *pair.chosen_ids] for pair in pairs]
    rejected_rows = [[*pair.prompt_ids, *pair.rejected_ids] for pair in pairs]
    chosen_index, rejected_index = pair_order(len(pairs), layout)
    rows: list[list[int]] = [[] for _ in range(2 * len(pairs))]
    prompt_lengths = [0] * (2 * len(pairs))
    for i, pair in enumerate(pairs):
        rows[int(chosen_index[i])], rows[int(rejected_index[i])] = chosen_rows[i], rejected_rows[i]
        prompt_lengths[int(chosen_index[i])] = prompt_lengths[int(rejected_index[i])] = len(pair.prompt_ids)
    batch = pad_rows(
        rows,
        prompt_lengths,
        pad_token_id=pad_token_id,
        padding_side=padding_side,
        pad_to_multiple_of=pad_to_multiple_of,
    )
    for key in sorted({key for pair in pairs for key in pair.columns}):
        batch[key] = _per_pair_column(pairs, key)
    return batch


def check_tokenizer(tokenizer: Any) -> None:
    if getattr(tokenizer, "pad_token_id", None) is None:
        raise ValueError(
            "the tokenizer has no pad token; set one first, e.g. tokenizer.pad_token = tokenizer.eos_token "
            "(padding is masked, so any id works; a dedicated one keeps exported classifiers exact)"
        )


def check_collator_options(tokenizer: Any, padding_side: str | None, max_length: int | None) -> PaddingSide:
    """Check a collator's tokenizer, padding side (``None``: the tokenizer's) and ``max_length``; the padding side."""
    check_tokenizer(tokenizer)
    padding_side = padding_side or tokenizer.padding_side
    check_choice("padding_side", padding_side, ("left", "right"))
    if max_length is not None and max_length < 2:
        raise ValueError(f"max_length must be at least 2 or None; got {max_length}")
    return padding_side  # type: ignore[return-value]


class PairCollator:
    """Collate preference examples into a reward-model batch (a ``DataLoader`` ``collate_fn``).

    See the module docstring for the formats, the labels and the layouts.

    Args:
        tokenizer: a Hugging Face tokenizer with a pad token (and a chat template for conversational data).
        max_length: most tokens per row; ``None`` keeps rows whole.
        truncation: what to do with a pair longer than ``max_length``: ``"keep_end"`` (default), ``"drop"``
            or ``"error"`` (see :func:`truncate_pair`).
        layout: ``"concat"`` (TRL's order) or ``"interleaved"`` (the paper's code); must match the model's.
        padding_side: ``"left"`` or ``"right"``; ``None`` follows ``tokenizer.padding_side``.
        add_eos: append ``eos_token`` to text responses.
        pad_to_multiple_of: round the padded length up to a multiple of this.

    Attributes:
        stats: :class:`TruncationStats` over every call so far.

    Raises:
        ValueError: a tokenizer without pad token, or an unknown option. When every pair of a batch is
            dropped, the call raises (filter the dataset with :meth:`fits` beforehand to avoid it).

    Example:
        >>> from rmreg.testing import tiny_tokenizer
        >>> collate = PairCollator(tiny_tokenizer(), max_length=4, truncation="drop")
        >>> batch = collate([{"chosen": "ab", "rejected": "c"}, {"chosen": "abcdef", "rejected": "x"}])
        >>> batch["input_ids"].shape[0], collate.stats
        (2, TruncationStats(pairs=2, truncated=0, responses_cut=0, dropped=1))
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        max_length: int | None = None,
        truncation: TruncationPolicy = "keep_end",
        layout: Layout = "concat",
        padding_side: PaddingSide | None = None,
        add_eos: bool = True,
        pad_to_multiple_of: int | None = None,
    ) -> None:
        check_choice("truncation", truncation, POLICIES)
        check_choice("layout", layout, LAYOUTS)
        padding_side = check_collator_options(tokenizer, padding_side, max_length)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.truncation: TruncationPolicy = truncation
        self.layout: Layout = layout
        self.padding_side: PaddingSide = padding_side
        self.add_eos = add_eos
        self.pad_to_multiple_of = pad_to_multiple_of
        self.stats = TruncationStats()

    def encode(self, example: Mapping[str, Any]) -> EncodedPair:
        """Tokenize one example, without truncating it (see :func:`encode_pair`)."""
        return encode_pair(self.tokenizer, example, add_eos=self.add_eos)

    def fits(self, example: Mapping[str, Any]) -> bool:
        """Whether both rows of ``example`` fit ``max_length`` untruncated (for ``dataset.filter``)."""
        return self.max_length is None or self.encode(example).length <= self.max_length

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Tensor]:
        """The batch of ``examples``: ``input_ids``, ``attention_mask``, ``labels`` and any per-pair columns."""
        kept = []
        for example in examples:
            pair = self.encode(example)
            self.stats.pairs += 1
            if self.max_length is not None:
                shortened = truncate_pair(pair, self.max_length, policy=self.truncation)
                if shortened is None:
                    self.stats.dropped += 1
                    continue
                if shortened is not pair:
                    self.stats.truncated += 1
                    cut = (shortened.chosen_ids, shortened.rejected_ids) != (pair.chosen_ids, pair.rejected_ids)
                    self.stats.responses_cut += int(cut)
                pair = shortened
            kept.append(pair)
        if not kept:
            raise ValueError(
                f"every pair of this batch is longer than max_length={self.max_length} and was dropped; filter "
                "the dataset with PairCollator.fits first"
            )
        return collate_pairs(
            kept,
            pad_token_id=self.tokenizer.pad_token_id,
            layout=self.layout,
            padding_side=self.padding_side,
            pad_to_multiple_of=self.pad_to_multiple_of,
        )


def collate_texts(
    tokenizer: Any,
    items: Sequence[str | tuple[Any, Any] | Sequence[Message]],
    *,
    max_length: int | None = None,
    padding_side: PaddingSide | None = None,
    add_eos: bool = True,
) -> dict[str, Int[Tensor, "rows seq"]]:
    """Rows to score, tokenized exactly as :class:`PairCollator` tokenizes a training row.

    Args:
        tokenizer: a Hugging Face tokenizer with a pad token.
        items: each a response text (empty prompt), a ``(prompt, response)`` tuple of texts or of message
            lists, or a conversation (message list whose last message is the scored response).
        max_length: keep at most the last ``max_length`` tokens of each row (its end is where the reward is read).
        padding_side: ``"left"`` or ``"right"``; ``None`` follows the tokenizer.
        add_eos: append ``eos_token`` to text responses.

    Returns:
        ``{"input_ids", "attention_mask"}``, int64 ``[rows, T]``.

    Example:
        >>> from rmreg.testing import tiny_tokenizer
        >>> collate_texts(tiny_tokenizer(), [("Q", "A"), "B"])["input_ids"].tolist()
        [[1, 50, 34, 2], [1, 35, 2, 0]]
    """
    check_tokenizer(tokenizer)
    rows = []
    prompt: Any
    response: Any
    for item in items:
        if isinstance(item, str):
            prompt, response = "", item
        elif isinstance(item, tuple):
            prompt, response = item
        elif is_messages(item) and item:
            prompt, response = list(item[:-1]), list(item[-1:])
        else:
            raise ValueError(f"cannot score {type(item).__name__}: pass text, (prompt, response) or messages")
        prompt_ids, response_ids = encode_text(tokenizer, prompt, response, add_eos=add_eos)
        row = prompt_ids + response_ids
        rows.append(row[-max_length:] if max_length else row)
    batch = pad_rows(
        rows, [0] * len(rows), pad_token_id=tokenizer.pad_token_id, padding_side=padding_side or tokenizer.padding_side
    )
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
