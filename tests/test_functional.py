"""rmreg.functional against independent float64 references, gradcheck, invariants and bad inputs."""

import math

import naive
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import rmreg
from rmreg import functional as F

LOG2 = math.log(2.0)
finite = st.floats(-30.0, 30.0, allow_nan=False, allow_infinity=False)
vectors = st.integers(1, 8).flatmap(lambda n: st.lists(finite, min_size=n, max_size=n))
pairs_of_vectors = st.integers(1, 8).flatmap(
    lambda n: st.tuples(st.lists(finite, min_size=n, max_size=n), st.lists(finite, min_size=n, max_size=n))
)
logps = st.floats(-200.0, 0.0, allow_nan=False)
smoothing = st.floats(0.0, 0.5)
betas = st.floats(0.01, 2.0)


def t64(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def close(actual: torch.Tensor, expected: list[float] | float, tol: float = 1e-6) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), rtol=tol, atol=tol)


# --- agreement with the naive float64 formulas (to 1e-6) ---------------------------------------------------


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


@given(st.lists(logps, min_size=1, max_size=8), betas, st.booleans())
def test_sft_matches_naive(values, beta, log_sigmoid):
    got = F.sft_regularizer(t64(values), beta=beta, log_sigmoid=log_sigmoid, reduction="none")
    close(got, naive.sft(values, beta, log_sigmoid))


@given(st.integers(1, 6).flatmap(lambda n: st.lists(st.lists(logps, min_size=4, max_size=4), min_size=n, max_size=n)))
def test_dpo_matches_naive(rows):
    chosen, rejected, ref_chosen, ref_rejected = (list(column) for column in zip(*rows, strict=True))
    got = F.dpo_regularizer(t64(chosen), t64(rejected), t64(ref_chosen), t64(ref_rejected), beta=0.1, reduction="none")
    close(got, naive.dpo(chosen, rejected, ref_chosen, ref_rejected, 0.1))
    got_noref = F.dpo_regularizer(t64(chosen), t64(rejected), beta=0.3, reduction="none")
    close(got_noref, naive.dpo(chosen, rejected, None, None, 0.3))


def _random_labels(rows: int, seq: int, vocab: int, generator: torch.Generator) -> torch.Tensor:
    labels = torch.randint(0, vocab, (rows, seq), generator=generator)
    prompt_lengths = torch.randint(1, seq - 1, (rows,), generator=generator)
    for row, prompt_length in enumerate(prompt_lengths.tolist()):
        labels[row, :prompt_length] = -100
    return labels


@given(st.integers(1, 4), st.integers(3, 9), st.integers(2, 7), st.integers(0, 2**16))
def test_sequence_logprobs_matches_naive(rows, seq, vocab, seed):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, seq, vocab, generator=generator, dtype=torch.float64) * 3
    labels = _random_labels(rows, seq, vocab, generator)
    close(F.sequence_logprobs(logits, labels), naive.sequence_logprobs(logits.tolist(), labels.tolist()))


# --- gradients ---------------------------------------------------------------------------------------------


def _gradcheck(fn, *tensors: torch.Tensor) -> None:
    inputs = tuple(t.detach().to(torch.float64).requires_grad_(True) for t in tensors)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_every_loss(reduction):
    c, r, m = torch.randn(5) * 3, torch.randn(5) * 3, torch.rand(5)
    ref_c, ref_r = -torch.rand(5) * 20, -torch.rand(5) * 20
    _gradcheck(lambda a, b: F.bradley_terry_loss(a, b, reduction=reduction), c, r)
    _gradcheck(
        lambda a, b, mm: F.bradley_terry_loss(a, b, margin=mm, label_smoothing=0.1, reduction=reduction), c, r, m
    )
    _gradcheck(lambda a, b: F.reward_centering(a, b, reduction=reduction), c, r)
    _gradcheck(lambda a: F.sft_regularizer(a, beta=0.1, reduction=reduction), ref_c)
    _gradcheck(lambda a: F.sft_regularizer(a, log_sigmoid=False, reduction=reduction), ref_c)
    _gradcheck(lambda a, b, rc, rr: F.dpo_regularizer(a, b, rc, rr, reduction=reduction), ref_c, ref_r, ref_r, ref_c)
    _gradcheck(lambda a, b: F.dpo_regularizer(a, b, reduction=reduction), ref_c, ref_r)


