"""Truncation: fit a pair into ``max_length`` tokens, explicitly, and count what happened.

Policy ``"keep_end"`` shortens the shared prompt from the left first, then the responses from the left, so
that each response keeps its end (and its EOS), where the reward is read; ``"drop"`` leaves out pairs that do
not fit; ``"error"`` raises. A response is never cut away entirely.
"""

import dataclasses
from typing import Literal

from rmreg.data.encoding import EncodedPair
from rmreg.data.layout import check_choice

__all__ = ["POLICIES", "TruncationPolicy", "TruncationStats", "truncate_pair"]

TruncationPolicy = Literal["keep_end", "drop", "error"]
POLICIES: tuple[str, ...] = ("keep_end", "drop", "error")


@dataclasses.dataclass
class TruncationStats:
    """Running counts of a :class:`~rmreg.data.PairCollator` (per process; DataLoader workers keep their own).

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
        EncodedPair(prompt_ids=(3, 4), chosen_ids=(5, 6, 7), rejected_ids=(8, 9), columns={})
    """
    check_choice("truncation policy", policy, POLICIES)
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
