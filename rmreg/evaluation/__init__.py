"""Reward benchmarks from local files, scored as their official scripts score them.

:func:`run_benchmark` reads a benchmark's release files (or a list of rows), scores every response with a reward
model (a ``(RegularizedRewardModel, tokenizer)`` tuple or any callable) and applies the benchmark's official
rule, so that the number can stand beside the leaderboard's. Nothing is downloaded: get the files first (see
:data:`BENCHMARKS` and the README).

==================  =======================================================================================
``rewardbench``     RewardBench v1 (allenai/reward-bench): subsets, 4 example-weighted sections, prior sets
``rewardbench2``    RewardBench 2: best-of-N with the official tie rule, the Ties subset's own score
``rm-bench``        RM-Bench (THU-KEG): the 3x3 style matrix, easy / normal / hard, per domain
``judgebench``      JudgeBench (ScalerLab): A>B / B>A pairs, both orders as run_judge.py
``hhh``             HHH-Alignment as pairs, as the GRM paper's code builds them
``mt-bench``        MT-Bench human judgments as pairs, as the GRM paper's code builds them (ties: option)
==================  =======================================================================================

Example:
    >>> from rmreg.evaluation import run_benchmark
    >>> rows = [{"pair_id": "p0", "source": "livecodebench", "question": "Sort [2, 1].",
    ...          "response_A": "[1, 2]", "response_B": "[2, 1]", "label": "A>B"}]
    >>> prefers_sorted = lambda items: [float(response == "[1, 2]") for _, response in items]
    >>> run_benchmark("judgebench", rows, prefers_sorted).score
    1.0
"""

from rmreg.evaluation.loading import load_rows
from rmreg.evaluation.plan import BenchmarkPlan
from rmreg.evaluation.result import BenchmarkResult
from rmreg.evaluation.runner import BENCHMARKS, Benchmark, prepare_benchmark, run_benchmark
from rmreg.evaluation.scorers import Item, Scorer, as_scorer, reward_model_scorer, sequence_classifier_scorer

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkPlan",
    "BenchmarkResult",
    "Item",
    "Scorer",
    "as_scorer",
    "load_rows",
    "prepare_benchmark",
    "reward_model_scorer",
    "run_benchmark",
    "sequence_classifier_scorer",
]
