"""rmreg.task.best_of_n: the unbiased best-of-N estimator against enumerating every N-subset, KL, candidates."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("transformers")

from rmreg.task import PreferenceTask, task_tokenizer
from rmreg.task.best_of_n import best_of_n, bon_kl, powers_of_two, sample_candidates
from rmreg.testing import tiny_causal_lm


def _brute_force(proxy: torch.Tensor, gold: torch.Tensor, n: int) -> tuple[float, float]:
    """Mean over prompts and over every N-subset of (gold, proxy) of the subset's proxy-best sample."""
    golds, proxies = [], []
    for p, g in zip(proxy.tolist(), gold.tolist(), strict=True):
        picks = [max(subset, key=lambda i: p[i]) for subset in itertools.combinations(range(len(p)), n)]
        golds.append(sum(g[i] for i in picks) / len(picks))
        proxies.append(sum(p[i] for i in picks) / len(picks))
    return sum(golds) / len(golds), sum(proxies) / len(proxies)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 7), st.integers(0, 2**31 - 1))
def test_estimator_equals_enumerating_every_subset(prompts: int, samples: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    proxy = torch.randn(prompts, samples, generator=generator, dtype=torch.float64)  # ties have probability 0
    gold = torch.randn(prompts, samples, generator=generator, dtype=torch.float64)
    ns = list(range(1, samples + 1))
    curves = best_of_n(proxy, gold, ns)
    for n, g, p in zip(ns, curves["gold"], curves["proxy"], strict=True):
        assert (g, p) == pytest.approx(_brute_force(proxy, gold, n), abs=1e-9)


def test_estimator_ends_at_the_mean_and_the_proxy_favourite() -> None:
    proxy = torch.tensor([[0.3, -1.0, 2.0, 0.1], [1.0, 0.0, -1.0, 0.5]])
    gold = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    curves = best_of_n(proxy, gold, [1, 4])
    assert curves["gold"] == pytest.approx([gold.mean().item(), (3.0 + 5.0) / 2])
    assert curves["proxy"][1] == pytest.approx((2.0 + 1.0) / 2)


def test_bad_input_and_kl() -> None:
    assert bon_kl(1) == 0.0 and bon_kl(256) == pytest.approx(math.log(256) - 255 / 256)
    assert powers_of_two(64) == [1, 2, 4, 8, 16, 32, 64] and powers_of_two(12) == [1, 2, 4, 8, 12]
    with pytest.raises(ValueError, match="every N"):
        best_of_n(torch.zeros(2, 4), torch.zeros(2, 4), [5])
    with pytest.raises(ValueError, match=r"\[prompts, samples\]"):
        best_of_n(torch.zeros(2, 4), torch.zeros(2, 3), [1])
    with pytest.raises(ValueError, match="positive"):
        bon_kl(0)


def test_candidates_carry_the_gold_reward_and_a_proxy_curve() -> None:
    task, tokenizer = PreferenceTask(), task_tokenizer()
    lm = tiny_causal_lm("llama", vocab_size=len(tokenizer), max_positions=64).eval()
    prompts = task.prompts(2, seed=1)
    candidates = sample_candidates(lm, tokenizer, task, prompts, 4, max_new_tokens=8, seed=0)
    assert candidates.gold.shape == (2, 4) and len(candidates.items) == 8
    assert candidates.gold[1, 2].item() == task.gold_reward(*candidates.items[6])
    # A proxy that is the gold reward itself: best-of-N gold rises with N and ends at each prompt's best.
    curve = candidates.curve(lambda items: torch.tensor([task.gold_reward(p, r) for p, r in items]), [1, 2, 4])
    assert curve["n"] == [1, 2, 4] and curve["kl"][0] == 0.0
    assert curve["gold"][0] <= curve["gold"][1] + 1e-12 <= curve["gold"][2] + 2e-12
    assert curve["gold"][2] == pytest.approx(candidates.gold.max(dim=1).values.mean().item())
