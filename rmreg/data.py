"""Pair collation: from preference examples to the batch a reward model trains on.

A preference example holds a prompt and two responses, one chosen and one rejected. Collation turns a list
of them into one batch of ``2·P`` rows, each row ``prompt + response``, with

* ``input_ids`` and ``attention_mask`` ``[2P, T]``, padded on the tokenizer's side (or ``padding_side``);
* ``labels`` ``[2P, T]``: the response's token ids, ``-100`` on prompt tokens and padding, so that the GRM
  regularizers' ``log π(y|x)`` sums over response tokens only (Yang et al., NeurIPS 2024, arXiv 2406.10216);
* optionally ``margin`` ``[P]`` and precomputed reference log-probs ``ref_chosen_logps`` /
  ``ref_rejected_logps`` ``[P]``, when the examples carry them.

Rows are ordered by ``layout``: ``"concat"`` puts the P chosen rows first, then the P rejected rows (TRL's
order); ``"interleaved"`` alternates chosen and rejected (the paper's code). The batch's keys are the keyword
arguments of :meth:`rmreg.RegularizedRewardModel.forward`, so ``model(**batch)`` works.

Accepted example formats (one per batch):

* text: ``{"prompt": str, "chosen": str, "rejected": str}``; without ``prompt`` the whole text is the response.
  The tokenizer's special tokens (e.g. BOS) are added to the prompt and ``eos_token`` is appended to each
  response (``add_eos``). Text is not passed through the chat template.
* conversational (TRL style): ``chosen`` and ``rejected`` are lists of ``{"role", "content"}`` messages. With
  an explicit ``prompt`` (a message list) they are the completions; without one, the prompt is every message
  but the last, which must be the assistant's and the only difference between the two. Rendered with the
  tokenizer's chat template.
* pre-tokenized: ``{"prompt_ids"?: list[int], "chosen_ids": list[int], "rejected_ids": list[int]}``; the
  ids of the responses are used as given (no EOS added); without ``prompt_ids`` the whole row is the response
  (as in TRL's tokenized ``chosen_ids``/``rejected_ids`` columns, which do not separate the prompt).

Any of them may add a float ``margin`` and ``ref_chosen_logps`` / ``ref_rejected_logps``.

Truncation is explicit: with a ``max_length``, policy ``"keep_end"`` shortens the shared prompt from the left
first, then the responses from the left, so that each response keeps its end (and its EOS), where the reward
is read; ``"drop"`` leaves out pairs that do not fit; ``"error"`` raises. :class:`TruncationStats` counts
what happened. A response is never cut away entirely, and a row without any scorable response token is an
error, never silently scored on its prompt.

Example:
    >>> from rmreg.data import PairCollator
    >>> from rmreg.testing import tiny_tokenizer
    >>> collate = PairCollator(tiny_tokenizer(), max_length=16)
    >>> batch = collate([{"prompt": "2+2=", "chosen": "4", "rejected": "5"}])
    >>> batch["input_ids"].shape, batch["labels"][0].tolist()
    (torch.Size([2, 7]), [-100, -100, -100, -100, -100, 64, 2])
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch

from rmreg._typing import Float, Int, Tensor, shape_checked

__all__ = [
    "IGNORE_INDEX",
    "EncodedPair",
    "Layout",
    "PairCollator",
    "TruncationPolicy",
    "TruncationStats",
    "collate_pairs",
    "collate_texts",
    "encode_pair",
    "encode_text",
    "join_pairs",
    "pad_rows",
    "split_pairs",
    "truncate_pair",
]

IGNORE_INDEX = -100
"""Label of tokens that no log-prob is taken of: prompt and padding."""

Layout = Literal["concat", "interleaved"]
TruncationPolicy = Literal["keep_end", "drop", "error"]
PaddingSide = Literal["left", "right"]
_LAYOUTS = ("concat", "interleaved")
_POLICIES = ("keep_end", "drop", "error")
_PER_PAIR_FLOATS = ("margin", "ref_chosen_logps", "ref_rejected_logps")

Message = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class EncodedPair:
    """One preference pair as token ids: a shared prompt and two responses (response tokens only).

    Attributes:
        prompt_ids: prompt tokens (may be empty).
        chosen_ids: tokens of the chosen response, after the prompt.
        rejected_ids: tokens of the rejected response.
        margin: optional per-pair margin for the margin loss.
        ref_chosen_logps: optional precomputed reference log-prob of the chosen response.
        ref_rejected_logps: optional precomputed reference log-prob of the rejected response.
    """

    prompt_ids: tuple[int, ...]
    chosen_ids: tuple[int, ...]
    rejected_ids: tuple[int, ...]
    margin: float | None = None
    ref_chosen_logps: float | None = None
    ref_rejected_logps: float | None = None

    def __post_init__(self) -> None:
        for name in ("chosen_ids", "rejected_ids"):
            if not getattr(self, name):
                raise ValueError(f"{name} is empty: a response needs at least one token")

    @property
    def length(self) -> int:
        """Length of the longer of the two rows."""
        return len(self.prompt_ids) + max(len(self.chosen_ids), len(self.rejected_ids))


@dataclasses.dataclass
class TruncationStats:
    """Running counts of a :class:`PairCollator` (per process; DataLoader workers keep their own copy).

    Attributes:
        pairs: pairs seen.
        truncated: pairs kept but shortened to ``max_length``.
        responses_cut: of those, pairs where a response (not only the prompt) lost tokens at its start.
        dropped: pairs left out (policy ``"drop"``).
    """

    pairs: int = 0
    truncated: int = 0
    responses_cut: int = 0
    dropped: int = 0


def _check_choice(name: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def _is_messages(value: object) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(m, Mapping) and "role" in m for m in value)


def _ids(tokenizer: Any, text: str, *, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def _encode_text(tokenizer: Any, prompt: str, response: str, add_eos: bool) -> tuple[list[int], list[int]]:
    prompt_ids = _ids(tokenizer, prompt, special=True)
    response_ids = _ids(tokenizer, response, special=False)
    if add_eos:
        if tokenizer.eos_token_id is None:
            raise ValueError("add_eos=True but the tokenizer has no eos_token; set one or pass add_eos=False")
        if not response_ids or response_ids[-1] != tokenizer.eos_token_id:
            response_ids.append(tokenizer.eos_token_id)
    return prompt_ids, response_ids


def _encode_chat(
    tokenizer: Any, prompt: Sequence[Message], completion: Sequence[Message]
) -> tuple[list[int], list[int]]:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "conversational examples need a tokenizer with a chat template (tokenizer.chat_template is unset)"
        )
    prompt_text = tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template([*prompt, *completion], tokenize=False)
    if not full_text.startswith(prompt_text):
        raise ValueError(
            "the chat template does not render the prompt (with generation prompt) as a prefix of the "
            "conversation, so the response tokens cannot be told apart"
        )
    return _ids(tokenizer, prompt_text, special=False), _ids(tokenizer, full_text[len(prompt_text) :], special=False)


def _implicit_prompt(chosen: Sequence[Message], rejected: Sequence[Message]) -> list[Message]:
    if not chosen or not rejected or chosen[-1].get("role") != "assistant" or rejected[-1].get("role") != "assistant":
        raise ValueError("without a 'prompt', chosen and rejected must each end with an assistant message")
    if list(chosen[:-1]) != list(rejected[:-1]):
        raise ValueError(
            "without a 'prompt', chosen and rejected must share every message but the last; "
            "pass an explicit 'prompt' column"
        )
    return list(chosen[:-1])


def encode_text(
    tokenizer: Any, prompt: str | Sequence[Message], response: str | Sequence[Message], *, add_eos: bool = True
) -> tuple[list[int], list[int]]:
    """Token ids of one prompt and one response, the way :class:`PairCollator` builds a row.

    Text is tokenized as two parts (the prompt with the tokenizer's special tokens, the response without, plus
    ``eos_token`` if ``add_eos``); message lists are rendered with the chat template and split where the
    prompt (with its generation prompt) ends.

    Args:
        tokenizer: a Hugging Face tokenizer.
        prompt: prompt text, or the prompt's messages.
        response: response text, or the completion's messages.
        add_eos: append ``eos_token`` to a text response that does not end with it.

    Returns:
        ``(prompt_ids, response_ids)``.

    Example:
        >>> from rmreg.testing import tiny_tokenizer
        >>> encode_text(tiny_tokenizer(), "Q", "A")
        ([1, 50], [34, 2])
    """
    if isinstance(prompt, str) and isinstance(response, str):
        return _encode_text(tokenizer, prompt, response, add_eos)
    if _is_messages(prompt) and _is_messages(response):
        return _encode_chat(tokenizer, prompt, response)  # type: ignore[arg-type]
    raise ValueError(
        "prompt and response must both be strings or both be lists of {'role', 'content'} messages; got "
        f"{type(prompt).__name__} and {type(response).__name__}"
    )


def _optional_float(example: Mapping[str, Any], key: str) -> float | None:
    value = example.get(key)
    return None if value is None else float(value)


def encode_pair(tokenizer: Any, example: Mapping[str, Any], *, add_eos: bool = True) -> EncodedPair:
    """Tokenize one preference example (text, conversational or pre-tokenized; see the module docstring).

    Args:
        tokenizer: a Hugging Face tokenizer (unused for pre-tokenized examples).
        example: a mapping with ``chosen``/``rejected`` (text or messages, optional ``prompt``) or
            ``chosen_ids``/``rejected_ids`` (optional ``prompt_ids``), optional ``margin``,
            ``ref_chosen_logps``, ``ref_rejected_logps``.
        add_eos: append ``eos_token`` to text responses.

    Returns:
        The :class:`EncodedPair`.

    Raises:
        ValueError: missing columns, mixed formats, a conversational example without chat template, an
            implicit prompt that chosen and rejected do not share, or an empty response.

    Example:
        >>> from rmreg.testing import tiny_tokenizer
        >>> pair = encode_pair(tiny_tokenizer(), {"prompt": "Q", "chosen": "A", "rejected": "B", "margin": 1})
        >>> pair.prompt_ids, pair.chosen_ids, pair.rejected_ids, pair.margin
        ((1, 50), (34, 2), (35, 2), 1.0)
    """
    extras = {key: _optional_float(example, key) for key in _PER_PAIR_FLOATS}
    if "chosen_ids" in example and "rejected_ids" in example:
        prompt_ids = list(example.get("prompt_ids") or [])
        chosen, rejected = list(example["chosen_ids"]), list(example["rejected_ids"])
    elif "chosen" in example and "rejected" in example:
        chosen_raw, rejected_raw = example["chosen"], example["rejected"]
        prompt = example.get("prompt")
        if prompt is None and _is_messages(chosen_raw):
            prompt = _implicit_prompt(chosen_raw, rejected_raw)
            chosen_raw, rejected_raw = chosen_raw[-1:], rejected_raw[-1:]
        elif prompt is None:
            prompt = ""
        prompt_ids, chosen = encode_text(tokenizer, prompt, chosen_raw, add_eos=add_eos)
        _, rejected = encode_text(tokenizer, prompt, rejected_raw, add_eos=add_eos)
    else:
        raise ValueError(
            "a preference example needs 'chosen' and 'rejected' (text or messages) or 'chosen_ids' and "
            f"'rejected_ids'; got keys {sorted(example)}"
        )
    return EncodedPair(tuple(prompt_ids), tuple(chosen), tuple(rejected), **extras)


def truncate_pair(pair: EncodedPair, max_length: int, *, policy: TruncationPolicy = "keep_end") -> EncodedPair | None:
    """Fit both rows of a pair into ``max_length`` tokens.

    ``"keep_end"``: cut the shared prompt from the left (keeping at least its last token, so that the first
    response token stays scorable), then cut each response that is still too long from the left, so that it
    keeps its end (with EOS), where the reward is read. ``"drop"``: return ``None`` if a row is too long.
    ``"error"``: raise if a row is too long.

    Args:
        pair: the pair.
        max_length: most tokens per row (≥ 2).
        policy: ``"keep_end"``, ``"drop"`` or ``"error"``.

    Returns:
        The pair (unchanged if it fits), shortened, or ``None`` (dropped).

    Example:
        >>> pair = EncodedPair((1, 2, 3, 4), (5, 6, 7), (8, 9))
        >>> truncate_pair(pair, 5)
        EncodedPair(prompt_ids=(3, 4), chosen_ids=(5, 6, 7), rejected_ids=(8, 9), margin=None, ...)
    """
    _check_choice("truncation policy", policy, _POLICIES)
    if max_length < 2:
        raise ValueError(
            f"max_length must be at least 2 (a prompt or first token and one response token); got {max_length}"
        )
    if pair.length <= max_length:
        return pair
    if policy == "drop":
        return None
    if policy == "error":
        raise ValueError(
            f"a pair needs {pair.length} tokens, more than max_length={max_length}; raise max_length or use "
            "truncation='keep_end' or 'drop'"
        )
    longest = max(len(pair.chosen_ids), len(pair.rejected_ids))
    prompt_keep = min(len(pair.prompt_ids), max(max_length - longest, min(1, len(pair.prompt_ids))))
    response_keep = max_length - prompt_keep
    return dataclasses.replace(
        pair,
        prompt_ids=pair.prompt_ids[len(pair.prompt_ids) - prompt_keep :],
        chosen_ids=pair.chosen_ids[-response_keep:],
        rejected_ids=pair.rejected_ids[-response_keep:],
    )


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
    _check_choice("padding_side", padding_side, ("left", "right"))
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


def _pair_order(num_pairs: int, layout: Layout) -> tuple[Tensor, Tensor]:
    """Row indices of the chosen and of the rejected rows."""
    _check_choice("layout", layout, _LAYOUTS)
    pairs = torch.arange(num_pairs)
    if layout == "concat":
        return pairs, pairs + num_pairs
    return 2 * pairs, 2 * pairs + 1


@shape_checked
def split_pairs(rows: Tensor, layout: Layout = "concat") -> tuple[Tensor, Tensor]:
    """Split a batch of ``2·P`` rows (along dim 0) into its chosen and rejected halves, each ``[P, ...]``.

    Example:
        >>> import torch
        >>> split_pairs(torch.tensor([10, 11, 20, 21]), "interleaved")
        (tensor([10, 20]), tensor([11, 21]))
    """
    if rows.shape[0] % 2:
        raise ValueError(f"a batch of pairs needs an even number of rows (chosen and rejected); got {rows.shape[0]}")
    chosen, rejected = _pair_order(rows.shape[0] // 2, layout)
    return rows[chosen.to(rows.device)], rows[rejected.to(rows.device)]


@shape_checked
def join_pairs(chosen: Tensor, rejected: Tensor, layout: Layout = "concat") -> Tensor:
    """Inverse of :func:`split_pairs`: ``2·P`` rows from ``P`` chosen and ``P`` rejected rows.

    Example:
        >>> import torch
        >>> join_pairs(torch.tensor([10, 20]), torch.tensor([11, 21]), "interleaved")
        tensor([10, 11, 20, 21])
    """
    if chosen.shape != rejected.shape:
        raise ValueError(f"chosen {tuple(chosen.shape)} and rejected {tuple(rejected.shape)} differ in shape")
    _check_choice("layout", layout, _LAYOUTS)
    if layout == "concat":
        return torch.cat([chosen, rejected])
    return torch.stack([chosen, rejected], dim=1).flatten(0, 1)


def _per_pair_column(pairs: Sequence[EncodedPair], key: str) -> Float[Tensor, " pairs"] | None:
    values = [getattr(pair, key) for pair in pairs]
    if all(value is None for value in values):
        return None
    if any(value is None for value in values):
        raise ValueError(f"{key!r} is given for some pairs of the batch but not for others")
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
        ``input_ids``, ``attention_mask``, ``labels`` ``[2P, T]``, and ``margin``, ``ref_chosen_logps``,
        ``ref_rejected_logps`` ``[P]`` (float32) for those the pairs carry.

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
    chosen_index, rejected_index = _pair_order(len(pairs), layout)
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
    for key in _PER_PAIR_FLOATS:
        column = _per_pair_column(pairs, key)
        if column is not None:
            batch[key] = column
    return batch


def _check_tokenizer(tokenizer: Any) -> None:
    if getattr(tokenizer, "pad_token_id", None) is None:
        raise ValueError(
            "the tokenizer has no pad token; set one first, e.g. tokenizer.pad_token = tokenizer.eos_token "
            "(padding is masked, so any id works; a dedicated one keeps exported classifiers exact)"
        )


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
        _check_tokenizer(tokenizer)
        _check_choice("truncation", truncation, _POLICIES)
        _check_choice("layout", layout, _LAYOUTS)
        padding_side = padding_side or tokenizer.padding_side
        _check_choice("padding_side", padding_side, ("left", "right"))
        if max_length is not None and max_length < 2:
            raise ValueError(f"max_length must be at least 2 or None; got {max_length}")
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
    _check_tokenizer(tokenizer)
    rows = []
    for item in items:
        if isinstance(item, str):
            prompt, response = "", item
        elif isinstance(item, tuple):
            prompt, response = item
        elif _is_messages(item) and item:
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
