"""Encoding: one preference example (text, conversational or pre-tokenized) as token ids.

The ids of a row are the ids TRL's ``RewardTrainer`` builds for it: the *joined* prompt and response are
tokenized as one text (or one conversation), so that a BPE merge across the prompt/response boundary is the
merge the tokenizer makes. The prompt part of a row is the longest common prefix of the joined ids and the ids
of the prompt alone (TRL's ``common_prefix_length`` rule of its DPO and SFT trainers); for a pair, the shorter of
the two rows' prefixes, so that the prompt is shared. Training (:class:`~rmreg.data.PairCollator`), scoring
(:func:`~rmreg.data.collate_texts`, ``score_texts``) and the CLI all tokenize through :func:`encode_text`, so
they see the same ids.

Accepted example formats:

* text: ``{"prompt": str, "chosen": str, "rejected": str}``; without ``prompt`` the whole text is the response.
  Each row is ``tokenizer(prompt + response + eos_token)`` (special tokens such as BOS added, ``eos_token``
  appended unless the response ends with it, as TRL does; ``add_eos=False`` leaves it out). Text is not passed
  through the chat template.
* conversational (TRL style): ``chosen`` and ``rejected`` are lists of ``{"role", "content"}`` messages. With an
  explicit ``prompt`` (a message list) they are the completions, and a row is the chat template's rendering of
  ``prompt + completion``; the prompt alone is rendered with the generation prompt. Without a ``prompt``, the
  prompt is the messages that ``chosen`` and ``rejected`` share at their start (all but the last at most), as
  TRL's ``extract_prompt`` finds it. Optional columns ``tools`` (a list, or its JSON text) and
  ``chat_template_kwargs`` (a mapping) are passed to ``apply_chat_template``, as TRL passes them.
* pre-tokenized: ``{"prompt_ids"?: list[int], "chosen_ids": list[int], "rejected_ids": list[int]}``; the ids of
  the responses are used as given (no EOS added); without ``prompt_ids`` the whole row is the response (as in
  TRL's tokenized ``chosen_ids``/``rejected_ids`` columns, which do not separate the prompt).

Every other column whose value is a number or a bool (``margin``, ``ref_chosen_logps``, a rating, a ``tie``
flag, a column rmreg has never heard of) is kept as a per-pair column under its own name and reaches the
objective's terms unchanged (see :mod:`rmreg.data.collation`). Columns of other types (ids, strings) are left
out.
"""

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "TEXT_COLUMNS",
    "ColumnValue",
    "EncodedPair",
    "Message",
    "common_prefix_length",
    "encode_pair",
    "encode_text",
    "is_messages",
    "mask_column",
    "per_pair_columns",
]

Message = Mapping[str, Any]

TEXT_COLUMNS = frozenset({"prompt", "chosen", "rejected", "prompt_ids", "chosen_ids", "rejected_ids"})
"""Columns that hold the example's text or token ids (every other numeric column is a per-pair column)."""

ColumnValue = float | bool | tuple[float, ...] | tuple[bool, ...]
"""A per-pair column's value for one pair: a number, a flag, or an equal-length list of either (e.g. ratings)."""


@dataclasses.dataclass(frozen=True)
class EncodedPair:
    """One preference pair as token ids: a shared prompt and two responses (response tokens only).

    Attributes:
        prompt_ids: prompt tokens (may be empty).
        chosen_ids: tokens of the chosen response, after the prompt.
        rejected_ids: tokens of the rejected response.
        columns: per-pair values by column name (``margin``, ``ref_chosen_logps``, a tie flag, a list of ratings
            and its mask, ...).
    """

    prompt_ids: tuple[int, ...]
    chosen_ids: tuple[int, ...]
    rejected_ids: tuple[int, ...]
    columns: Mapping[str, ColumnValue] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("chosen_ids", "rejected_ids"):
            if not getattr(self, name):
                raise ValueError(f"{name} is empty: a response needs at least one token")

    @property
    def length(self) -> int:
        """Length of the longer of the two rows."""
        return len(self.prompt_ids) + max(len(self.chosen_ids), len(self.rejected_ids))


