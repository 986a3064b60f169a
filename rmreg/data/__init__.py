"""From preference examples to reward-model batches: encoding, truncation, collation, pair layout.

* :mod:`rmreg.data.encoding` — one example (text, conversational, pre-tokenized) as token ids and per-pair
  columns;
* :mod:`rmreg.data.truncation` — fitting a pair into ``max_length``, with counts;
* :mod:`rmreg.data.collation` — padding, labels (``-100`` on prompt and padding) and the batch of ``2·P`` rows;
  :class:`PairCollator` is a ``DataLoader`` ``collate_fn``;
* :mod:`rmreg.data.group_collation` — ranked groups of K completions as one batch (:class:`GroupCollator`);
* :mod:`rmreg.data.layout` — where the chosen and rejected rows sit (``"concat"`` or ``"interleaved"``).
"""

from rmreg.data.collation import PaddingSide, PairCollator, collate_pairs, collate_texts, pad_rows
from rmreg.data.encoding import EncodedPair, Message, encode_pair, encode_text, per_pair_columns
from rmreg.data.group_collation import GroupCollator, GroupTruncationStats, collate_groups
from rmreg.data.layout import IGNORE_INDEX, Layout, join_pairs, pair_order, split_pairs
from rmreg.data.rankings import BinarizeStrategy, RankedExample, binarize, parse_ranked, parse_rankings
from rmreg.data.ties import tie_flags, with_tie_flags
from rmreg.data.truncation import TruncationPolicy, TruncationStats, truncate_pair

__all__ = [
    "IGNORE_INDEX",
    "BinarizeStrategy",
    "EncodedPair",
    "GroupCollator",
    "GroupTruncationStats",
    "Layout",
    "Message",
    "PaddingSide",
    "PairCollator",
    "RankedExample",
    "TruncationPolicy",
    "TruncationStats",
    "binarize",
    "collate_groups",
    "collate_pairs",
    "collate_texts",
    "encode_pair",
    "encode_text",
    "join_pairs",
    "pad_rows",
    "pair_order",
    "parse_ranked",
    "parse_rankings",
    "per_pair_columns",
    "split_pairs",
    "tie_flags",
    "truncate_pair",
    "with_tie_flags",
]
