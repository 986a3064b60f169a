"""Plackett–Luce and the listwise softmax against float64 loops, gradients, masking and reductions to Bradley–Terry."""

import naive
import pytest
import torch
from functional_testing import close, finite, gradcheck, random_mask, seeds, t64
from hypothesis import given
from hypothesis import strategies as st

import rmreg
from rmreg import functional as F

sizes = st.tuples(st.integers(1, 5), st.integers(2, 6))


def _groups(groups: int, slots: int, seed: int, minimum: int = 2):
    """float64 rewards [groups, slots] (NaN in masked slots: they must not matter) and a mask with ≥ minimum."""
    generator = torch.Generator().manual_seed(seed)
    rewards = torch.randn(groups, slots, generator=generator, dtype=torch.float64) * 10
    mask = random_mask(groups, slots, minimum, generator)
    return rewards.masked_fill(~mask, float("nan")), mask, generator


@given(sizes, seeds, st.booleans())
def test_plackett_luce_matches_naive(size, seed, partial):
    rewards, mask, generator = _groups(*size, seed)
    num_ranked = torch.randint(1, size[1] + 1, (size[0],), generator=generator) if partial else None
    got = F.plackett_luce_loss(rewards, mask, num_ranked=num_ranked, reduction="none")
    expected = naive.plackett_luce(rewards.tolist(), mask.tolist(), None if num_ranked is None else num_ranked.tolist())
    close(got, expected)
    close(F.plackett_luce_loss(rewards, mask, num_ranked=num_ranked), naive.mean(expected))


@given(sizes, seeds)
def test_listwise_softmax_matches_naive(size, seed):
    rejected, mask, generator = _groups(size[0], size[1] - 1 or 1, seed, minimum=1)
    chosen = torch.randn(size[0], generator=generator, dtype=torch.float64) * 10
    got = F.listwise_softmax_loss(chosen, rejected, mask, reduction="none")
    close(got, naive.listwise_softmax(chosen.tolist(), rejected.tolist(), mask.tolist()))


@given(st.integers(1, 8).flatmap(lambda n: st.tuples(*[st.lists(finite, min_size=n, max_size=n)] * 2)))
def test_two_completions_are_bradley_terry(pair):
    chosen, rejected = t64(pair[0]), t64(pair[1])
    bt = F.bradley_terry_loss(chosen, rejected, reduction="none")
    torch.testing.assert_close(F.plackett_luce_loss(torch.stack([chosen, rejected], 1), reduction="none"), bt)
    torch.testing.assert_close(F.listwise_softmax_loss(chosen, rejected.unsqueeze(1), reduction="none"), bt)
    # two real completions among padding slots, anywhere in the row
    padded = torch.stack([torch.full_like(chosen, 7.0), chosen, torch.zeros_like(chosen), rejected], 1)
    mask = torch.tensor([False, True, False, True]).expand(len(chosen), 4)
    torch.testing.assert_close(F.plackett_luce_loss(padded, mask, reduction="none"), bt)


@given(sizes, seeds, st.integers(0, 3))
def test_moving_masked_slots_changes_nothing(size, seed, extra):
    rewards, mask, generator = _groups(*size, seed)
    expected = F.plackett_luce_loss(rewards, mask, reduction="none")
    slots = size[1] + extra  # a wider matrix, real completions at new random places, same order
    moved = torch.randn(size[0], slots, generator=generator, dtype=torch.float64) * 100
    moved_mask = torch.zeros(size[0], slots, dtype=torch.bool)
    for g in range(size[0]):
        real = rewards[g][mask[g]]
        places = torch.randperm(slots, generator=generator)[: len(real)].sort().values
        moved[g, places], moved_mask[g, places] = real, True
    torch.testing.assert_close(F.plackett_luce_loss(moved, moved_mask, reduction="none"), expected)


@given(sizes, seeds)
def test_listwise_ignores_the_order_of_the_rejected_set(size, seed):
    rejected, mask, generator = _groups(size[0], size[1], seed, minimum=1)
    chosen = torch.randn(size[0], generator=generator, dtype=torch.float64)
    order = torch.randperm(size[1], generator=generator)
    torch.testing.assert_close(
        F.listwise_softmax_loss(chosen, rejected[:, order], mask[:, order], reduction="none"),
        F.listwise_softmax_loss(chosen, rejected, mask, reduction="none"),
    )


