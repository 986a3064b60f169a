"""rmreg.reporting: the t-interval of paired differences against hand-computed numbers and a numerical integral,
the verdicts, the lines ``rmreg train`` ends with, and the figure."""

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmreg.reporting import (
    accuracy_lines,
    best_of_n_lines,
    paired_difference,
    paired_differences,
    plot_curves,
    t_quantile,
    t_two_sided_mass,
)


def _t_mass_by_integration(t: float, df: int, steps: int = 20000) -> float:
    """P(|T| ≤ t): Simpson's rule on Student's t density (float64)."""
    const = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))

    def density(x: float) -> float:
        return const * (1 + x * x / df) ** (-(df + 1) / 2)

    h = t / steps
    total = density(0) + density(t) + sum((4 if i % 2 else 2) * density(i * h) for i in range(1, steps))
    return 2 * total * h / 3


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 8, 13])
@pytest.mark.parametrize("t", [0.1, 1.0, 2.5, 7.0])
def test_t_mass_matches_numerical_integration(df: int, t: float) -> None:
    assert t_two_sided_mass(t, df) == pytest.approx(_t_mass_by_integration(t, df), abs=1e-9)


# Two-sided 95% critical values of Student's t, from printed tables (e.g. Abramowitz & Stegun table 26.10).
@pytest.mark.parametrize(
    ("df", "expected"), [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622), (29, 2.0452)]
)
def test_t_quantile_matches_printed_tables(df: int, expected: float) -> None:
    assert t_quantile(0.95, df) == pytest.approx(expected, abs=1e-4)
    assert t_two_sided_mass(t_quantile(0.95, df), df) == pytest.approx(0.95, abs=1e-12)


def test_t_quantile_at_99_percent() -> None:
    assert t_quantile(0.99, 4) == pytest.approx(4.6041, abs=1e-4)


def test_paired_difference_by_hand() -> None:
    # Differences (points) 2, 1, 3, 1, 3: mean 2, sample std 1, half-width 2.7764 / sqrt(5) = 1.2416.
    diff = paired_difference([0.80, 0.78, 0.82, 0.79, 0.81], [0.82, 0.79, 0.85, 0.80, 0.84])
    assert diff.mean == pytest.approx(2.0)
    assert diff.half_width == pytest.approx(2.7764451 / math.sqrt(5), rel=1e-6)
    assert (diff.low, diff.high) == pytest.approx((2.0 - 1.241664, 2.0 + 1.241664), rel=1e-5)
    assert diff.verdict == "better"
    assert diff.describe("GRM − BT") == "GRM − BT: +2.0 ± 1.2 points (95% CI over 5 seeds): better"


def test_verdicts_no_difference_and_worse_by_hand() -> None:
    # Differences -1, 2, 0, 3, -2: mean 0.4, std sqrt(4.3) = 2.0736, half-width 2.7764 * 2.0736 / sqrt(5) = 2.5747.
    tie = paired_difference([0.5] * 5, [0.49, 0.52, 0.50, 0.53, 0.48])
    assert tie.mean == pytest.approx(0.4)
    assert tie.half_width == pytest.approx(2.7764451 * math.sqrt(4.3) / math.sqrt(5), rel=1e-6)
    assert tie.verdict == "no detectable difference"
    assert tie.describe("x").endswith("+0.4 ± 2.6 points (95% CI over 5 seeds): no detectable difference")
    # Differences -3, -4: mean -3.5, std 0.7071, half-width 12.7062 * 0.7071 / sqrt(2) = 6.353: no difference.
    assert paired_difference([0.6, 0.6], [0.57, 0.56]).half_width == pytest.approx(6.35310, rel=1e-5)
    # Differences -3, -4, -3, -4, -3: mean -3.4, std 0.5477, half-width 0.6801: worse.
    worse = paired_difference([0.6] * 5, [0.57, 0.56, 0.57, 0.56, 0.57])
    assert worse.mean == pytest.approx(-3.4)
    assert worse.half_width == pytest.approx(2.7764451 * math.sqrt(0.3) / math.sqrt(5), rel=1e-6)
    assert worse.verdict == "worse"


def test_paired_difference_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="at least 2 seeds"):
        paired_difference([0.1], [0.2])
    with pytest.raises(ValueError, match="finite"):
        paired_difference([0.1, float("nan")], [0.2, 0.3])
    with pytest.raises(ValueError, match="confidence"):
        t_quantile(1.0, 3)
    with pytest.raises(ValueError, match="df"):
        t_two_sided_mass(1.0, 0)


values = st.lists(st.floats(0, 1), min_size=2, max_size=8)


@settings(max_examples=60, deadline=None)
@given(values, st.data())
def test_swapping_the_objectives_mirrors_the_interval(baseline: list[float], data: st.DataObject) -> None:
    other = data.draw(st.lists(st.floats(0, 1), min_size=len(baseline), max_size=len(baseline)))
    forward, backward = paired_difference(baseline, other), paired_difference(other, baseline)
    assert backward.mean == pytest.approx(-forward.mean, abs=1e-9)
    assert backward.half_width == pytest.approx(forward.half_width, abs=1e-9)
    mirror = {"better": "worse", "worse": "better", "no detectable difference": "no detectable difference"}
    if abs(forward.low) > 1e-9 and abs(forward.high) > 1e-9:  # away from the boundary, where rounding decides
        assert backward.verdict == mirror[forward.verdict]


