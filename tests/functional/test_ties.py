"""Rao–Kupper and Davidson against float64 references, gradients (in θ and ν too), reductions to Bradley–Terry."""

import math

import naive
import pytest
import torch
from functional_testing import close, finite, gradcheck, t64
from hypothesis import given
from hypothesis import strategies as st

import rmreg
from rmreg import functional as F

thetas = st.floats(1.01, 20.0)
nus = st.floats(0.01, 20.0)
tied_pairs = st.integers(1, 8).flatmap(
    lambda n: st.tuples(
        st.lists(finite, min_size=n, max_size=n),
        st.lists(finite, min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n),
    )
)


def _untied(n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=torch.bool)


@given(tied_pairs, thetas)
def test_rao_kupper_matches_naive(pairs, theta):
    chosen, rejected, tie = pairs
    got = F.rao_kupper_loss(t64(chosen), t64(rejected), torch.tensor(tie), theta=theta, reduction="none")
    close(got, naive.rao_kupper(chosen, rejected, tie, theta))


@given(tied_pairs, nus)
def test_davidson_matches_naive(pairs, nu):
    chosen, rejected, tie = pairs
    got = F.davidson_loss(t64(chosen), t64(rejected), torch.tensor(tie), nu=nu, reduction="none")
    close(got, naive.davidson(chosen, rejected, tie, nu))


@given(finite, finite, thetas, nus)
def test_the_three_outcomes_have_probability_one(chosen, rejected, theta, nu):
    c, r, untied, tied = t64([chosen]), t64([rejected]), _untied(1), ~_untied(1)
    for loss, kwargs in ((F.rao_kupper_loss, {"theta": theta}), (F.davidson_loss, {"nu": nu})):
        total = sum(
            torch.exp(-loss(a, b, flag, **kwargs)) for a, b, flag in ((c, r, untied), (r, c, untied), (c, r, tied))
        )
        close(total, 1.0, 1e-12)


@given(tied_pairs, thetas, nus)
def test_a_tied_pair_does_not_care_which_response_is_chosen(pairs, theta, nu):
    chosen, rejected = t64(pairs[0]), t64(pairs[1])
    tied = ~_untied(len(chosen))
    for loss, kwargs in ((F.rao_kupper_loss, {"theta": theta}), (F.davidson_loss, {"nu": nu})):
        torch.testing.assert_close(
            loss(chosen, rejected, tied, **kwargs, reduction="none"),
            loss(rejected, chosen, tied, **kwargs, reduction="none"),
        )


@given(tied_pairs, thetas, nus, st.floats(-1e3, 1e3))
def test_shift_invariant(pairs, theta, nu, shift):
    chosen, rejected, tie = t64(pairs[0]), t64(pairs[1]), torch.tensor(pairs[2])
    for loss, kwargs in ((F.rao_kupper_loss, {"theta": theta}), (F.davidson_loss, {"nu": nu})):
        torch.testing.assert_close(
            loss(chosen + shift, rejected + shift, tie, **kwargs, reduction="none"),
            loss(chosen, rejected, tie, **kwargs, reduction="none"),
            rtol=1e-9,
            atol=1e-9,
        )


