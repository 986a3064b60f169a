"""What every loss of rmreg.functional shares: input checks, reductions, pair order, float32 math for half inputs."""

import pytest
import torch
from functional_testing import pairs_of_vectors, seeds, t64
from hypothesis import given

import rmreg
from rmreg import functional as F


def _ties(c: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Tie flags that follow the pair when pairs are permuted (a function of the pair's own rewards)."""
    return (c - r).abs() < 5


# Every function that takes [pairs] chosen and rejected rewards (or log-probs).
PAIR_LOSSES = {
    "bt": lambda c, r, red: F.bradley_terry_loss(c, r, label_smoothing=0.1, reduction=red),
    "centering": lambda c, r, red: F.reward_centering(c, r, reduction=red),
    "sft": lambda c, r, red: F.sft_regularizer(-c.abs(), reduction=red),
    "dpo": lambda c, r, red: F.dpo_regularizer(-c.abs(), -r.abs(), -r.abs() / 2, -c.abs() / 2, reduction=red),
    "rao-kupper": lambda c, r, red: F.rao_kupper_loss(c, r, _ties(c, r), theta=1.7, reduction=red),
    "davidson": lambda c, r, red: F.davidson_loss(c, r, _ties(c, r), nu=0.6, reduction=red),
}
PAIR_FUNCTIONS = [
    lambda c, r: F.bradley_terry_loss(c, r),
    lambda c, r: F.reward_centering(c, r),
    lambda c, r: F.dpo_regularizer(c, r),
    lambda c, r: F.dpo_regularizer(c, r, c, r),
    lambda c, r: F.rao_kupper_loss(c, r, torch.zeros(c.shape, dtype=torch.bool), theta=2.0),
    lambda c, r: F.davidson_loss(c, r, torch.zeros(c.shape, dtype=torch.bool), nu=1.0),
]


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
@given(pair=pairs_of_vectors)
def test_reductions_agree_with_per_pair_losses(name, pair):
    chosen, rejected = t64(pair[0]), t64(pair[1])
    per_pair = PAIR_LOSSES[name](chosen, rejected, "none")
    assert per_pair.shape == chosen.shape
    torch.testing.assert_close(PAIR_LOSSES[name](chosen, rejected, "mean"), per_pair.mean())
    torch.testing.assert_close(PAIR_LOSSES[name](chosen, rejected, "sum"), per_pair.sum())


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
@given(pair=pairs_of_vectors, seed=seeds)
def test_permuting_pairs_permutes_losses(name, pair, seed):
    chosen, rejected = t64(pair[0]), t64(pair[1])
    order = torch.randperm(len(chosen), generator=torch.Generator().manual_seed(seed))
    loss = PAIR_LOSSES[name]
    torch.testing.assert_close(loss(chosen[order], rejected[order], "none"), loss(chosen, rejected, "none")[order])


@pytest.mark.parametrize("fn", PAIR_FUNCTIONS)
def test_shape_mismatch_is_a_clear_error(fn):
    with rmreg.typechecking(False), pytest.raises(ValueError, match="same shape"):
        fn(torch.zeros(3), torch.zeros(4))
    with pytest.raises(rmreg.TypeCheckError):
        fn(torch.zeros(3), torch.zeros(4))


@pytest.mark.parametrize("fn", PAIR_FUNCTIONS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_rejected(fn, bad):
    with pytest.raises(ValueError, match="NaN or infinite"):
        fn(torch.tensor([0.0, bad]), torch.zeros(2))
    with pytest.raises(ValueError, match="NaN or infinite"):
        F.sft_regularizer(torch.tensor([bad]))


@pytest.mark.parametrize("fn", PAIR_FUNCTIONS)
def test_empty_batch_and_wrong_rank_are_rejected(fn):
    with pytest.raises(ValueError, match="empty"):
        fn(torch.zeros(0), torch.zeros(0))
    with rmreg.typechecking(False), pytest.raises(ValueError, match=r"shape \[pairs\]"):
        fn(torch.zeros(2, 2), torch.zeros(2, 2))
    with rmreg.typechecking(False), pytest.raises(ValueError, match="floating-point"):
        fn(torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))


def _unreduced(loss):
    return lambda c, r: loss(c, r, "none")


ALL_LOSSES = {
    **{name: _unreduced(loss) for name, loss in PAIR_LOSSES.items()},
    "plackett-luce": lambda c, r: F.plackett_luce_loss(torch.stack([c, r, r.flip(0)], 1), reduction="none"),
    "listwise": lambda c, r: F.listwise_softmax_loss(c, torch.stack([r, r / 2], 1), reduction="none"),
    "rating-mse": lambda c, r: F.rating_mse_loss(c.unsqueeze(1), r.unsqueeze(1), reduction="none"),
    "ordinal": lambda c, r: F.ordinal_rating_loss(
        c.unsqueeze(1), torch.arange(len(c)).remainder(3).unsqueeze(1), torch.tensor([-0.5, 0.5]), reduction="none"
    ),
    "bsr": lambda c, r: F.batch_sum_regularizer(torch.stack([c, r])),
}


@pytest.mark.parametrize("name", sorted(ALL_LOSSES))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_compute_in_float32(name, dtype):
    chosen, rejected = (torch.randn(6) * 3).to(dtype), (torch.randn(6) * 3).to(dtype)
    loss = ALL_LOSSES[name](chosen, rejected)
    assert loss.dtype == torch.float32
    expected = ALL_LOSSES[name](chosen.double(), rejected.double())  # the same half values, in float64
    torch.testing.assert_close(loss, expected.float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(set(ALL_LOSSES) - {"bsr"}))  # BSR has no reduction: one scalar per batch
def test_unknown_reduction_is_rejected(name):
    call = {
        **PAIR_LOSSES,
        "plackett-luce": lambda c, r, red: F.plackett_luce_loss(torch.stack([c, r], 1), reduction=red),
        "listwise": lambda c, r, red: F.listwise_softmax_loss(c, r.unsqueeze(1), reduction=red),
        "rating-mse": lambda c, r, red: F.rating_mse_loss(c.unsqueeze(1), r.unsqueeze(1), reduction=red),
        "ordinal": lambda c, r, red: F.ordinal_rating_loss(
            c.unsqueeze(1), torch.zeros(len(c), 1, dtype=torch.long), torch.tensor([0.0]), reduction=red
        ),
    }[name]
    c, r = torch.zeros(2), torch.ones(2)
    with rmreg.typechecking(False), pytest.raises(ValueError, match="reduction must be one of"):
        call(c, r, "avg")
    with pytest.raises(rmreg.TypeCheckError):
        call(c, r, "avg")


def test_extreme_rewards_give_finite_loss_and_gradient():
    chosen = torch.tensor([1e4, -1e4, 1e4], requires_grad=True)
    rejected = torch.tensor([-1e4, 1e4, 1e4], requires_grad=True)
    loss = F.bradley_terry_loss(chosen, rejected, label_smoothing=0.1) + F.reward_centering(chosen, rejected)
    loss = loss + F.dpo_regularizer(chosen, rejected) + F.sft_regularizer(-chosen.abs())
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(chosen.grad).all() and torch.isfinite(rejected.grad).all()
