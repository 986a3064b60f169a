"""Rating losses (squared error, ordinal logistic) against float64 loops, gradients, masking and invariants."""

import math

import naive
import pytest
import torch
from functional_testing import close, gradcheck, random_mask, seeds, t64
from hypothesis import given
from hypothesis import strategies as st

import rmreg
from rmreg import functional as F

sizes = st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(2, 6))  # items, attributes, levels


def _ratings(items: int, attributes: int, levels: int, seed: int, shared: bool = True):
    """Scores, levels, increasing thresholds ([L−1] or [A, L−1]) and a mask (≥ 1 observed), float64."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(items, attributes, generator=generator, dtype=torch.float64) * 3
    level = torch.randint(0, levels, (items, attributes), generator=generator)
    rows = 1 if shared else attributes
    steps = 0.05 + torch.rand(rows, levels - 1, generator=generator, dtype=torch.float64) * 2
    thresholds = (steps.cumsum(-1) - steps.sum(-1, keepdim=True) / 2).squeeze(0) if shared else steps.cumsum(-1) - 2
    mask = random_mask(items, attributes, 0, generator)
    mask[0, 0] = True
    return scores, level, thresholds, mask, generator


def _observed(per_rating: list[list[float]], mask: torch.Tensor) -> list[float]:
    flat = [value for row in per_rating for value in row]
    return [value for value, observed in zip(flat, mask.flatten().tolist(), strict=True) if observed]


@given(sizes, seeds)
def test_rating_mse_matches_naive(size, seed):
    scores, _, _, mask, generator = _ratings(*size, seed)
    target = (torch.randn(scores.shape, generator=generator, dtype=torch.float64) * 2).masked_fill(~mask, float("nan"))
    expected = naive.rating_squared_errors(scores.tolist(), target.tolist(), mask.tolist())
    close(F.rating_mse_loss(scores, target, mask, reduction="none"), expected)
    observed = _observed(expected, mask)
    close(F.rating_mse_loss(scores, target, mask), naive.mean(observed))
    close(F.rating_mse_loss(scores, target, mask, reduction="sum"), sum(observed))


@given(sizes, seeds, st.booleans())
def test_ordinal_matches_naive(size, seed, shared):
    scores, level, thresholds, mask, _ = _ratings(*size, seed, shared=shared)
    per_attribute = thresholds.expand(size[1], -1).tolist()
    expected = naive.ordinal_logistic(
        scores.tolist(), level.masked_fill(~mask, -1).tolist(), per_attribute, mask.tolist()
    )
    close(F.ordinal_rating_loss(scores, level.masked_fill(~mask, -1), thresholds, mask, reduction="none"), expected)
    observed = _observed(expected, mask)
    close(F.ordinal_rating_loss(scores, level, thresholds, mask), naive.mean(observed))


@given(sizes, seeds, st.floats(-1e3, 1e3))
def test_ordinal_level_probabilities_sum_to_one_and_shift_together(size, seed, shift):
    scores, _, thresholds, _, _ = _ratings(*size, seed)
    total = sum(
        torch.exp(-F.ordinal_rating_loss(scores, torch.full(scores.shape, lv), thresholds, reduction="none"))
        for lv in range(size[2])
    )
    close(total, torch.ones(scores.shape).tolist(), 1e-12)
    level = torch.randint(0, size[2], scores.shape)
    torch.testing.assert_close(
        F.ordinal_rating_loss(scores + shift, level, thresholds + shift, reduction="none"),
        F.ordinal_rating_loss(scores, level, thresholds, reduction="none"),
        rtol=1e-9,
        atol=1e-9,
    )


@given(st.lists(st.floats(-30, 30), min_size=1, max_size=8), st.floats(-5, 5))
def test_two_levels_are_logistic_regression(scores, cut):
    f = t64(scores).unsqueeze(1)
    level = torch.tensor([[i % 2] for i in range(len(scores))])
    got = F.ordinal_rating_loss(f, level, t64([cut]), reduction="none").squeeze(1)
    sign = 2 * level.squeeze(1).double() - 1  # level 1: −log σ(f − b); level 0: −log σ(b − f)
    torch.testing.assert_close(got, -torch.nn.functional.logsigmoid(sign * (f.squeeze(1) - cut)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck(reduction):
    scores, level, thresholds, mask, generator = _ratings(5, 3, 4, seed=3)
    per_attribute = _ratings(5, 3, 4, seed=3, shared=False)[2]
    target = torch.randn(5, 3, generator=generator)
    gradcheck(lambda p, t: F.rating_mse_loss(p, t, mask, reduction=reduction), scores, target)
    gradcheck(lambda p, b: F.ordinal_rating_loss(p, level, b, mask, reduction=reduction), scores, thresholds)
    gradcheck(lambda p, b: F.ordinal_rating_loss(p, level, b, reduction=reduction), scores, per_attribute)


def test_missing_ratings_get_no_gradient():
    scores = torch.randn(3, 2, requires_grad=True)
    mask = torch.tensor([[True, False], [False, True], [True, True]])
    target = torch.tensor([[1.0, float("nan")], [float("nan"), 2.0], [0.0, 1.0]])
    level = torch.tensor([[1, -5], [99, 0], [2, 1]])
    loss = F.rating_mse_loss(scores, target, mask) + F.ordinal_rating_loss(
        scores, level, torch.tensor([-1.0, 1.0]), mask
    )
    loss.backward()
    assert torch.isfinite(loss)
    assert bool((scores.grad[~mask] == 0).all()) and bool((scores.grad[mask] != 0).all())
    unreduced = F.rating_mse_loss(scores, target, mask, reduction="none")
    assert unreduced.shape == (3, 2) and bool((unreduced[~mask] == 0).all())
    torch.testing.assert_close(F.rating_mse_loss(scores, target, mask), unreduced.sum() / 4)


def test_extreme_scores_give_finite_exact_losses():
    scores = torch.tensor([[1e4, -1e4, 1e4]], requires_grad=True)
    loss = F.ordinal_rating_loss(scores, torch.tensor([[2, 2, 1]]), torch.tensor([-1.0, 1.0]), reduction="none")
    loss.sum().backward()
    close(loss, [[0.0, 1e4 + 1, 1e4 - 1 - math.log(1 - math.exp(-2))]])  # level 1: σ(1 − f) − σ(−1 − f)
    assert torch.isfinite(scores.grad).all()


def test_bad_inputs_are_rejected():
    scores, level, cuts = torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), torch.tensor([-1.0, 1.0])
    with pytest.raises(ValueError, match=r"level 3 at row 1, column 2 is outside \[0, 3\)"):
        F.ordinal_rating_loss(scores, level.index_put((torch.tensor([1]), torch.tensor([2])), torch.tensor(3)), cuts)
    with pytest.raises(ValueError, match="strictly increasing"):
        F.ordinal_rating_loss(scores, level, torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match="thresholds contain NaN"):
        F.ordinal_rating_loss(scores, level, torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match=r"predicted contains NaN or infinite values \(first at row 0, column 1\)"):
        F.rating_mse_loss(scores.index_fill(1, torch.tensor([1]), float("inf")), scores)
    with pytest.raises(ValueError, match=r"target contains NaN"):
        F.rating_mse_loss(scores, scores.index_fill(1, torch.tensor([1]), float("nan")))
    with pytest.raises(ValueError, match="no rating as observed"):
        F.rating_mse_loss(scores, scores, torch.zeros(2, 3, dtype=torch.bool))
    with rmreg.typechecking(False):
        with pytest.raises(ValueError, match="predicted and target must have the same shape"):
            F.rating_mse_loss(scores, torch.zeros(2, 2))
        with pytest.raises(ValueError, match=r"thresholds must have shape \[levels - 1\]"):
            F.ordinal_rating_loss(scores, level, torch.zeros(2, 2))
        with pytest.raises(ValueError, match="level must be an integer tensor"):
            F.ordinal_rating_loss(scores, level.float(), cuts)
        with pytest.raises(ValueError, match="level must have the shape of predicted"):
            F.ordinal_rating_loss(scores, level[:, :2], cuts)
        with pytest.raises(ValueError, match="mask must have the shape of predicted"):
            F.rating_mse_loss(scores, scores, torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(rmreg.TypeCheckError):
        F.rating_mse_loss(scores, torch.zeros(2, 2))
    with pytest.raises(rmreg.TypeCheckError):
        F.ordinal_rating_loss(scores, level, torch.zeros(2, 2))
    with pytest.raises(rmreg.TypeCheckError):
        F.ordinal_rating_loss(scores, level.float(), cuts)