def is_messages(value: object) -> bool:
    """Whether ``value`` is a list of ``{"role", ...}`` messages."""
    return isinstance(value, (list, tuple)) and all(isinstance(m, Mapping) and "role" in m for m in value)


def common_prefix_length(ids: Sequence[int], other: Sequence[int]) -> int:
    """Number of leading tokens ``ids`` and ``other`` have in common.

    Example:
        >>> common_prefix_length([1, 5, 9], [1, 5, 7, 2])
        2
    """
    length = 0
    for token, other_token in zip(ids, other, strict=False):
        if token != other_token:
            break
        length += 1
    return length


def _text_ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text)["input_ids"])  # with special tokens, as TRL calls the tokenizer


def _chat_ids(tokenizer: Any, messages: Sequence[Message], options: Mapping[str, Any], *, prompt: bool) -> list[int]:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "conversational examples need a tokenizer with a chat template (tokenizer.chat_template is unset)"
        )
    rendered = tokenizer.apply_chat_template(
        list(messages), tokenize=True, return_dict=True, add_generation_prompt=prompt, **options
    )
    return list(rendered["input_ids"])


def _with_eos(tokenizer: Any, response: str, add_eos: bool) -> str:
    if not add_eos:
        return response
    if tokenizer.eos_token is None:
        raise ValueError("add_eos=True but the tokenizer has no eos_token; set one or pass add_eos=False")
    return response if response.endswith(tokenizer.eos_token) else response + tokenizer.eos_token


def _rows(
    tokenizer: Any,
    prompt: str | Sequence[Message],
    responses: Sequence[str | Sequence[Message]],
    *,
    add_eos: bool,
    chat_template_kwargs: Mapping[str, Any] | None,
) -> tuple[list[int], list[list[int]]]:
    """The prompt's own ids and the joined ids of ``prompt + response`` for each response."""
    if isinstance(prompt, str) and all(isinstance(response, str) for response in responses):
        rows = [_text_ids(tokenizer, prompt + _with_eos(tokenizer, str(response), add_eos)) for response in responses]
        return _text_ids(tokenizer, prompt), rows
    if is_messages(prompt) and all(is_messages(response) for response in responses):
        options = dict(chat_template_kwargs or {})
        rows = [_chat_ids(tokenizer, [*prompt, *response], options, prompt=False) for response in responses]
        if not prompt:  # nothing to render: the whole conversation is the response
            return [], rows
        return _chat_ids(tokenizer, prompt, options, prompt=True), rows  # type: ignore[arg-type]
    kinds = ", ".join(type(part).__name__ for part in (prompt, *responses))
    raise ValueError(
        "prompt and response must both be strings or both be lists of {'role', 'content'} messages (prompt, chosen "
        f"and rejected alike); got {kinds}"
    )