def test_gradcheck_sequence_logprobs():
    labels = torch.tensor([[-100, 2, 0, -100], [-100, -100, 1, 3]])
    _gradcheck(lambda logits: F.sequence_logprobs(logits, labels), torch.randn(2, 4, 5))


def test_extreme_rewards_give_finite_loss_and_gradient():
    chosen = torch.tensor([1e4, -1e4, 1e4], requires_grad=True)
    rejected = torch.tensor([-1e4, 1e4, 1e4], requires_grad=True)
    loss = F.bradley_terry_loss(chosen, rejected, label_smoothing=0.1) + F.reward_centering(chosen, rejected)
    loss = loss + F.dpo_regularizer(chosen, rejected) + F.sft_regularizer(-chosen.abs())
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(chosen.grad).all() and torch.isfinite(rejected.grad).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_compute_in_float32(dtype):
    chosen, rejected = torch.randn(6).to(dtype), torch.randn(6).to(dtype)
    loss = F.bradley_terry_loss(chosen, rejected, reduction="none")
    assert loss.dtype == torch.float32
    close(loss, naive.bradley_terry(chosen.double().tolist(), rejected.double().tolist()), tol=1e-6)
    logits = (torch.randn(2, 5, 300) * 4).to(dtype)
    labels = torch.tensor([[-100, 3, 200, 299, 1], [-100, -100, 0, 7, -100]])
    got = F.sequence_logprobs(logits, labels)
    assert got.dtype == torch.float32
    close(got, naive.sequence_logprobs(logits.double().tolist(), labels.tolist()), tol=1e-4)


# --- invariants (hypothesis) -------------------------------------------------------------------------------


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


@given(st.lists(logps, min_size=1, max_size=8), st.lists(logps, min_size=8, max_size=8), betas)
def test_dpo_with_policy_equal_to_reference_is_log2(policy, rejected, beta):
    chosen, rejected = t64(policy), t64(rejected[: len(policy)])
    loss = F.dpo_regularizer(chosen, rejected, chosen.clone(), rejected.clone(), beta=beta, reduction="none")
    close(loss, [LOG2] * len(policy), 1e-9)


@given(st.lists(logps, min_size=2, max_size=8), betas)
def test_reference_free_dpo_equals_dpo_with_zero_reference(values, beta):
    chosen, rejected = t64(values), t64(values[::-1])
    zero = torch.zeros_like(chosen)
    torch.testing.assert_close(
        F.dpo_regularizer(chosen, rejected, beta=beta), F.dpo_regularizer(chosen, rejected, zero, zero, beta=beta)
    )


@given(logps, st.floats(1e-3, 50.0), betas, st.booleans())
def test_sft_decreasing_in_logprob_and_positive(value, step, beta, log_sigmoid):
    assume(value + step <= 0.0)
    lower = F.sft_regularizer(t64([value]), beta=beta, log_sigmoid=log_sigmoid)
    higher = F.sft_regularizer(t64([value + step]), beta=beta, log_sigmoid=log_sigmoid)
    assert higher < lower
    assert higher >= 0.0


@given(st.integers(1, 3), st.integers(3, 7), st.integers(1, 4), st.integers(0, 2**16))
def test_sequence_logprobs_ignores_padding_and_prompt_logits(rows, seq, extra, seed):
    generator = torch.Generator().manual_seed(seed)
    vocab = 6
    logits = torch.randn(rows, seq, vocab, generator=generator, dtype=torch.float64)
    labels = _random_labels(rows, seq, vocab, generator)
    expected = F.sequence_logprobs(logits, labels)
    # appending padding columns (any logits, label -100) changes nothing
    padded_logits = torch.cat([logits, torch.randn(rows, extra, vocab, generator=generator, dtype=torch.float64)], 1)
    padded_labels = torch.cat([labels, torch.full((rows, extra), -100)], 1)
    torch.testing.assert_close(F.sequence_logprobs(padded_logits, padded_labels), expected)
    # logits at positions whose next label is ignored (prompt, padding) change nothing either
    unused = torch.cat([labels[:, 1:] == -100, torch.ones(rows, 1, dtype=torch.bool)], 1)
    noisy = torch.where(unused.unsqueeze(-1), logits + 100 * torch.randn_like(logits), logits)
    torch.testing.assert_close(F.sequence_logprobs(noisy, labels), expected)


