"""From preference examples to reward-model batches: encoding, truncation, collation, pair layout.

* :mod:`rmreg.data.encoding` — one example (text, conversational, pre-tokenized) as token ids and per-pair
  columns;
* :mod:`rmreg.data.truncation` — fitting a pair into ``max_length``, with counts;
* :mod:`rmreg.data.collation` — padding, labels (``-100`` on prompt and padding) and the batch of ``2·P`` rows;
  :class:`PairCollator` is a ``DataLoader`` ``collate_fn``;
* :mod:`rmreg.data.layout` — where the chosen and rejected rows sit (``"concat"`` or ``"interleaved"``).
"""

from rmreg.data.collation import PaddingSide, PairCollator, collate_pairs, collate_texts, pad_rows
from rmreg.data.encoding import EncodedPair, Message, encode_pair, encode_text, per_pair_columns
from rmreg.data.layout import IGNORE_INDEX, Layout, join_pairs, pair_order, split_pairs
from rmreg.data.truncation import TruncationPolicy, TruncationStats, truncate_pair

__all__ = [
    "IGNORE_INDEX",
    "EncodedPair",
    "Layout",
    "Message",
    "PaddingSide",
    "PairCollator",
    "TruncationPolicy",
    "TruncationStats",
    "collate_pairs",
    "collate_texts",
    "encode_pair",
    "encode_text",
    "join_pairs",
    "pad_rows",
    "pair_order",
    "per_pair_columns",
    "split_pairs",
    "truncate_pair",
]