def encode_text(
    tokenizer: Any,
    prompt: str | Sequence[Message],
    response: str | Sequence[Message],
    *,
    add_eos: bool = True,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> tuple[list[int], list[int]]:
    """Token ids of one row, ``prompt + response`` tokenized together, split where the prompt's own ids end.

    The row is ``tokenizer(prompt + response + eos_token)`` for text (``eos_token`` only if ``add_eos`` and the
    response does not end with it) or the chat template's rendering of the messages ``prompt + response``; its
    prompt part is the longest prefix it shares with the prompt's own ids (the prompt alone for text, rendered
    with the generation prompt for messages). See the module docstring.

    Args:
        tokenizer: a Hugging Face tokenizer.
        prompt: prompt text, or the prompt's messages.
        response: response text, or the completion's messages.
        add_eos: append ``eos_token`` to a text response that does not end with it.
        chat_template_kwargs: keyword arguments for ``apply_chat_template`` (e.g. ``tools``).

    Returns:
        ``(prompt_ids, response_ids)``, whose concatenation is the row.

    Example:
        >>> from rmreg.testing import tiny_tokenizer
        >>> encode_text(tiny_tokenizer(), "Q", "A")
        ([1, 50], [34, 2])
    """
    prompt_ids, (row,) = _rows(
        tokenizer, prompt, [response], add_eos=add_eos, chat_template_kwargs=chat_template_kwargs
    )
    split = common_prefix_length(prompt_ids, row)
    return row[:split], row[split:]


def _shared_messages(chosen: Sequence[Message], rejected: Sequence[Message]) -> int:
    """How many messages ``chosen`` and ``rejected`` share at their start (all but the last at most)."""
    shared = common_prefix_length(list(chosen), list(rejected))  # type: ignore[arg-type]
    return min(shared, len(chosen) - 1, len(rejected) - 1)


def _chat_template_kwargs(example: Mapping[str, Any]) -> dict[str, Any]:
    """``tools`` (a list or its JSON text) and ``chat_template_kwargs`` of an example, as TRL reads them."""
    tools = example.get("tools")
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as error:
            raise ValueError(f"the 'tools' column is not valid JSON ({error}): {tools[:80]!r}") from error
    options = {} if tools is None else {"tools": tools}
    extra = example.get("chat_template_kwargs") or {}
    if not isinstance(extra, Mapping):
        raise ValueError(f"the 'chat_template_kwargs' column must hold a mapping, got {type(extra).__name__}")
    return {**options, **extra}


_RATING_MASKS = {"chosen_ratings": "chosen_rating_mask", "rejected_ratings": "rejected_rating_mask"}


def mask_column(name: str) -> str:
    """The name of the mask of list column ``name``: ``NAME_mask``, except the rating columns ``chosen_ratings`` and
    ``rejected_ratings``, whose masks are ``chosen_rating_mask`` and ``rejected_rating_mask`` (what
    :class:`~rmreg.objectives.RatingMSE` and :class:`~rmreg.objectives.OrdinalRating` read).

    Example:
        >>> mask_column("chosen_ratings"), mask_column("scores")
        ('chosen_rating_mask', 'scores_mask')
    """
    return _RATING_MASKS.get(name, f"{name}_mask")


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and (
        isinstance(value, (int, float)) or (hasattr(value, "item") and getattr(value, "ndim", 1) == 0)
    )


def _finite(key: str, value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"column {key!r} is {number}: per-pair values must be finite numbers (None = missing)")
    return number


def _list_column(key: str, values: Sequence[Any]) -> dict[str, ColumnValue] | None:
    """A list of numbers (``None`` = missing: 0 with a False in its mask column) or of flags; else ``None``."""
    if not values:
        return None
    if all(isinstance(v, bool) for v in values):
        return {key: tuple(values)}
    if not all(v is None or _is_number(v) for v in values):
        return None
    numbers = tuple(0.0 if v is None else _finite(key, v) for v in values)
    return {key: numbers, mask_column(key): tuple(v is not None for v in values)}


def _merged_mask(key: str, name: str, missing: Any, given: Any) -> tuple[bool, ...]:
    """A list column's mask: present where the list has a value and the example's own ``name`` column (if any,
    e.g. from an example encoded once already) says so."""
    flags = tuple(given.tolist() if hasattr(given, "tolist") else given)
    if len(flags) != len(missing) or not all(isinstance(flag, bool) for flag in flags):
        raise ValueError(
            f"column {name!r} must be a list of {len(missing)} flags, one per value of {key!r}; got {list(flags)!r}"
        )
    return tuple(a and b for a, b in zip(missing, flags, strict=True))


def per_pair_columns(example: Mapping[str, Any]) -> dict[str, ColumnValue]:
    """The example's per-pair columns: every non-text column holding a number, a bool, or a list of either.

    A scalar ``None`` means the column is absent. A list of numbers (per-attribute ratings, say) may hold ``None``
    for a missing value: it becomes 0, and a bool list column named by :func:`mask_column` (``chosen_ratings`` →
    ``chosen_rating_mask``, else ``NAME_mask``) says which values are there; collated, a list column is a
    ``[pairs, A]`` tensor, every pair's list of the same length A.

    Raises:
        ValueError: a per-pair number that is NaN or infinite, or a mask column that does not fit its list, naming
            the column.

    Example:
        >>> per_pair_columns({"chosen": "a", "rejected": "b", "margin": 2, "tie": False, "id": "x7"})
        {'margin': 2.0, 'tie': False}
        >>> per_pair_columns({"chosen": "a", "rejected": "b", "chosen_ratings": [4, None, 3]})
        {'chosen_ratings': (4.0, 0.0, 3.0), 'chosen_rating_mask': (True, False, True)}
    """
    columns: dict[str, ColumnValue] = {}
    for key, value in example.items():
        if key in TEXT_COLUMNS or value is None or key in columns:  # a mask already merged with its list
            continue
        if isinstance(value, bool):
            columns[key] = value
        elif _is_number(value):
            columns[key] = _finite(key, value)
        elif isinstance(value, (list, tuple)) or (hasattr(value, "tolist") and getattr(value, "ndim", 0) == 1):
            listed = _list_column(key, list(value.tolist() if hasattr(value, "tolist") else value))
            name = mask_column(key)
            if listed is not None and name in listed and example.get(name) is not None:
                listed[name] = _merged_mask(key, name, listed[name], example[name])
            columns.update(listed or {})
    return columns


def encode_pair(tokenizer: Any, example: Mapping[str, Any], *, add_eos: bool = True) -> EncodedPair:
    """Tokenize one preference example (text, conversational or pre-tokenized; see the module docstring).

    Args:
        tokenizer: a Hugging Face tokenizer (unused for pre-tokenized examples).
        example: a mapping with ``chosen``/``rejected`` (text or messages, optional ``prompt``, ``tools`` and
            ``chat_template_kwargs``) or ``chosen_ids``/``rejected_ids`` (optional ``prompt_ids``), and any numeric
            per-pair columns.
        add_eos: append ``eos_token`` to text responses.

    Returns:
        The :class:`EncodedPair`: ``prompt_ids + chosen_ids`` and ``prompt_ids + rejected_ids`` are the rows.

    Raises:
        ValueError: missing columns, mixed formats, a conversational example without chat template, an empty
            response, or a NaN per-pair value.

    Example:
        >>> from rmreg.testing import tiny_tokenizer
        >>> pair = encode_pair(tiny_tokenizer(), {"prompt": "Q", "chosen": "A", "rejected": "B", "margin": 1})
        >>> pair.prompt_ids, pair.chosen_ids, pair.rejected_ids, pair.columns
        ((1, 50), (34, 2), (35, 2), {'margin': 1.0})
    """
    columns = per_pair_columns(example)
    if "chosen_ids" in example and "rejected_ids" in example:
        prompt_ids = list(example.get("prompt_ids") or [])
        return EncodedPair(tuple(prompt_ids), tuple(example["chosen_ids"]), tuple(example["rejected_ids"]), columns)
    if "chosen" not in example or "rejected" not in example:
        raise ValueError(
            "a preference example needs 'chosen' and 'rejected' (text or messages) or 'chosen_ids' and "
            f"'rejected_ids'; got keys {sorted(example)}"
        )
    chosen, rejected, prompt = example["chosen"], example["rejected"], example.get("prompt")
    if prompt is None and is_messages(chosen) and is_messages(rejected):
        shared = _shared_messages(chosen, rejected)
        prompt, chosen, rejected = list(chosen[:shared]), list(chosen[shared:]), list(rejected[shared:])
    elif prompt is None:
        prompt = ""
    prompt_ids, rows = _rows(
        tokenizer, prompt, [chosen, rejected], add_eos=add_eos, chat_template_kwargs=_chat_template_kwargs(example)
    )
    split = min(common_prefix_length(prompt_ids, row) for row in rows)
    chosen_row, rejected_row = rows
    return EncodedPair(tuple(chosen_row[:split]), tuple(chosen_row[split:]), tuple(rejected_row[split:]), columns)
