"""The tokenizer and the datasets, prepared as TRL's ``RewardTrainer`` prepares them.

Tokenizer: loaded from the model id when none is given; ``args.eos_token``, ``args.chat_template_path`` and the
pad token (``args.pad_token``, deprecated, else the tokenizer's, else EOS) applied with TRL's checks, in its order.
Datasets: TRL's legacy ``chosen_input_ids``/``rejected_input_ids`` columns renamed with its warning, every example
tokenized by :func:`rmreg.data.encode_pair` (the ids TRL builds, with the prompt part kept apart so that the
regularizers score response tokens only), pairs longer than ``args.max_length`` left out. Numeric and bool columns
are per-pair columns that reach the objective's terms by name.
"""

import os
import warnings
from typing import Any

try:
    from datasets import Dataset, IterableDataset, Value
    from transformers import AutoTokenizer
    from trl.chat_template_utils import clone_chat_template
    from trl.data_utils import get_dataset_column_names
    from trl.trainer.utils import global_then_local_main_first
except ImportError as error:  # rmreg.integrations.trl's __init__ names the extra first
    raise ImportError(f'rmreg.integrations.trl needs TRL and datasets ({error}): pip install "rmreg[trl]"') from error

from rmreg.data import encode_pair, per_pair_columns
from rmreg.data.encoding import TEXT_COLUMNS

__all__ = [
    "ID_COLUMNS",
    "load_tokenizer",
    "numeric_columns",
    "prepare_dataset",
    "set_chat_template",
    "set_eos_token",
    "set_pad_token",
]

ID_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")
_BOOL_OR_NUMBER = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def load_tokenizer(model_id: str, revision: str | None, args: Any) -> Any:
    """TRL's fallback: the tokenizer saved with the model."""
    return AutoTokenizer.from_pretrained(model_id, revision=revision, trust_remote_code=args.trust_remote_code)


def set_eos_token(tokenizer: Any, config: Any, args: Any) -> None:
    """``args.eos_token``, checked against the vocabulary as TRL checks it; the backbone's config gets its id."""
    if args.eos_token is None:
        return
    if args.eos_token not in tokenizer.get_vocab():
        raise ValueError(
            f"The specified `eos_token` ('{args.eos_token}') is not found in the vocabulary of the given "
            f"`processing_class` ({tokenizer.__class__.__name__}). Ensure that the `eos_token` exists "
            "in the vocabulary before using it as an EOS token."
        )
    tokenizer.eos_token = args.eos_token
    config.get_text_config().eos_token_id = tokenizer.eos_token_id


def set_pad_token(tokenizer: Any, config: Any, args: Any) -> None:
    """The pad token (``args.pad_token``, else the tokenizer's, else EOS), checked as TRL checks it; the backbone's
    config gets its id (sequence classifiers pool by ``pad_token_id``)."""
    pad_token = args.pad_token or tokenizer.pad_token or tokenizer.eos_token
    if pad_token not in tokenizer.get_vocab():
        raise ValueError(
            f"The specified `pad_token` ('{pad_token}') is not found in the vocabulary of the given "
            f"`processing_class` ({tokenizer.__class__.__name__}). Ensure that the `pad_token` exists "
            "in the vocabulary before using it as a padding token."
        )
    tokenizer.pad_token = pad_token
    config.get_text_config().pad_token_id = tokenizer.pad_token_id


_PAD_IS_EOS = (
    "the tokenizer's pad token is its EOS token ({token!r}). TRL's RewardTrainer then reads the reward at the token "
    "before each row's final EOS (its sequence classifier skips every token with the pad id); rmreg reads it at the "
    "final EOS itself (the last token of the attention mask), as rmreg's scoring and its saved checkpoints do. "
    "Rewards and losses differ from TRL's for that reason only; give the tokenizer a pad token of its own to make "
    "them equal."
)


def warn_if_pad_is_eos(tokenizer: Any) -> None:
    """Say once, loudly, that a pad token equal to EOS makes rmreg's rewards differ from TRL's (and why)."""
    if tokenizer.pad_token_id == tokenizer.eos_token_id:
        warnings.warn(_PAD_IS_EOS.format(token=tokenizer.pad_token), stacklevel=3)


def set_chat_template(model: Any, tokenizer: Any, path: str) -> list[int]:
    """``args.chat_template_path``: a Jinja file sets the template; a tokenizer's path clones its template and
    special tokens, resizing ``model``'s embeddings (TRL's ``clone_chat_template``). Returns the added token ids."""
    if os.path.isfile(path) and path.endswith((".jinja", ".j2")):
        with open(path, encoding="utf-8") as template:
            tokenizer.chat_template = template.read()
        return []
    _, _, added_tokens = clone_chat_template(model, tokenizer, path)
    return added_tokens


def _encode(example: dict[str, Any], tokenizer: Any) -> dict[str, list[int]]:
    pair = encode_pair(tokenizer, example)
    return {name: list(getattr(pair, name)) for name in ID_COLUMNS}


def numeric_columns(dataset: Dataset | IterableDataset) -> set[str]:
    """The per-pair columns of a dataset: numbers and bools other than its ids (see :mod:`rmreg.data.encoding`)."""
    features = dataset.features
    if features is None:  # a streamed dataset whose features are unknown: read them off its first example
        return set(per_pair_columns(next(iter(dataset))))
    return {name for name, feature in features.items() if name not in TEXT_COLUMNS and _is_numeric(feature)}


def _is_numeric(feature: Any) -> bool:
    """A number or bool, or a list of them (per-attribute ratings, whose ``None`` entries become a mask column)."""
    inner = getattr(feature, "feature", None) if not isinstance(feature, Value) else feature
    return isinstance(inner, Value) and (inner.dtype in _BOOL_OR_NUMBER or inner.dtype.startswith("float"))


def prepare_dataset(
    dataset: Dataset | IterableDataset, tokenizer: Any, args: Any, dataset_name: str
) -> Dataset | IterableDataset:
    """Tokenize a preference dataset (once: a prepared dataset passes through) and drop pairs over max_length."""
    columns = get_dataset_column_names(dataset)
    has_ids = "chosen_ids" in columns and "rejected_ids" in columns
    if "chosen_input_ids" in columns and "rejected_input_ids" in columns and not has_ids:
        warnings.warn(
            "Detected legacy dataset columns `chosen_input_ids`/`rejected_input_ids`; they are deprecated and "
            "will not be supported in v1. Please migrate to `chosen_ids`/`rejected_ids`.",
            FutureWarning,
            stacklevel=4,
        )
        dataset = dataset.rename_column("chosen_input_ids", "chosen_ids")
        dataset = dataset.rename_column("rejected_input_ids", "rejected_ids")
    map_kwargs: dict[str, Any] = {}
    if isinstance(dataset, Dataset):  # IterableDataset.map takes neither num_proc nor desc
        map_kwargs = {"num_proc": args.dataset_num_proc, "desc": f"Tokenizing {dataset_name} dataset"}
    with global_then_local_main_first():
        if not set(ID_COLUMNS) <= set(get_dataset_column_names(dataset)):
            dataset = dataset.map(_encode, fn_kwargs={"tokenizer": tokenizer}, **map_kwargs)
        if args.max_length is not None:
            if isinstance(dataset, Dataset):
                map_kwargs["desc"] = f"Filtering {dataset_name} >{args.max_length} tokens"
            dataset = dataset.filter(
                lambda row: (
                    len(row["prompt_ids"]) + max(len(row["chosen_ids"]), len(row["rejected_ids"])) <= args.max_length
                ),
                **map_kwargs,
            )
    return dataset
