"""RewardEnsemble: per-head rewards, Coste et al.'s aggregations against float64 loops, seeded bootstrap draws."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.autograd import gradcheck

import rmreg
from rmreg import RewardHead
from rmreg.heads import RewardEnsemble, aggregate_rewards, reward_spread


def naive_aggregate(rows: list[list[float]], how: str, penalty: float = 0.0) -> list[float]:
    out = []
    for row in rows:
        mean = sum(row) / len(row)
        variance = sum((r - mean) ** 2 for r in row) / len(row)
        out.append({"mean": mean, "min": min(row), "uncertainty_weighted": mean - penalty * variance}[how])
    return out


def naive_spread(rows: list[list[float]]) -> list[float]:
    return [math.sqrt(sum((r - sum(row) / len(row)) ** 2 for r in row) / len(row)) for row in rows]


matrices = st.integers(1, 5).flatmap(
    lambda heads: st.lists(
        st.lists(st.floats(-20, 20, allow_nan=False), min_size=heads, max_size=heads), min_size=1, max_size=6
    )
)


@given(rows=matrices, penalty=st.floats(0, 3))
def test_aggregations_match_float64_loops(rows, penalty):
    rewards = torch.tensor(rows, dtype=torch.float64)
    for how in ("mean", "min"):
        torch.testing.assert_close(aggregate_rewards(rewards, how), torch.tensor(naive_aggregate(rows, how)).double())
    uwo = aggregate_rewards(rewards, "uncertainty_weighted", penalty=penalty)
    torch.testing.assert_close(uwo, torch.tensor(naive_aggregate(rows, "uncertainty_weighted", penalty)).double())
    torch.testing.assert_close(reward_spread(rewards), torch.tensor(naive_spread(rows)).double())
    assert bool((aggregate_rewards(rewards, "min") <= aggregate_rewards(rewards, "mean") + 1e-12).all())
    assert bool((uwo <= aggregate_rewards(rewards, "mean") + 1e-12).all())


@pytest.mark.parametrize("how", ["mean", "min", "uncertainty_weighted"])
def test_aggregations_gradcheck(how):
    rewards = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    penalty = 0.7 if how == "uncertainty_weighted" else None
    assert gradcheck(lambda r: aggregate_rewards(r, how, penalty=penalty), (rewards,))
    assert gradcheck(reward_spread, (rewards + torch.arange(3.0, dtype=torch.float64),))


def test_bad_aggregations_are_named():
    rewards = torch.zeros(2, 3)
    with rmreg.typechecking(False), pytest.raises(ValueError, match="how must be one of"):
        aggregate_rewards(rewards, "max")
    with pytest.raises(rmreg.TypeCheckError):
        aggregate_rewards(rewards, "max")
    with pytest.raises(ValueError, match=r"penalty .* is required by how='uncertainty_weighted'"):
        aggregate_rewards(rewards, "uncertainty_weighted")
    with pytest.raises(ValueError, match="only by it"):
        aggregate_rewards(rewards, "mean", penalty=1.0)
    with pytest.raises(ValueError, match="penalty must be a number >= 0"):
        aggregate_rewards(rewards, "uncertainty_weighted", penalty=-1.0)


@given(kind=st.sampled_from(["linear", "mlp"]), bias=st.booleans(), rows=st.integers(1, 5), seed=st.integers(0, 99))
def test_one_head_ensemble_equals_the_plain_head(kind, bias, rows, seed):
    torch.manual_seed(seed)
    head = RewardHead(8, kind=kind, hidden=6, bias=bias, dropout=0.0)
    ensemble = RewardEnsemble(8, 1, kind=kind, hidden=6, bias=bias, dropout=0.0)
    ensemble.members[0].load_state_dict(head.state_dict())
    hidden = torch.randn(rows, 8)
    assert torch.equal(ensemble(hidden)[:, 0], head(hidden))
    assert torch.equal(ensemble.reward(hidden), head(hidden))
    for how in ("mean", "min"):
        assert torch.equal(aggregate_rewards(ensemble(hidden), how), head(hidden))
    assert torch.equal(reward_spread(ensemble(hidden)), torch.zeros(rows))


@given(heads=st.integers(2, 5), seed=st.integers(0, 99))
def test_identical_heads_aggregate_to_one_head(heads, seed):
    torch.manual_seed(seed)
    head = RewardHead(8, hidden=6, dropout=0.0)
    ensemble = RewardEnsemble(8, heads, hidden=6, dropout=0.0)
    for member in ensemble.members:
        member.load_state_dict(head.state_dict())
    hidden = torch.randn(3, 8)
    expected = head(hidden)
    torch.testing.assert_close(ensemble.reward(hidden), expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(aggregate_rewards(ensemble(hidden), "min"), expected)
    uwo = aggregate_rewards(ensemble(hidden), "uncertainty_weighted", penalty=5.0)
    torch.testing.assert_close(uwo, expected, rtol=1e-6, atol=1e-7)
    assert float(reward_spread(ensemble(hidden)).detach().abs().max()) < 1e-6


def test_members_are_initialized_apart_and_each_reads_the_same_state():
    ensemble = RewardEnsemble(8, 3, hidden=6, dropout=0.0)
    hidden = torch.randn(4, 8)
    outputs = ensemble(hidden)
    assert outputs.shape == (4, 3)
    for k, member in enumerate(ensemble.members):
        assert torch.equal(outputs[:, k], member(hidden))
    assert float(reward_spread(outputs).min()) > 0


@given(pairs=st.integers(1, 12), heads=st.integers(1, 4), seed=st.integers(0, 2**31), draws=st.integers(1, 3))
def test_bootstrap_draws_are_reproducible_with_a_seed(pairs, heads, seed, draws):
    first, second = (
        RewardEnsemble(4, heads, kind="linear", seed=seed),
        RewardEnsemble(4, heads, kind="linear", seed=seed),
    )
    a = [first.bootstrap_weights(pairs) for _ in range(draws)]
    torch.manual_seed(seed + 1)  # the global generator plays no part
    b = [second.bootstrap_weights(pairs) for _ in range(draws)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    for weights in a:  # the classic bootstrap: P draws with replacement, per head
        assert weights.shape == (pairs, heads) and weights.dtype == torch.float32
        assert torch.equal(weights.sum(0), torch.full((heads,), float(pairs)))
        assert torch.equal(weights, weights.round()) and bool((weights >= 0).all())
    first.reset_bootstrap()
    assert torch.equal(first.bootstrap_weights(pairs), a[0])


def test_bootstrap_kinds_and_seeds():
    multinomial = RewardEnsemble(4, 8, kind="linear", seed=1)
    state = torch.get_rng_state()
    draws = torch.stack([multinomial.bootstrap_weights(50) for _ in range(40)])
    assert torch.equal(torch.get_rng_state(), state)  # drawn from a generator of its own
    # each count is Binomial(P, 1/P): mean 1, variance (1 − 1/P)
    assert abs(float(draws.mean()) - 1.0) < 1e-6 and abs(float(draws.var()) - 0.98) < 0.1
    assert not torch.equal(draws[0], draws[1])
    assert not torch.equal(RewardEnsemble(4, 8, kind="linear", seed=2).bootstrap_weights(50), draws[0])
    poisson = torch.stack(
        [RewardEnsemble(4, 8, kind="linear", bootstrap="poisson", seed=s).bootstrap_weights(50) for s in range(20)]
    )
    assert abs(float(poisson.mean()) - 1.0) < 0.05 and abs(float(poisson.var()) - 1.0) < 0.1
    assert len({float(x) for x in poisson.sum(1).flatten()}) > 1  # resample sizes vary
    assert torch.equal(RewardEnsemble(4, 3, kind="linear", bootstrap=None).bootstrap_weights(5), torch.ones(5, 3))
    seeded = RewardEnsemble(4, 3, kind="linear", seed=0)
    seeded.bootstrap_weights(50)
    seeded.reset_bootstrap(seed=1)
    assert seeded.seed == 1
    assert torch.equal(seeded.bootstrap_weights(50), RewardEnsemble(4, 3, kind="linear", seed=1).bootstrap_weights(50))


def test_config_rebuilds_the_ensemble_and_bad_arguments_are_named():
    ensemble = RewardEnsemble(
        8, 3, kind="mlp", hidden=5, num_layers=2, dropout=0.2, bias=True, bootstrap="poisson", seed=7
    )
    rebuilt = RewardEnsemble(**ensemble.config())
    assert rebuilt.config() == ensemble.config()
    rebuilt.load_state_dict(ensemble.state_dict())
    assert ensemble.num_outputs == 3 and ensemble.output_layer.bias is not None
    for kwargs, message in [
        ({"num_heads": 0}, "num_heads must be a positive integer"),
        ({"num_heads": 2, "bootstrap": "jackknife"}, "bootstrap must be one of"),
        ({"num_heads": 2, "seed": 1.5}, "seed must be an int"),
        ({"num_heads": 2, "kind": "conv"}, "kind must be 'mlp' or 'linear'"),
    ]:
        with pytest.raises(ValueError, match=message):
            RewardEnsemble(8, **kwargs)
    with pytest.raises(ValueError, match="pairs must be a positive integer"):
        ensemble.bootstrap_weights(0)
    with pytest.raises(ValueError, match=r"outputs of this ensemble have shape \[batch, 3\]"):
        ensemble.combine(torch.zeros(2, 4))
