"""The benchmarks by name, and :func:`run_benchmark`: read the data, score it, apply the official rule."""

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from rmreg.evaluation import hhh, judgebench, mt_bench, rewardbench, rewardbench2, rm_bench
from rmreg.evaluation.loading import Data, Row, load_rows
from rmreg.evaluation.plan import BenchmarkPlan
from rmreg.evaluation.result import BenchmarkResult

__all__ = ["BENCHMARKS", "Benchmark", "prepare_benchmark", "run_benchmark"]


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A benchmark: its name, what it is, where its files come from, and the reader of its rows.

    Attributes:
        name: the name :func:`run_benchmark` takes.
        title: what the benchmark is, in a few words.
        files: where to get the release's files (a Hugging Face dataset or a repository path).
        prepare: ``prepare(rows, **options) -> BenchmarkPlan``, from the benchmark's module.
    """

    name: str
    title: str
    files: str
    prepare: Callable[..., BenchmarkPlan]

    @property
    def options(self) -> dict[str, Any]:
        """The benchmark's options and their defaults (e.g. ``{"ties": "model_b"}`` for MT-Bench)."""
        parameters = list(inspect.signature(self.prepare).parameters.values())[1:]
        return {parameter.name: parameter.default for parameter in parameters}


BENCHMARKS: Mapping[str, Benchmark] = {
    benchmark.name: benchmark
    for benchmark in (
        Benchmark(
            "rewardbench",
            "RewardBench v1: 23 subsets in 4 sections",
            "hf.co/datasets/allenai/reward-bench (split filtered); prior sets: allenai/pref-test-sets",
            rewardbench.prepare,
        ),
        Benchmark(
            "rewardbench2",
            "RewardBench 2: best-of-4 in 6 subsets, Ties scored apart",
            "hf.co/datasets/allenai/reward-bench-2 (split test)",
            rewardbench2.prepare,
        ),
        Benchmark(
            "rm-bench",
            "RM-Bench: 3 chosen x 3 rejected styles per prompt, 4 domains",
            "github.com/THU-KEG/RM-Bench data/total_dataset.json (or hf.co/datasets/THU-KEG/RM-Bench)",
            rm_bench.prepare,
        ),
        Benchmark(
            "judgebench",
            "JudgeBench: response pairs labelled A>B or B>A",
            "github.com/ScalerLab/JudgeBench data/*.jsonl (or hf.co/datasets/ScalerLab/JudgeBench)",
            judgebench.prepare,
        ),
        Benchmark(
            "hhh",
            "HHH-Alignment as pairs (harmless, helpful, honest, other), as in the GRM paper",
            "hf.co/datasets/HuggingFaceH4/hhh_alignment (4 configurations, split test)",
            hhh.prepare,
        ),
        Benchmark(
            "mt-bench",
            "MT-Bench human judgments as pairs, as in the GRM paper",
            "hf.co/datasets/lmsys/mt_bench_human_judgments (splits human, gpt4_pair)",
            mt_bench.prepare,
        ),
    )
}


def _benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def prepare_benchmark(name: str, data: Data | list[Row], **options: Any) -> BenchmarkPlan:
    """Read and check a benchmark's data, before any model runs; :meth:`BenchmarkPlan.run` then scores it.

    Args:
        name: a key of :data:`BENCHMARKS`.
        data: a file, a directory of files, or a list of row dicts (see :mod:`rmreg.evaluation.loading`).
        **options: the benchmark's options (:attr:`Benchmark.options`): ``single_game`` for ``judgebench``,
            ``ties`` for ``mt-bench``.

    Raises:
        ValueError: an unknown benchmark or option, or data that does not fit the benchmark's layout (the message
            names the file, the row and the column).
    """
    benchmark = _benchmark(name)
    unknown = sorted(set(options) - set(benchmark.options))
    if unknown:
        known = ", ".join(benchmark.options) or "none"
        raise ValueError(f"{name} has no option {', '.join(map(repr, unknown))} (its options: {known})")
    read = isinstance(data, list) and bool(data) and all(isinstance(row, Row) for row in data)
    rows = data if read else load_rows(data)  # type: ignore[arg-type]
    return benchmark.prepare(rows, **options)


def run_benchmark(
    name: str,
    data: Data,
    scorer: Any,
    *,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
    **options: Any,
) -> BenchmarkResult:
    """Score a reward model on a public benchmark from local files, with the benchmark's official scoring.

    Args:
        name: ``"rewardbench"``, ``"rewardbench2"``, ``"rm-bench"``, ``"judgebench"``, ``"hhh"`` or
            ``"mt-bench"`` (:data:`BENCHMARKS`; each module's docstring gives the layout, the official rule and
            the file it was reproduced from).
        data: a file (``.parquet``, ``.json``, ``.jsonl``), a directory of such files in the release's layout, or
            a list of row dicts.
        scorer: a ``(RegularizedRewardModel, tokenizer)`` tuple, scored with ``model.score_texts`` in eval mode,
            or any callable taking a list of items (``(prompt, response)`` tuples, or conversations where the
            benchmark holds conversations) and returning one reward per item (list, tensor or array).
        batch_size: items per call of the scorer.
        progress: called with the number of items of each batch once it is scored (e.g. ``bar.update``).
        **options: the benchmark's options: ``single_game`` (``judgebench``), ``ties`` (``mt-bench``).

    Returns:
        A :class:`BenchmarkResult`: ``score`` (the headline, a fraction), ``subsets``, ``sections``, ``counts``,
        ``details``.

    Raises:
        ValueError: an unknown benchmark or option, bad data (naming the file, row and column), or a scorer
            that returned the wrong number of rewards or a non-finite one.

    Example:
        >>> rows = [
        ...     {"prompt": "2+2=", "chosen": "4", "rejected": "5", "subset": "math-prm"},
        ...     {"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away.", "subset": "alpacaeval-easy"},
        ... ]
        >>> longer = lambda items: [len(response) for _, response in items]
        >>> result = run_benchmark("rewardbench", rows, longer)
        >>> result.subsets, result.sections, result.score
        ({'math-prm': 0.0, 'alpacaeval-easy': 0.0}, {'Chat': 0.0, 'Reasoning': 0.0}, 0.0)
    """
    return prepare_benchmark(name, data, **options).run(scorer, batch_size=batch_size, progress=progress)
