"""Batch-wise sum-to-zero regularization against a float64 loop, its gradient, and how it relates to centering."""

import naive
import pytest
import torch
from functional_testing import close, finite, gradcheck, pairs_of_vectors, t64
from hypothesis import given
from hypothesis import strategies as st

import rmreg
from rmreg import functional as F


@given(st.lists(finite, min_size=1, max_size=24), st.sampled_from([(-1,), (2, -1), (1, -1, 1)]))
def test_matches_naive_for_any_shape(values, shape):
    if len(shape) > 1 and len(values) % 2:
        values = values[:-1] or [0.0, 0.0]
    got = F.batch_sum_regularizer(t64(values).reshape(shape))
    assert got.shape == ()
    close(got, naive.squared_mean(values))


@given(pairs_of_vectors)
def test_per_pair_centering_bounds_it(pair):
    chosen, rejected = t64(pair[0]), t64(pair[1])
    bsr = F.batch_sum_regularizer(torch.cat([chosen, rejected]))
    # mean of (r_c + r_r)² = 4 · mean of squared pair means ≥ 4 · (batch mean)²: centering is the stronger penalty
    assert F.reward_centering(chosen, rejected) >= 4 * bsr - 1e-9
    same_mean = torch.full_like(chosen, chosen.mean().item())
    close(F.reward_centering(same_mean, same_mean), (4 * F.batch_sum_regularizer(same_mean)).item(), 1e-9)


@given(st.lists(finite, min_size=2, max_size=16))
def test_zero_for_any_spread_around_zero(values):
    centred = t64(values) - t64(values).mean()
    close(F.batch_sum_regularizer(centred), 0.0, 1e-12)


def test_gradcheck_and_gradient():
    gradcheck(F.batch_sum_regularizer, torch.randn(3, 4))
    rewards = torch.tensor([1.0, 2.0, 3.0, 6.0], requires_grad=True)
    F.batch_sum_regularizer(rewards).backward()
    close(rewards.grad, [2 * 3.0 / 4] * 4)  # d/dr_i (mean)² = 2·mean / N


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_bad_inputs_are_rejected(bad):
    with pytest.raises(ValueError, match="NaN or infinite"):
        F.batch_sum_regularizer(torch.tensor([0.0, bad]))
    with pytest.raises(ValueError, match="empty"):
        F.batch_sum_regularizer(torch.zeros(0))
    with rmreg.typechecking(False), pytest.raises(ValueError, match="floating-point"):
        F.batch_sum_regularizer(torch.zeros(3, dtype=torch.long))
    with pytest.raises(rmreg.TypeCheckError):
        F.batch_sum_regularizer(torch.zeros(3, dtype=torch.long))
