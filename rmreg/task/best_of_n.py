"""Best-of-N on the built-in task: policy samples, their gold reward, and the unbiased best-of-N estimator.

Best-of-N draws N responses from the policy and keeps the one the proxy reward model scores highest; its KL
divergence from the policy is ``log N − (N − 1)/N`` (Stiennon et al., 2020; Gao et al., 2023). From ``n``
samples per prompt, the expected gold and proxy reward of the pick for every N ≤ n follow without resampling:
the sample ranked ``i``-th lowest (from 1) by the proxy is the best of a uniformly random N-subset with
probability ``C(i − 1, N − 1) / C(n, N)`` (Nakano et al., 2021, the estimator Gao et al. use). The paper's
Figure 2 (Yang et al., 2024) plots this against KL for proxies trained with each objective.

Example:
    >>> import torch
    >>> proxy = torch.tensor([[0.0, 1.0, 2.0]])  # the proxy ranks the third sample first
    >>> gold = torch.tensor([[0.0, 3.0, 6.0]])
    >>> best_of_n(proxy, gold, [1, 3])["gold"]  # N = 1: the mean; N = 3: the proxy's favourite
    [3.0, 6.0]
"""

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["Candidates", "best_of_n", "bon_kl", "powers_of_two", "sample_candidates", "sample_responses", "standardize"]


def bon_kl(n: int) -> float:
    """KL divergence of best-of-``n`` sampling from the policy: ``log n − (n − 1)/n``.

    Example:
        >>> bon_kl(1), round(bon_kl(256), 3)
        (0.0, 4.549)
    """
    if n < 1:
        raise ValueError(f"n must be positive; got {n}")
    return math.log(n) - (n - 1) / n


def powers_of_two(largest: int) -> list[int]:
    """``[1, 2, 4, …]`` up to ``largest``, with ``largest`` itself last if it is not a power of two."""
    ns = [2**k for k in range(largest.bit_length()) if 2**k <= largest]
    return ns if ns[-1] == largest else [*ns, largest]


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
    objectives comparable; a constant proxy is only recentred)."""
    centred = scores - scores.mean()
    scale = scores.std()
    return centred / scale if scale > 0 else centred


def best_of_n(proxy: torch.Tensor, gold: torch.Tensor, ns: Sequence[int]) -> dict[str, list[float]]:
    """Expected gold and proxy reward of the best-of-N pick, averaged over prompts, for each N in ``ns``.

    Args:
        proxy: proxy rewards ``[prompts, samples]``.
        gold: gold rewards of the same samples.
        ns: values of N, each in ``1 … samples``.

    Returns:
        ``{"gold": [...], "proxy": [...]}``, one value per N.
    """
    if proxy.shape != gold.shape or proxy.dim() != 2:
        shapes = f"{tuple(proxy.shape)} and {tuple(gold.shape)}"
        raise ValueError(f"proxy and gold must both be [prompts, samples]; got {shapes}")
    samples = proxy.shape[1]
    if any(not 1 <= n <= samples for n in ns):
        raise ValueError(f"every N must be in 1 … {samples} (the samples per prompt); got {list(ns)}")
    order = proxy.argsort(dim=1)
    ranked_proxy, ranked_gold = proxy.gather(1, order).double(), gold.gather(1, order).double()
    curves: dict[str, list[float]] = {"gold": [], "proxy": []}
    ranks = torch.arange(samples, dtype=torch.float64)  # 0-based: rank i + 1 in the docstring's formula
    for n in ns:
        weights = torch.where(ranks >= n - 1, (_log_comb(ranks, n - 1) - _log_comb(samples, n)).exp(), 0.0)
        curves["gold"].append((ranked_gold @ weights).mean().item())
        curves["proxy"].append((ranked_proxy @ weights).mean().item())
    return curves


def _log_comb(n: torch.Tensor | int, k: int) -> torch.Tensor:
    """log C(n, k) for n ≥ k (binomial coefficients overflow float64 for n = 256)."""
    n = torch.as_tensor(n, dtype=torch.float64).clamp(min=k)
    return torch.lgamma(n + 1) - torch.lgamma(torch.tensor(k + 1.0, dtype=torch.float64)) - torch.lgamma(n - k + 1)


@dataclasses.dataclass(frozen=True)
class Candidates:
    """The policy's samples for best-of-N: ``items`` (prompt, response), row-major ``[prompts, samples]``, and
    their gold reward ``gold`` of shape ``[prompts, samples]``."""

    items: list[tuple[str, str]]
    gold: torch.Tensor

    def curve(self, score: Callable[[list[tuple[str, str]]], torch.Tensor], ns: Sequence[int]) -> dict[str, Any]:
        """Best-of-N with the proxy ``score`` (rewards of the items): ``{"n", "kl", "gold", "proxy"}`` lists, the
        proxy standardized over the candidates."""
        proxy = standardize(score(self.items).detach().float().cpu()).view_as(self.gold)
        return {"n": list(ns), "kl": [bon_kl(n) for n in ns], **best_of_n(proxy, self.gold, ns)}


def sample_candidates(
    lm: Any, tokenizer: Any, task: Any, prompts: Sequence[str], samples: int, *, max_new_tokens: int, seed: int = 0
) -> Candidates:
    """``samples`` policy responses per prompt with the task's gold reward (see :func:`sample_responses`)."""
    responses = sample_responses(lm, tokenizer, prompts, samples, max_new_tokens=max_new_tokens, seed=seed)
    items = [(prompt, response) for prompt, group in zip(prompts, responses, strict=True) for response in group]
    gold = torch.tensor([task.gold_reward(p, r) for p, r in items], dtype=torch.float64).view(len(prompts), samples)
    return Candidates(items, gold)
