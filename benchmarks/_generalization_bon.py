"""Best-of-N over-optimization for ``generalization.py``: policy samples, the unbiased best-of-N estimator, the plot.

Best-of-N draws N responses from the policy and keeps the one the proxy reward model scores highest; its KL
divergence from the policy is ``log N − (N − 1)/N`` (Stiennon et al., 2020; Gao et al., 2023). From ``n``
samples per prompt, the expected gold and proxy reward of the pick for every N ≤ n follow without resampling:
the sample ranked ``i``-th lowest by the proxy is the best of a random N-subset with probability
``C(i − 1, N − 1) / C(n, N)`` (Nakano et al., 2021, the estimator Gao et al. use).
"""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from rmreg.reporting import headless_pyplot

__all__ = ["best_of_n", "bon_kl", "plot_best_of_n", "sample_responses", "standardize"]


def bon_kl(n: int) -> float:
    """KL divergence of best-of-``n`` sampling from the policy: ``log n − (n − 1)/n``."""
    return math.log(n) - (n - 1) / n


@torch.no_grad()
def sample_responses(
    lm: Any, tokenizer: Any, prompts: Sequence[str], samples: int, *, max_new_tokens: int, seed: int
) -> list[list[str]]:
    """``samples`` responses per prompt, drawn from ``lm`` at temperature 1 without top-k or top-p truncation.

    Args:
        lm: a Hugging Face causal LM (the policy), in eval mode.
        tokenizer: its tokenizer; each prompt is encoded with its special tokens (BOS), as in training.
        prompts: prompt texts.
        samples: responses per prompt (generated as one batch per prompt).
        max_new_tokens: most tokens per response; a response stops at EOS.
        seed: seed of the sampling.

    Returns:
        One list of response texts per prompt, EOS and padding removed.
    """
    from transformers import GenerationConfig

    config = GenerationConfig(
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_new_tokens=max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    responses = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt").input_ids.repeat(samples, 1)
        out = lm.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config)
        responses.append(tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True))
    return responses


def standardize(scores: torch.Tensor) -> torch.Tensor:
    """Proxy rewards recentred and rescaled so that the policy's own samples have mean 0 and std 1 (Gao et al.
    recentre each reward model on the initial policy; the scale makes reward models trained with different
    objectives comparable)."""
    return (scores - scores.mean()) / scores.std()


def best_of_n(proxy: torch.Tensor, gold: torch.Tensor, ns: Sequence[int]) -> dict[str, list[float]]:
    """Expected gold and proxy reward of the best-of-N pick, averaged over prompts, for each N in ``ns``.

    Args:
        proxy: proxy rewards ``[prompts, samples]``.
        gold: gold rewards of the same samples.
        ns: values of N, each at most ``samples``.

    Returns:
        ``{"gold": [...], "proxy": [...]}``, one value per N.
    """
    samples = proxy.shape[1]
    order = proxy.argsort(dim=1)
    ranked_proxy, ranked_gold = proxy.gather(1, order).double(), gold.gather(1, order).double()
    curves: dict[str, list[float]] = {"gold": [], "proxy": []}
    ranks = torch.arange(samples, dtype=torch.float64)
    for n in ns:
        weights = torch.where(ranks >= n - 1, (_log_comb(ranks, n - 1) - _log_comb(samples, n)).exp(), 0.0)
        curves["gold"].append((ranked_gold @ weights).mean().item())
        curves["proxy"].append((ranked_proxy @ weights).mean().item())
    return curves


def _log_comb(n: torch.Tensor | int, k: int) -> torch.Tensor:
    """log C(n, k) for n ≥ k (binomial coefficients overflow float64 for n = 256)."""
    n = torch.as_tensor(n, dtype=torch.float64).clamp(min=k)
    return torch.lgamma(n + 1) - torch.lgamma(torch.tensor(k + 1.0, dtype=torch.float64)) - torch.lgamma(n - k + 1)


def plot_best_of_n(
    curves: Mapping[str, Mapping[str, Mapping[str, list[list[float]]]]], ns: Sequence[int], path: Path
) -> bool:
    """Gold and standardized proxy reward against KL, one row of panels per condition, one colour per objective.

    Args:
        curves: condition → objective → ``"gold"`` / ``"proxy"`` → one curve (a value per N) per seed.
        ns: the values of N.
        path: the PNG to write.

    Returns:
        ``False`` (and writes nothing) when matplotlib is not installed.
    """
    pyplot = headless_pyplot()
    if pyplot is None:
        return False
    kls = [bon_kl(n) for n in ns]
    figure, axes = pyplot.subplots(len(curves), 2, figsize=(11, 4 * len(curves)), squeeze=False, sharex=True)
    for row, (condition, by_objective) in zip(axes, curves.items(), strict=True):
        for colour, (objective, kinds) in enumerate(by_objective.items()):
            for axis, kind in zip(row, ("gold", "proxy"), strict=True):
                values = torch.tensor(kinds[kind])
                mean, std = values.mean(0), values.std(0) if len(values) > 1 else torch.zeros(len(ns))
                style = "--" if objective.startswith("grm") else "-"
                axis.plot(kls, mean, style, color=f"C{colour}", label=objective, marker=".")
                axis.fill_between(kls, mean - std, mean + std, color=f"C{colour}", alpha=0.12)
        row[0].set_ylabel(f"{condition}\ngold reward of the pick")
        row[1].set_ylabel("proxy reward of the pick (standardized)")
    for axis in axes.flat:
        axis.grid(alpha=0.3)
    for axis in axes[-1]:
        axis.set_xlabel(f"KL = log N − (N − 1)/N, N = {ns[0]} … {ns[-1]}")
    axes[0][1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return True