def _runs(accuracies: dict[str, list[float]], split: str = "test") -> list[dict]:
    return [
        {"label": label, "objective": label, "seed": seed, "final": {split: {"reward_accuracy": acc}}}
        for label, accs in accuracies.items()
        for seed, acc in enumerate(accs)
    ]


def test_paired_differences_pair_runs_by_seed_whatever_their_order() -> None:
    runs = _runs({"bt": [0.80, 0.78, 0.82, 0.79, 0.81], "grm-sft": [0.82, 0.79, 0.85, 0.80, 0.84]})
    random.Random(0).shuffle(runs)
    diff = paired_differences(runs, "bt", "grm-sft")["test"]
    assert (diff.mean, diff.n, diff.verdict) == (pytest.approx(2.0), 5, "better")
    with pytest.raises(ValueError, match="appears twice"):
        paired_differences([*runs, runs[0]], "bt", "grm-sft")
    with pytest.raises(ValueError, match="at least 2 shared seeds"):
        paired_differences(_runs({"bt": [0.5], "grm-sft": [0.6]}), "bt", "grm-sft")


def test_accuracy_lines_name_the_split_and_mark_shifted_ones() -> None:
    runs = _runs({"bt": [0.80, 0.78, 0.82, 0.79, 0.81], "grm-sft (α=0.1)": [0.82, 0.79, 0.85, 0.80, 0.84]}, "long")
    assert accuracy_lines(runs, shifted=["long"]) == [
        "long (shifted): GRM (grm-sft, α=0.1) − BT: +2.0 ± 1.2 points (95% CI over 5 seeds): better"
    ]
    assert accuracy_lines(_runs({"bt": [0.5, 0.6]})) == []  # nothing to compare with


def _bon_runs(curves: dict[str, list[list[float]]]) -> list[dict]:
    ns = [1, 2, 4, 8]
    return [
        {"label": label, "seed": seed, "best_of_n": {"n": ns, "kl": [0.0] * 4, "gold": gold, "proxy": [0.0] * 4}}
        for label, by_seed in curves.items()
        for seed, gold in enumerate(by_seed)
    ]


def test_best_of_n_lines_call_over_optimization_only_when_the_fall_is_outside_the_interval() -> None:
    falling = [[0.0, 0.2, 0.1, -0.1], [0.0, 0.21, 0.12, -0.08], [0.0, 0.19, 0.1, -0.12]]
    rising = [[0.0, 0.1, 0.2, 0.3], [0.0, 0.1, 0.2, 0.31], [0.0, 0.1, 0.2, 0.29]]
    lines = best_of_n_lines(_bon_runs({"bt": falling, "grm-sft": rising}))
    # bt: peak at N = 2 (mean 0.2); fall to N = 8: differences -0.3, -0.29, -0.31, mean -0.3, std 0.01,
    # half-width 4.3027 * 0.01 / sqrt(3) = 0.0248.
    assert lines[0] == (
        "bt: gold +0.000 at N = 1, -0.100 at N = 8; peaks at N = 2 (+0.200), then -0.300 ± 0.025 by N = 8: falls, "
        "over-optimization"
    )
    assert (
        lines[1]
        == "GRM (grm-sft): gold +0.000 at N = 1, +0.300 at N = 8; highest at the largest N: no over-optimization"
    )
    # At N = 8: differences 0.4, 0.39, 0.41: +0.400 ± 0.025.
    assert lines[2] == "N = 8: GRM (grm-sft) − BT: +0.400 ± 0.025 gold (95% CI over 3 seeds): better"
    noisy = [[0.0, 0.2, 0.1, 0.15], [0.0, 0.1, 0.1, 0.2], [0.0, 0.2, 0.1, 0.0]]
    assert best_of_n_lines(_bon_runs({"bt": noisy}))[0].endswith(": no detectable fall")
    # Falling from the start: differences (N = 8 − N = 1) -0.2, -0.22, -0.18: -0.200 ± 0.050.
    down = [[0.0, -0.1, -0.15, -0.2], [0.0, -0.1, -0.15, -0.22], [0.0, -0.1, -0.15, -0.18]]
    assert best_of_n_lines(_bon_runs({"bt": down}))[0].endswith(
        "; highest at N = 1, then -0.200 ± 0.050 by N = 8: falls, over-optimization"
    )


def test_plot_has_a_title_and_writes_a_png(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    history = [{"step": s, "loss": 1.0 / s, "bradley_terry": 0.7 / s, "accuracy": 0.5} for s in range(1, 9)]
    runs = [
        {**run, "history": history, "final": {"test": {"reward_accuracy": acc, "lm_accuracy": 0.5}}}
        for run, acc in zip(_runs({"bt": [0.7, 0.8], "grm-sft": [0.75, 0.8]}), (0.7, 0.8, 0.75, 0.8), strict=True)
    ]
    assert plot_curves(runs, tmp_path / "curves.png", title="a title")
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")