@given(sizes, seeds)
def test_shift_of_a_group_changes_nothing(size, seed):
    rewards, mask, generator = _groups(*size, seed)
    shift = torch.randn(size[0], 1, generator=generator, dtype=torch.float64) * 1e3
    torch.testing.assert_close(
        F.plackett_luce_loss(rewards + shift, mask, reduction="none"),
        F.plackett_luce_loss(rewards, mask, reduction="none"),
        rtol=1e-9,
        atol=1e-9,
    )
    chosen, rejected = rewards[:, 0].nan_to_num(), rewards[:, 1:]
    listwise_mask = mask[:, 1:].clone()
    listwise_mask[:, 0] = True
    rejected = rejected.nan_to_num()
    torch.testing.assert_close(
        F.listwise_softmax_loss(chosen + shift[:, 0], rejected + shift, listwise_mask, reduction="none"),
        F.listwise_softmax_loss(chosen, rejected, listwise_mask, reduction="none"),
        rtol=1e-9,
        atol=1e-9,
    )


@given(sizes, seeds)
def test_partial_rankings(size, seed):
    rewards, mask, _ = _groups(*size, seed)
    full = F.plackett_luce_loss(rewards, mask, reduction="none")
    lengths = mask.sum(1)
    torch.testing.assert_close(F.plackett_luce_loss(rewards, mask, num_ranked=lengths - 1, reduction="none"), full)
    torch.testing.assert_close(F.plackett_luce_loss(rewards, mask, num_ranked=size[1], reduction="none"), full)
    # the top-1 ranking is the listwise softmax of the best against the rest
    best = torch.stack([rewards[g][mask[g]][0] for g in range(size[0])])
    rest = rewards.clone()
    rest_mask = mask.clone()
    for g in range(size[0]):
        rest_mask[g, mask[g].nonzero()[0]] = False
    torch.testing.assert_close(
        F.plackett_luce_loss(rewards, mask, num_ranked=1, reduction="none"),
        F.listwise_softmax_loss(best, rest, rest_mask, reduction="none"),
    )
    # more ranked positions never lower the loss (each adds a term ≥ 0)
    previous = torch.zeros(size[0], dtype=torch.float64)
    for ranked in range(1, size[1] + 1):
        current = F.plackett_luce_loss(rewards, mask, num_ranked=ranked, reduction="none")
        assert bool((current >= previous - 1e-12).all())
        previous = current


@given(sizes, seeds)
def test_reductions_agree_with_per_group_losses(size, seed):
    rewards, mask, _ = _groups(*size, seed)
    per_group = F.plackett_luce_loss(rewards, mask, reduction="none")
    assert per_group.shape == (size[0],)
    torch.testing.assert_close(F.plackett_luce_loss(rewards, mask, reduction="mean"), per_group.mean())
    torch.testing.assert_close(F.plackett_luce_loss(rewards, mask, reduction="sum"), per_group.sum())
    chosen, rejected = rewards[:, 0].nan_to_num(), rewards.nan_to_num()
    per_group = F.listwise_softmax_loss(chosen, rejected, mask, reduction="none")
    torch.testing.assert_close(F.listwise_softmax_loss(chosen, rejected, mask, reduction="mean"), per_group.mean())
    torch.testing.assert_close(F.listwise_softmax_loss(chosen, rejected, mask, reduction="sum"), per_group.sum())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck(reduction):
    rewards = torch.randn(4, 5) * 3
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 0, 1, 0, 1], [0, 1, 1, 0, 0], [1, 1, 0, 0, 1]], dtype=torch.bool)
    gradcheck(lambda r: F.plackett_luce_loss(r, mask, reduction=reduction), rewards)
    gradcheck(lambda r: F.plackett_luce_loss(r, reduction=reduction), rewards)
    ranked = torch.tensor([1, 2, 1, 5])
    gradcheck(lambda r: F.plackett_luce_loss(r, mask, num_ranked=ranked, reduction=reduction), rewards)
    chosen = torch.randn(4) * 3
    gradcheck(lambda c, r: F.listwise_softmax_loss(c, r, mask, reduction=reduction), chosen, rewards)


