"""Independent float64 reference implementations written with plain Python loops and `math`.

They share no code with rmreg: each formula is written out again from the paper (arXiv 2406.10216) and
DESIGN.md, so agreement means the library computes what the paper defines.
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
