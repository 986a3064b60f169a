"""Bradley–Terry and reward centering against float64 references, gradients and invariants."""

import math

import naive
import pytest
import torch
from functional_testing import close, finite, gradcheck, pairs_of_vectors, t64, vectors
from hypothesis import given
from hypothesis import strategies as st

import rmreg
from rmreg import functional as F

LOG2 = math.log(2.0)
smoothing = st.floats(0.0, 0.5)


@given(pairs_of_vectors, st.lists(finite, min_size=8, max_size=8), smoothing)
def test_bradley_terry_matches_naive(pair, margins, eps):
    chosen, rejected = pair
    margin = margins[: len(chosen)]
    got = F.bradley_terry_loss(t64(chosen), t64(rejected), margin=t64(margin), label_smoothing=eps, reduction="none")
    close(got, naive.bradley_terry(chosen, rejected, margin, eps))
    close(F.bradley_terry_loss(t64(chosen), t64(rejected)), naive.mean(naive.bradley_terry(chosen, rejected)))


@given(pairs_of_vectors)
def test_centering_matches_naive(pair):
    chosen, rejected = pair
    close(F.reward_centering(t64(chosen), t64(rejected), reduction="none"), naive.centering(chosen, rejected))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck(reduction):
    c, r, m = torch.randn(5) * 3, torch.randn(5) * 3, torch.rand(5)
    gradcheck(lambda a, b: F.bradley_terry_loss(a, b, reduction=reduction), c, r)
    gradcheck(lambda a, b, mm: F.bradley_terry_loss(a, b, margin=mm, label_smoothing=0.1, reduction=reduction), c, r, m)
    gradcheck(lambda a, b: F.reward_centering(a, b, reduction=reduction), c, r)


@given(pairs_of_vectors, st.floats(-1e3, 1e3))
def test_bradley_terry_shift_invariant(pair, shift):
    chosen, rejected = t64(pair[0]), t64(pair[1])
    close(F.bradley_terry_loss(chosen + shift, rejected + shift), F.bradley_terry_loss(chosen, rejected).item(), 1e-9)


@given(finite, st.floats(1e-3, 10.0))
def test_bradley_terry_strictly_decreasing_in_difference(difference, step):
    lower = F.bradley_terry_loss(t64([difference]), t64([0.0]))
    higher = F.bradley_terry_loss(t64([difference + step]), t64([0.0]))
    assert higher < lower


@given(vectors)
def test_bradley_terry_is_log2_at_equal_rewards(values):
    close(F.bradley_terry_loss(t64(values), t64(values), reduction="none"), [LOG2] * len(values), 1e-12)


@given(pairs_of_vectors)
def test_zero_margin_and_zero_smoothing_reduce_to_bradley_terry(pair):
    chosen, rejected = t64(pair[0]), t64(pair[1])
    plain = F.bradley_terry_loss(chosen, rejected, reduction="none")
    torch.testing.assert_close(
        F.bradley_terry_loss(chosen, rejected, margin=torch.zeros_like(chosen), reduction="none"), plain
    )
    torch.testing.assert_close(F.bradley_terry_loss(chosen, rejected, margin=0.0, reduction="none"), plain)
    torch.testing.assert_close(F.bradley_terry_loss(chosen, rejected, label_smoothing=0.0, reduction="none"), plain)


@given(pairs_of_vectors)
def test_half_smoothing_ignores_the_order_of_the_pair(pair):
    chosen, rejected = t64(pair[0]), t64(pair[1])
    forward = F.bradley_terry_loss(chosen, rejected, label_smoothing=0.5, reduction="none")
    torch.testing.assert_close(forward, F.bradley_terry_loss(rejected, chosen, label_smoothing=0.5, reduction="none"))


def test_hyperparameters_out_of_range():
    c, r = torch.zeros(2), torch.zeros(2)
    for eps in (-0.1, 0.51, float("nan")):
        with pytest.raises(ValueError, match="label_smoothing"):
            F.bradley_terry_loss(c, r, label_smoothing=eps)
    with rmreg.typechecking(False), pytest.raises(ValueError, match="margin"):
        F.bradley_terry_loss(c, r, margin=torch.zeros(3))
    with pytest.raises(ValueError, match="margin"):
        F.bradley_terry_loss(c, r, margin=float("nan"))