def test_masked_slots_get_no_gradient_and_may_hold_nan():
    rewards = torch.tensor([[1.0, float("nan"), 0.5, float("nan")], [2.0, 1.0, float("inf"), -1.0]], requires_grad=True)
    mask = torch.tensor([[True, False, True, False], [True, True, False, True]])
    loss = F.plackett_luce_loss(rewards, mask) + F.listwise_softmax_loss(torch.zeros(2), rewards, mask)
    loss.backward()
    assert torch.isfinite(loss)
    assert bool((rewards.grad[~mask] == 0).all()) and bool(torch.isfinite(rewards.grad).all())


def test_extreme_rewards_give_finite_exact_losses():
    best_first = torch.tensor([[1e4, 0.0, -1e4]], requires_grad=True)
    loss = F.plackett_luce_loss(best_first) + F.plackett_luce_loss(best_first.flip(1))
    loss.backward()
    close(loss, 3e4)  # ≈ 0 for the right order; 2e4 + 1e4 for the reverse
    assert torch.isfinite(best_first.grad).all()
    close(F.listwise_softmax_loss(torch.tensor([-1e4]), torch.tensor([[1e4, 0.0]])), 2e4)


def test_bad_inputs_are_rejected():
    rewards = torch.zeros(3, 4)
    one_real = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    with pytest.raises(ValueError, match=r"groups \[1\] have too few completions \(sizes \[1\], at least 2"):
        F.plackett_luce_loss(rewards, one_real)
    with pytest.raises(ValueError, match=r"groups \[0, 1\] have too few completions"):
        F.plackett_luce_loss(torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"NaN or infinite values \(first at row 2, column 3\)"):
        F.plackett_luce_loss(rewards.index_put((torch.tensor([2]), torch.tensor([3])), torch.tensor(float("nan"))))
    with pytest.raises(ValueError, match="num_ranked must be >= 1"):
        F.plackett_luce_loss(rewards, num_ranked=0)
    with pytest.raises(ValueError, match=r"groups \[1\] have too few rejected completions \(sizes \[0\]"):
        F.listwise_softmax_loss(torch.zeros(3), rewards, one_real & torch.tensor([[True], [False], [True]]))
    with rmreg.typechecking(False):
        with pytest.raises(ValueError, match=r"rewards must have shape \[groups, K\]"):
            F.plackett_luce_loss(torch.zeros(4))
        with pytest.raises(ValueError, match=r"mask must have the shape of rewards"):
            F.plackett_luce_loss(rewards, one_real[:, :3])
        with pytest.raises(ValueError, match="mask must be a bool tensor"):
            F.plackett_luce_loss(rewards, one_real.float())
        with pytest.raises(ValueError, match=r"num_ranked must be an int or an integer tensor of shape \[groups\]"):
            F.plackett_luce_loss(rewards, num_ranked=torch.ones(2, dtype=torch.long))
        with pytest.raises(ValueError, match="same number of groups"):
            F.listwise_softmax_loss(torch.zeros(2), rewards)
    with pytest.raises(rmreg.TypeCheckError):
        F.plackett_luce_loss(torch.zeros(4))
    with pytest.raises(rmreg.TypeCheckError):
        F.plackett_luce_loss(rewards, one_real[:, :3])
    with pytest.raises(rmreg.TypeCheckError):
        F.listwise_softmax_loss(torch.zeros(2), rewards)


@pytest.mark.filterwarnings("ignore:Anomaly Detection has been enabled")
def test_no_nan_anywhere_in_the_backward_pass():
    # trailing and leading masked slots: every intermediate gradient stays finite (anomaly mode checks each one)
    rewards = torch.tensor([[1.0, 0.5, 0.0, 0.0], [0.0, 2.0, 1.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[True, True, False, False], [False, True, True, False]])
    with torch.autograd.detect_anomaly():
        F.plackett_luce_loss(rewards, mask, num_ranked=1).backward()
        F.listwise_softmax_loss(rewards[:, 0], rewards[:, 1:], mask[:, 1:]).backward()
    assert torch.isfinite(rewards.grad).all()
