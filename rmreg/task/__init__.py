"""The built-in offline task: synthetic preference pairs with a known gold reward, and a tiny LM pre-trained on it.

Needs the ``hf`` extra (``transformers`` and ``tokenizers``) for the tokenizer and the LM; :mod:`rmreg` does not
import this package.

Example:
    >>> from rmreg.task import PreferenceTask, task_tokenizer
    >>> task = PreferenceTask(seed=0)
    >>> splits = task.splits(n_train=16, n_test=8, seed=0)
    >>> sorted(splits)
    ['test', 'test_length_flip', 'test_long', 'test_marker_flip', 'train']
"""

from rmreg.task.graded import graded_split
from rmreg.task.pretrain import PretrainConfig, PretrainedLM, cache_dir, lm_loss, pretrain_lm, pretrained_lm
from rmreg.task.synthetic import GRADES, MARKER, SPLITS, Labels, PreferenceTask, SplitName
from rmreg.task.tokenizer import task_tokenizer

__all__ = [
    "GRADES",
    "MARKER",
    "SPLITS",
    "Labels",
    "PreferenceTask",
    "PretrainConfig",
    "PretrainedLM",
    "SplitName",
    "cache_dir",
    "graded_split",
    "lm_loss",
    "pretrain_lm",
    "pretrained_lm",
    "task_tokenizer",
]
