"""Collation of ranked groups: K ≥ 2 completions of one prompt, best first, as one batch of rows.

Every completion of every group is one row (``prompt + completion``), so the backbone runs once over the real
completions only, never over padding up to the largest K. Two ``[groups, K]`` tensors tell the model where each
group's completions sit: ``group_index`` (the row of each slot, ``-1`` on empty slots) and ``group_mask`` (True where
a slot holds a completion). ``K`` is the largest group of the batch; groups may differ in size. The model reads the
groups' rewards as ``group_rewards`` ``[groups, K]`` for the ranking terms (:mod:`rmreg.objectives.rankings`) and the
best and worst completion of each group as ``chosen_*`` and ``rejected_*``, so pair terms (GRM's SFT regularizer
on the best completion) apply unchanged.

Example:
    >>> from rmreg.data.group_collation import GroupCollator
    >>> from rmreg.testing import tiny_tokenizer
    >>> collate = GroupCollator(tiny_tokenizer())
    >>> batch = collate([{"prompt": "Q", "completions": ["a", "b", "c"], "scores": [1.0, 3.0, 2.0]},
    ...                  {"prompt": "R", "completions": ["x", "y"], "ranking": [1, 0]}])
    >>> batch["group_index"].tolist(), batch["group_mask"].tolist()
    ([[0, 1, 2], [3, 4, -1]], [[True, True, True], [True, True, False]])
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from rmreg._typing import Tensor
from rmreg.data.collation import PaddingSide, check_collator_options, pad_rows
from rmreg.data.encoding import encode_text
from rmreg.data.rankings import RankedExample, parse_ranked

__all__ = ["GroupCollator", "GroupTruncationStats", "collate_groups"]


@dataclasses.dataclass
class GroupTruncationStats:
    """Running counts of a :class:`GroupCollator`: groups seen, and rows shortened to ``max_length``."""

    groups: int = 0
    rows: int = 0
    truncated_rows: int = 0


def collate_groups(
    rows: Sequence[tuple[list[int], list[int]]],
    sizes: Sequence[int],
    *,
    pad_token_id: int,
    padding_side: PaddingSide = "right",
) -> dict[str, Tensor]:
    """The batch of encoded groups: ``rows`` are ``(prompt_ids, completion_ids)``, group by group, best first.

    Returns:
        ``input_ids``, ``attention_mask``, ``labels`` ``[rows, T]``, ``group_index`` ``[groups, K]`` (int64, -1 on
        empty slots) and ``group_mask`` ``[groups, K]`` (bool).
    """
    if not sizes or min(sizes) < 2:
        raise ValueError(f"every group needs at least 2 completions; got group sizes {list(sizes)}")
    if sum(sizes) != len(rows):
        raise ValueError(f"group sizes {list(sizes)} do not add up to the {len(rows)} rows")
    batch = pad_rows(
        [prompt + completion for prompt, completion in rows],
        [len(prompt) for prompt, _ in rows],
        pad_token_id=pad_token_id,
        padding_side=padding_side,
    )
    width = max(sizes)
    index = torch.full((len(sizes), width), -1, dtype=torch.long)
    start = 0
    for group, size in enumerate(sizes):
        index[group, :size] = torch.arange(start, start + size)
        start += size
    return {**batch, "group_index": index, "group_mask": index >= 0}


class GroupCollator:
    """Collate ranked examples into one batch of groups (a ``DataLoader`` ``collate_fn``).

    Examples are ranked rows in any format :func:`rmreg.data.parse_ranked` reads (``completions`` with ``ranking``
    or ``scores``, or RewardBench 2's ``chosen``/``rejected`` lists), or :class:`~rmreg.data.RankedExample`\\ s.
    Completions are tokenized as :class:`~rmreg.data.PairCollator` tokenizes a response (text or conversational).

    Args:
        tokenizer: a Hugging Face tokenizer with a pad token.
        max_length: most tokens per row; a longer row keeps its last ``max_length`` tokens (its end, where the
            reward is read), its prompt shortened first. ``None`` keeps rows whole.
        padding_side: ``"left"`` or ``"right"``; ``None`` follows the tokenizer.
        add_eos: append ``eos_token`` to text completions.

    Attributes:
        stats: :class:`GroupTruncationStats` over every call so far.
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        max_length: int | None = None,
        padding_side: PaddingSide | None = None,
        add_eos: bool = True,
    ) -> None:
        padding_side = check_collator_options(tokenizer, padding_side, max_length)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.padding_side: PaddingSide = padding_side
        self.add_eos = add_eos
        self.stats = GroupTruncationStats()

    def _row(self, prompt: Any, completion: Any) -> tuple[list[int], list[int]]:
        prompt_ids, completion_ids = encode_text(self.tokenizer, prompt or "", completion, add_eos=self.add_eos)
        self.stats.rows += 1
        if self.max_length is not None and len(prompt_ids) + len(completion_ids) > self.max_length:
            self.stats.truncated_rows += 1
            completion_ids = completion_ids[-(self.max_length - min(1, len(prompt_ids))) :]
            prompt_ids = prompt_ids[len(prompt_ids) - (self.max_length - len(completion_ids)) :]
        if not prompt_ids and len(completion_ids) < 2:
            raise ValueError("a one-token completion with no prompt before it has no scorable token; give a prompt")
        return prompt_ids, completion_ids

    def __call__(self, examples: Sequence[Mapping[str, Any] | RankedExample]) -> dict[str, Tensor]:
        """The batch of ``examples``: rows, ``labels``, ``group_index`` and ``group_mask``."""
        if not examples:
            raise ValueError("cannot collate an empty list of groups")
        rows, sizes = [], []
        for i, example in enumerate(examples):
            ranked = example if isinstance(example, RankedExample) else parse_ranked(example, index=i)
            rows += [self._row(ranked.prompt, completion) for completion in ranked.completions]
            sizes.append(len(ranked.completions))
            self.stats.groups += 1
        return collate_groups(rows, sizes, pad_token_id=self.tokenizer.pad_token_id, padding_side=self.padding_side)
