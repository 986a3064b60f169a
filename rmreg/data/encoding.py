"""Encoding: one preference example (text, conversational or pre-tokenized) as token ids.

Accepted example formats:

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

Every other column whose value is a number or a bool (``margin``, ``ref_chosen_logps``, a rating, a ``tie``
flag, a column rmreg has never heard of) is kept as a per-pair column under its own name and reaches the
objective's terms unchanged (see :mod:`rmreg.data.collation`). Columns of other types (ids, strings) are left
out.
"""

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["TEXT_COLUMNS", "EncodedPair", "Message", "encode_pair", "encode_text", "is_messages", "per_pair_columns"]

Message = Mapping[str, Any]

TEXT_COLUMNS = frozenset({"prompt", "chosen", "rejected", "prompt_ids", "chosen_ids", "rejected_ids"})
"""Columns that hold the example's text or token ids (every other numeric column is a per-pair column)."""


@dataclasses.dataclass(frozen=True)
class EncodedPair:
    """One preference pair as token ids: a shared prompt and two responses (response tokens only).

    Attributes:
        prompt_ids: prompt tokens (may be empty).
        chosen_ids: tokens of the chosen response, after the prompt.
        rejected_ids: tokens of the rejected response.
        columns: per-pair values by column name (``margin``, ``ref_chosen_logps``, a tie flag, ...).
    """

    prompt_ids: tuple[int, ...]
    chosen_ids: tuple[int, ...]
    rejected_ids: tuple[int, ...]
    columns: Mapping[str, float | bool] = dataclasses.field(default_factory=dict)

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
    """Token ids of one prompt and one response, the way :class:`~rmreg.data.PairCollator` builds a row.

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
    if is_messages(prompt) and is_messages(response):
        return _encode_chat(tokenizer, prompt, response)  # type: ignore[arg-type]
    raise ValueError(
        "prompt and response must both be strings or both be lists of {'role', 'content'} messages; got "
        f"{type(prompt).__name__} and {type(response).__name__}"
    )


def per_pair_columns(example: Mapping[str, Any]) -> dict[str, float | bool]:
    """The example's per-pair columns: every non-text column holding a number or a bool (``None`` = absent).

    Raises:
        ValueError: a per-pair number that is NaN or infinite, naming the column.

    Example:
        >>> per_pair_columns({"chosen": "a", "rejected": "b", "margin": 2, "tie": False, "id": "x7"})
        {'margin': 2.0, 'tie': False}
    """
    columns: dict[str, float | bool] = {}
    for key, value in example.items():
        if key in TEXT_COLUMNS or value is None:
            continue
        if isinstance(value, bool):
            columns[key] = value
        elif isinstance(value, (int, float)) or (hasattr(value, "item") and getattr(value, "ndim", 1) == 0):
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(f"column {key!r} is {number}: per-pair values must be finite numbers")
            columns[key] = number
    return columns


def encode_pair(tokenizer: Any, example: Mapping[str, Any], *, add_eos: bool = True) -> EncodedPair:
    """Tokenize one preference example (text, conversational or pre-tokenized; see the module docstring).

    Args:
        tokenizer: a Hugging Face tokenizer (unused for pre-tokenized examples).
        example: a mapping with ``chosen``/``rejected`` (text or messages, optional ``prompt``) or
            ``chosen_ids``/``rejected_ids`` (optional ``prompt_ids``), and any numeric per-pair columns.
        add_eos: append ``eos_token`` to text responses.

    Returns:
        The :class:`EncodedPair`.

    Raises:
        ValueError: missing columns, mixed formats, a conversational example without chat template, an
            implicit prompt that chosen and rejected do not share, an empty response, or a NaN per-pair value.

    Example:
        >>> from rmreg.testing import tiny_tokenizer
        >>> pair = encode_pair(tiny_tokenizer(), {"prompt": "Q", "chosen": "A", "rejected": "B", "margin": 1})
        >>> pair.prompt_ids, pair.chosen_ids, pair.rejected_ids, pair.columns
        ((1, 50), (34, 2), (35, 2), {'margin': 1.0})
    """
    columns = per_pair_columns(example)
    if "chosen_ids" in example and "rejected_ids" in example:
        prompt_ids = list(example.get("prompt_ids") or [])
        chosen, rejected = list(example["chosen_ids"]), list(example["rejected_ids"])
    elif "chosen" in example and "rejected" in example:
        chosen_raw, rejected_raw = example["chosen"], example["rejected"]
        prompt = example.get("prompt")
        if prompt is None and is_messages(chosen_raw):
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
    return EncodedPair(tuple(prompt_ids), tuple(chosen), tuple(rejected), columns)
