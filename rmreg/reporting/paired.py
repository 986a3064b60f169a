"""Paired differences over seeds with a Student-t confidence interval, and the verdict they support.

Two objectives trained with the same seeds (same head initialisation, same data order) give one difference per
seed, ``d_s = other_s − baseline_s``. Their mean ``d̄`` and sample standard deviation ``s_d`` give the two-sided
interval ``d̄ ± t_{(1+c)/2, n−1} · s_d / √n`` at confidence ``c`` (the paired t-interval). The verdict is
``"better"`` when the whole interval lies above zero, ``"worse"`` when it lies below, and ``"no detectable
difference"`` when it contains zero.

Example:
    >>> bt = [0.80, 0.78, 0.82, 0.79, 0.81]
    >>> grm = [0.82, 0.79, 0.85, 0.80, 0.84]
    >>> diff = paired_difference(bt, grm)  # differences 2, 1, 3, 1, 3 points: mean 2, std 1
    >>> round(diff.mean, 3), round(diff.half_width, 3), diff.verdict
    (2.0, 1.242, 'better')
    >>> diff.describe("GRM − BT")
    'GRM − BT: +2.0 ± 1.2 points (95% CI over 5 seeds): better'
"""

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Literal

__all__ = ["PairedDifference", "paired_difference", "paired_differences", "t_quantile", "t_two_sided_mass"]

Verdict = Literal["better", "no detectable difference", "worse"]


def t_two_sided_mass(t: float, df: int) -> float:
    """``P(|T| ≤ t)`` for Student's t with ``df`` (a positive integer) degrees of freedom, in closed form.

    Abramowitz & Stegun 26.7.3–26.7.4, with ``θ = atan(t / √df)``: for even ``df``,
    ``sin θ · Σ_{k<df/2} Π_{j≤k} (2j − 1)/(2j) · cos^{2k} θ``; for odd ``df``,
    ``(2/π)·(θ + sin θ cos θ · Σ_{k<(df−1)/2} Π_{j≤k} (2j)/(2j + 1) · cos^{2k} θ)`` (the sum empty for ``df = 1``).

    Example:
        >>> round(t_two_sided_mass(12.7062, 1), 4), round(t_two_sided_mass(2.7764, 4), 4)
        (0.95, 0.95)
    """
    if not isinstance(df, int) or df < 1:
        raise ValueError(f"df must be a positive integer; got {df!r}")
    if t < 0:
        raise ValueError(f"t must be non-negative; got {t}")
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    term, total = 1.0, 1.0
    if df % 2 == 0:
        for k in range(1, df // 2):
            term *= cos2 * (2 * k - 1) / (2 * k)
            total += term
        return math.sin(theta) * total
    for k in range(1, (df - 1) // 2):
        term *= cos2 * (2 * k) / (2 * k + 1)
        total += term
    tail = math.sin(theta) * math.cos(theta) * total if df > 1 else 0.0
    return 2 / math.pi * (theta + tail)


def t_quantile(confidence: float, df: int) -> float:
    """The critical value ``t`` with ``P(|T| ≤ t) = confidence`` for ``df`` degrees of freedom (bisection).

    Example:
        >>> [round(t_quantile(0.95, df), 3) for df in (1, 2, 4, 9)]
        [12.706, 4.303, 2.776, 2.262]
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    low, high = 0.0, 1.0
    while t_two_sided_mass(high, df) < confidence:
        low, high = high, 2 * high
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if t_two_sided_mass(middle, df) < confidence else (low, middle)
        if high - low < 1e-12 * high:
            break
    return (low + high) / 2


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """The mean paired difference ``other − baseline`` over seeds and its t-interval, in the inputs' units.

    Attributes:
        mean: mean of the per-seed differences.
        half_width: half-width of the interval (``mean ± half_width``).
        n: number of seeds (pairs).
        confidence: confidence level of the interval.
        unit: unit word for :meth:`describe` (``"points"``: percentage points).
    """

    mean: float
    half_width: float
    n: int
    confidence: float = 0.95
    unit: str = "points"

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @property
    def verdict(self) -> Verdict:
        """``"better"`` if the interval lies above 0, ``"worse"`` if below, else ``"no detectable difference"``."""
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "no detectable difference"

    def describe(self, label: str, *, digits: int = 1) -> str:
        """One line: ``label: +x.x ± y.y points (95% CI over n seeds): verdict``."""
        return (
            f"{label}: {self.mean:+.{digits}f} ± {self.half_width:.{digits}f} {self.unit} "
            f"({self.confidence:.0%} CI over {self.n} seeds): {self.verdict}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "low": self.low, "high": self.high, "verdict": self.verdict}


def paired_difference(
    baseline: Sequence[float],
    other: Sequence[float],
    *,
    confidence: float = 0.95,
    scale: float = 100.0,
    unit: str = "points",
) -> PairedDifference:
    """The paired t-interval of ``scale · (other − baseline)``, the two sequences aligned by seed.

    Args:
        baseline: the baseline's value per seed (e.g. Bradley–Terry's accuracy as a fraction).
        other: the other objective's value for the same seeds, in the same order.
        confidence: confidence level of the interval.
        scale: factor applied to the differences (100: fractions to percentage points).
        unit: unit word for :meth:`PairedDifference.describe`.

    Raises:
        ValueError: sequences of different lengths, fewer than two seeds, or a value that is not finite.
    """
    if len(baseline) != len(other):
        raise ValueError(f"paired values need the same seeds; got {len(baseline)} and {len(other)} values")
    if len(baseline) < 2:
        raise ValueError(f"a confidence interval needs at least 2 seeds; got {len(baseline)}")
    differences = [scale * (b - a) for a, b in zip(baseline, other, strict=True)]
    if not all(math.isfinite(d) for d in differences):
        raise ValueError(f"paired values must be finite; got differences {differences}")
    n = len(differences)
    half = t_quantile(confidence, n - 1) * statistics.stdev(differences) / math.sqrt(n)
    return PairedDifference(statistics.fmean(differences), half, n, confidence, unit)


def paired_differences(
    runs: Sequence[Mapping[str, Any]],
    baseline: str,
    other: str,
    metric: str = "reward_accuracy",
    *,
    confidence: float = 0.95,
) -> dict[str, PairedDifference]:
    """Per split, the paired difference ``other − baseline`` of ``metric`` (in points) over the seeds both ran.

    Args:
        runs: records with ``label``, ``seed`` and ``final`` (split → metric → fraction), as ``rmreg train``
            keeps them.
        baseline: label of the baseline runs (e.g. ``"bt"``).
        other: label of the compared runs.
        metric: the metric to compare.
        confidence: confidence level.

    Raises:
        ValueError: fewer than two seeds that both objectives ran, or a seed run twice under one label.
    """
    by_label: dict[str, dict[int, Mapping[str, Any]]] = {baseline: {}, other: {}}
    for run in runs:
        if run["label"] in by_label:
            if run["seed"] in by_label[run["label"]]:
                raise ValueError(f"seed {run['seed']} of {run['label']!r} appears twice; runs must pair one to one")
            by_label[run["label"]][run["seed"]] = run["final"]
    seeds = sorted(set(by_label[baseline]) & set(by_label[other]))
    if len(seeds) < 2:
        raise ValueError(f"{other!r} − {baseline!r} needs at least 2 shared seeds; got {seeds}")
    splits = list(by_label[baseline][seeds[0]])
    return {
        split: paired_difference(
            [by_label[baseline][s][split][metric] for s in seeds],
            [by_label[other][s][split][metric] for s in seeds],
            confidence=confidence,
        )
        for split in splits
    }