@given(st.integers(1, 8).flatmap(lambda n: st.tuples(*[st.lists(finite, min_size=n, max_size=n)] * 2)))
def test_untied_pairs_reduce_to_bradley_terry(pair):
    chosen, rejected = t64(pair[0]), t64(pair[1])
    untied = _untied(len(chosen))
    bt = F.bradley_terry_loss(chosen, rejected, reduction="none")
    torch.testing.assert_close(F.rao_kupper_loss(chosen, rejected, untied, theta=1.0, reduction="none"), bt)
    torch.testing.assert_close(F.davidson_loss(chosen, rejected, untied, nu=0.0, reduction="none"), bt)
    # and continuously: θ → 1, ν → 0
    for epsilon in (1e-3, 1e-6, 1e-9):
        close(
            F.rao_kupper_loss(chosen, rejected, untied, theta=1 + epsilon, reduction="none"), bt.tolist(), 2 * epsilon
        )
        close(F.davidson_loss(chosen, rejected, untied, nu=epsilon, reduction="none"), bt.tolist(), 2 * epsilon)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_in_rewards_and_tie_parameters(reduction):
    c, r = torch.randn(6) * 3, torch.randn(6) * 3
    tie = torch.tensor([True, False, True, False, False, True])
    gradcheck(lambda a, b, th: F.rao_kupper_loss(a, b, tie, theta=th, reduction=reduction), c, r, torch.tensor(1.8))
    gradcheck(lambda a, b, n: F.davidson_loss(a, b, tie, nu=n, reduction=reduction), c, r, torch.tensor(0.7))
    per_pair_theta, per_pair_nu = 1.05 + torch.rand(6) * 3, 0.05 + torch.rand(6) * 3
    gradcheck(lambda a, b, th: F.rao_kupper_loss(a, b, tie, theta=th, reduction=reduction), c, r, per_pair_theta)
    gradcheck(lambda a, b, n: F.davidson_loss(a, b, tie, nu=n, reduction=reduction), c, r, per_pair_nu)
    # θ close to 1, where log(θ² − 1) is steep
    c, r = c.double(), r.double()
    gradcheck(lambda th: F.rao_kupper_loss(c, r, tie, theta=th, reduction=reduction), torch.tensor(1.001))


def test_gradient_at_the_bradley_terry_boundary_is_finite_and_exact():
    difference = t64([-3.0, 0.0, 0.5, 8.0])
    theta = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    nu = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    untied = _untied(4)
    F.rao_kupper_loss(difference, torch.zeros(4, dtype=torch.float64), untied, theta=theta, reduction="sum").backward()
    F.davidson_loss(difference, torch.zeros(4, dtype=torch.float64), untied, nu=nu, reduction="sum").backward()
    # d/dθ −log σ(d − log θ) at θ = 1 is σ(−d); d/dν of Davidson's −log P(win) at ν = 0 is 1 / (2 cosh(d/2))
    close(theta.grad, torch.sigmoid(-difference).sum().item(), 1e-12)
    close(nu.grad, (1 / (2 * torch.cosh(difference / 2))).sum().item(), 1e-12)