LOSSES = {
    "bt": lambda c, r: F.bradley_terry_loss(c, r, label_smoothing=0.1, reduction="none"),
    "centering": lambda c, r: F.reward_centering(c, r, reduction="none"),
    "sft": lambda c, r: F.sft_regularizer(-c.abs(), reduction="none"),
    "dpo": lambda c, r: F.dpo_regularizer(-c.abs(), -r.abs(), -r.abs() / 2, -c.abs() / 2, reduction="none"),
}
REDUCE = {
    "bt": lambda c, r, red: F.bradley_terry_loss(c, r, label_smoothing=0.1, reduction=red),
    "centering": lambda c, r, red: F.reward_centering(c, r, reduction=red),
    "sft": lambda c, r, red: F.sft_regularizer(-c.abs(), reduction=red),
    "dpo": lambda c, r, red: F.dpo_regularizer(-c.abs(), -r.abs(), -r.abs() / 2, -c.abs() / 2, reduction=red),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
@given(pair=pairs_of_vectors)
def test_reductions_agree_with_per_pair_losses(name, pair):
    chosen, rejected = t64(pair[0]), t64(pair[1])
    per_pair = REDUCE[name](chosen, rejected, "none")
    torch.testing.assert_close(REDUCE[name](chosen, rejected, "mean"), per_pair.mean())
    torch.testing.assert_close(REDUCE[name](chosen, rejected, "sum"), per_pair.sum())


@pytest.mark.parametrize("name", sorted(LOSSES))
@given(pair=pairs_of_vectors, seed=st.integers(0, 2**16))
def test_permuting_pairs_permutes_losses(name, pair, seed):
    chosen, rejected = t64(pair[0]), t64(pair[1])
    order = torch.randperm(len(chosen), generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(LOSSES[name](chosen[order], rejected[order]), LOSSES[name](chosen, rejected)[order])


# --- bad input ----------------------------------------------------------------------------------------------

PAIR_FUNCTIONS = [
    lambda c, r: F.bradley_terry_loss(c, r),
    lambda c, r: F.reward_centering(c, r),
    lambda c, r: F.dpo_regularizer(c, r),
    lambda c, r: F.dpo_regularizer(c, r, c, r),
]


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


def test_hyperparameters_out_of_range():
    c, r = torch.zeros(2), torch.zeros(2)
    for eps in (-0.1, 0.51, float("nan")):
        with pytest.raises(ValueError, match="label_smoothing"):
            F.bradley_terry_loss(c, r, label_smoothing=eps)
    for beta in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="beta"):
            F.sft_regularizer(c, beta=beta)
        with pytest.raises(ValueError, match="beta"):
            F.dpo_regularizer(c, r, beta=beta)
    with rmreg.typechecking(False), pytest.raises(ValueError, match="reduction"):
        F.bradley_terry_loss(c, r, reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(rmreg.TypeCheckError):
        F.bradley_terry_loss(c, r, reduction="avg")  # type: ignore[arg-type]
    with rmreg.typechecking(False), pytest.raises(ValueError, match="margin"):
        F.bradley_terry_loss(c, r, margin=torch.zeros(3))
    with pytest.raises(ValueError, match="margin"):
        F.bradley_terry_loss(c, r, margin=float("nan"))


def test_dpo_needs_both_or_neither_reference():
    c = torch.zeros(2)
    with pytest.raises(ValueError, match="both ref_chosen_logps and ref_rejected_logps"):
        F.dpo_regularizer(c, c, ref_chosen_logps=c)


def test_sequence_logprobs_bad_inputs():
    logits = torch.randn(2, 4, 5)
    with pytest.raises(ValueError, match=r"rows \[1\] have no response token"):
        F.sequence_logprobs(logits, torch.tensor([[-100, 1, 2, -100], [3, -100, -100, -100]]))
    with pytest.raises(ValueError, match=r"token ids in \[0, 5\)"):
        F.sequence_logprobs(logits, torch.tensor([[-100, 1, 5, 0], [-100, 1, 1, 1]]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        F.sequence_logprobs(logits.index_fill(2, torch.tensor([0]), float("nan")), torch.tensor([[0, 1, 2, 3]] * 2))
    with rmreg.typechecking(False), pytest.raises(ValueError, match="matching rows and seq"):
        F.sequence_logprobs(logits, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(rmreg.TypeCheckError):
        F.sequence_logprobs(logits, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(rmreg.TypeCheckError):  # labels must be integer ids: a wrong dtype raises
        F.sequence_logprobs(logits, torch.zeros(2, 4))
