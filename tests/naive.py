"""Independent float64 reference implementations written with plain Python loops and `math`.

They share no code with rmreg: each formula is written out again from the paper (arXiv 2406.10216) and the
references cited in the docstrings, so agreement means the library computes what the papers define.
"""

import math
from collections.abc import Sequence


def log_sigmoid(x: float) -> float:
    """log σ(x) without overflow: −log(1 + e^{−x}) for x ≥ 0, x − log(1 + e^{x}) otherwise."""
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def bradley_terry(
    chosen: Sequence[float],
    rejected: Sequence[float],
    margin: Sequence[float] | None = None,
    label_smoothing: float = 0.0,
) -> list[float]:
    losses = []
    for i, (c, r) in enumerate(zip(chosen, rejected, strict=True)):
        d = c - r - (margin[i] if margin is not None else 0.0)
        losses.append(-(1 - label_smoothing) * log_sigmoid(d) - label_smoothing * log_sigmoid(-d))
    return losses


def centering(chosen: Sequence[float], rejected: Sequence[float]) -> list[float]:
    return [(c + r) ** 2 for c, r in zip(chosen, rejected, strict=True)]


def sft(chosen_logps: Sequence[float], beta: float, log_sigmoid_form: bool = True) -> list[float]:
    return [-log_sigmoid(beta * lp) if log_sigmoid_form else -lp for lp in chosen_logps]


def dpo(
    chosen: Sequence[float],
    rejected: Sequence[float],
    ref_chosen: Sequence[float] | None,
    ref_rejected: Sequence[float] | None,
    beta: float,
) -> list[float]:
    losses = []
    for i in range(len(chosen)):
        ref_c = ref_chosen[i] if ref_chosen is not None else 0.0
        ref_r = ref_rejected[i] if ref_rejected is not None else 0.0
        losses.append(-log_sigmoid(beta * ((chosen[i] - ref_c) - (rejected[i] - ref_r))))
    return losses


def sequence_logprobs(logits: Sequence[Sequence[Sequence[float]]], labels: Sequence[Sequence[int]]) -> list[float]:
    """Σ_t log softmax(logits[t])[labels[t+1]] over t with labels[t+1] != −100, row by row."""
    totals = []
    for row_logits, row_labels in zip(logits, labels, strict=True):
        total = 0.0
        for t in range(len(row_labels) - 1):
            target = row_labels[t + 1]
            if target == -100:
                continue
            peak = max(row_logits[t])
            log_norm = peak + math.log(sum(math.exp(v - peak) for v in row_logits[t]))
            total += row_logits[t][target] - log_norm
        totals.append(total)
    return totals


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def log_sum_exp(values: Sequence[float]) -> float:
    peak = max(values)
    return peak + math.log(sum(math.exp(v - peak) for v in values))


def plackett_luce(
    groups: Sequence[Sequence[float]],
    masks: Sequence[Sequence[bool]] | None = None,
    num_ranked: Sequence[int] | None = None,
) -> list[float]:
    """−Σ_{k < m} [r_(k) − log Σ_{j ≥ k} exp r_(j)] over each group's real completions, in order (Plackett 1975)."""
    losses = []
    for g, rewards in enumerate(groups):
        real = [r for i, r in enumerate(rewards) if masks is None or masks[g][i]]
        ranked = len(real) if num_ranked is None else min(num_ranked[g], len(real))
        losses.append(-sum(real[k] - log_sum_exp(real[k:]) for k in range(ranked)))
    return losses


def listwise_softmax(
    chosen: Sequence[float], rejected: Sequence[Sequence[float]], masks: Sequence[Sequence[bool]] | None = None
) -> list[float]:
    """−log(e^{r_c} / (e^{r_c} + Σ_j e^{r_j})) over each group's real rejected completions."""
    losses = []
    for g, c in enumerate(chosen):
        others = [r for i, r in enumerate(rejected[g]) if masks is None or masks[g][i]]
        losses.append(log_sum_exp([c, *others]) - c)
    return losses


def rao_kupper(chosen: Sequence[float], rejected: Sequence[float], tie: Sequence[bool], theta: float) -> list[float]:
    """Rao & Kupper (1967) with strengths π = e^r: P(i≻j) = π_i/(π_i + θπ_j),
    P(tie) = (θ² − 1)π_iπ_j / ((π_i + θπ_j)(π_j + θπ_i))."""
    losses = []
    for c, r, tied in zip(chosen, rejected, tie, strict=True):
        pi, pj = math.exp(c), math.exp(r)
        if tied:
            p = (theta**2 - 1) * pi * pj / ((pi + theta * pj) * (pj + theta * pi))
        else:
            p = pi / (pi + theta * pj)
        losses.append(-math.log(p))
    return losses


def davidson(chosen: Sequence[float], rejected: Sequence[float], tie: Sequence[bool], nu: float) -> list[float]:
    """Davidson (1970) with strengths π = e^r: P(i≻j) = π_i / D, P(tie) = ν√(π_iπ_j) / D,
    D = π_i + π_j + ν√(π_iπ_j)."""
    losses = []
    for c, r, tied in zip(chosen, rejected, tie, strict=True):
        pi, pj = math.exp(c), math.exp(r)
        geometric = math.sqrt(pi * pj)
        denominator = pi + pj + nu * geometric
        losses.append(-math.log((nu * geometric if tied else pi) / denominator))
    return losses


def rating_squared_errors(
    predicted: Sequence[Sequence[float]], target: Sequence[Sequence[float]], mask: Sequence[Sequence[bool]]
) -> list[list[float]]:
    """(f − y)² per observed rating, 0 where missing."""
    return [
        [(f - y) ** 2 if m else 0.0 for f, y, m in zip(fs, ys, ms, strict=True)]
        for fs, ys, ms in zip(predicted, target, mask, strict=True)
    ]


def ordinal_logistic(
    predicted: Sequence[Sequence[float]],
    level: Sequence[Sequence[int]],
    thresholds: Sequence[Sequence[float]],
    mask: Sequence[Sequence[bool]],
) -> list[list[float]]:
    """−log[σ(b_{l+1} − f) − σ(b_l − f)] per observed rating (b_0 = −∞, b_L = +∞; McCullagh 1980), 0 where missing.

    ``thresholds[a]`` are attribute a's cut points."""

    def sigmoid(x: float) -> float:
        return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))

    losses = []
    for fs, ls, ms in zip(predicted, level, mask, strict=True):
        row = []
        for a, (f, lv, m) in enumerate(zip(fs, ls, ms, strict=True)):
            if not m:
                row.append(0.0)
                continue
            cuts = thresholds[a]
            upper = sigmoid(cuts[lv] - f) if lv < len(cuts) else 1.0
            lower = sigmoid(cuts[lv - 1] - f) if lv > 0 else 0.0
            row.append(-math.log(upper - lower))
        losses.append(row)
    return losses


def squared_mean(values: Sequence[float]) -> float:
    return (sum(values) / len(values)) ** 2