@pytest.mark.parametrize("difference", [1e4, -1e4, 60.0, -60.0])
@pytest.mark.parametrize("theta", [1.0001, 1.5, 100.0])
def test_rao_kupper_extreme_differences_stay_exact(difference, theta):
    chosen = torch.tensor([difference, difference], requires_grad=True)
    tie = torch.tensor([False, True])
    loss = F.rao_kupper_loss(chosen, torch.zeros(2), tie, theta=theta, reduction="none")
    loss.sum().backward()
    assert torch.isfinite(chosen.grad).all()
    theta = float(torch.tensor(theta))  # the float32 value the loss sees (log(θ² − 1) is steep near 1)
    t = math.log(theta)
    win = difference - t if difference < 0 else math.log1p(math.exp(-(difference - t)))  # −log σ(d − t)
    tied = abs(difference) + t - math.log(theta**2 - 1)  # −log P(tie) when |d| ≫ 1
    torch.testing.assert_close(loss, torch.tensor([-win if difference < 0 else win, tied]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("difference", [1e4, -1e4, 60.0, -60.0])
@pytest.mark.parametrize("nu", [1e-6, 1.0, 1e3])
def test_davidson_extreme_differences_stay_exact(difference, nu):
    chosen = torch.tensor([difference, difference], requires_grad=True)
    tie = torch.tensor([False, True])
    loss = F.davidson_loss(chosen, torch.zeros(2), tie, nu=nu, reduction="none")
    loss.sum().backward()
    assert torch.isfinite(chosen.grad).all()
    expected = [max(-difference, 0.0), abs(difference) / 2 - math.log(nu)]  # when |d| ≫ 1 and |d| ≫ log ν
    torch.testing.assert_close(loss, torch.tensor(expected), rtol=1e-5, atol=1e-5)


def test_theta_close_to_one_on_a_tie_is_accurate():
    for epsilon in (1e-4, 1e-8, 1e-12):
        got = F.rao_kupper_loss(t64([0.3]), t64([0.0]), torch.tensor([True]), theta=1 + epsilon)
        close(got, naive.rao_kupper([0.3], [0.0], [True], 1 + epsilon)[0], 1e-9)


def test_bad_tie_parameters_are_rejected():
    c, r = torch.zeros(3), torch.zeros(3)
    untied, tied = _untied(3), torch.tensor([False, True, False])
    for theta in (0.99, -1.0, float("nan"), float("inf"), torch.tensor(0.5), torch.tensor([2.0, 0.9, 2.0])):
        with pytest.raises(ValueError, match="theta must be finite and >= 1"):
            F.rao_kupper_loss(c, r, untied, theta=theta)
    for nu in (-0.01, float("nan"), float("inf"), torch.tensor(-1.0)):
        with pytest.raises(ValueError, match="nu must be finite and >= 0"):
            F.davidson_loss(c, r, untied, nu=nu)
    with pytest.raises(ValueError, match="theta must be > 1 where pairs are tied"):
        F.rao_kupper_loss(c, r, tied, theta=1.0)
    with pytest.raises(ValueError, match="theta must be > 1 where pairs are tied"):
        F.rao_kupper_loss(c, r, tied, theta=torch.tensor([2.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="nu must be > 0 where pairs are tied"):
        F.davidson_loss(c, r, tied, nu=0.0)
    with rmreg.typechecking(False):
        with pytest.raises(ValueError, match=r"theta must be a number, a 0-d tensor or a tensor of shape \[pairs\]"):
            F.rao_kupper_loss(c, r, untied, theta=torch.ones(2) * 2)
        with pytest.raises(ValueError, match="nu must be a number or a floating-point tensor"):
            F.davidson_loss(c, r, untied, nu="0.5")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="theta must be a floating-point tensor"):
            F.rao_kupper_loss(c, r, untied, theta=torch.tensor(2))


def test_bad_tie_flags_are_rejected():
    c, r = torch.zeros(3), torch.zeros(3)
    for fn in (lambda t: F.rao_kupper_loss(c, r, t, theta=2.0), lambda t: F.davidson_loss(c, r, t, nu=1.0)):
        with rmreg.typechecking(False):
            with pytest.raises(ValueError, match="tie must be a bool tensor"):
                fn(torch.tensor([0.0, 1.0, 0.0]))
            with pytest.raises(ValueError, match=r"tie must have shape \[pairs\] = \(3,\)"):
                fn(torch.zeros(4, dtype=torch.bool))
        with pytest.raises(rmreg.TypeCheckError):
            fn(torch.tensor([0.0, 1.0, 0.0]))
        with pytest.raises(rmreg.TypeCheckError):
            fn(torch.zeros(4, dtype=torch.bool))


@pytest.mark.filterwarnings("ignore:Anomaly Detection has been enabled")
def test_boundary_parameters_on_untied_pairs_keep_gradients_finite():
    # θ = 1 (ν = 0) is allowed on an untied pair even when other pairs are tied; no NaN may leak into the gradient
    theta = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    nu = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    chosen, rejected, tie = t64([0.5, 0.5]), t64([0.0, 0.0]), torch.tensor([False, True])
    with torch.autograd.detect_anomaly():
        loss = F.rao_kupper_loss(chosen, rejected, tie, theta=theta) + F.davidson_loss(chosen, rejected, tie, nu=nu)
        loss.backward()
    assert torch.isfinite(theta.grad).all() and torch.isfinite(nu.grad).all()
