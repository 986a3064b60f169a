"""sequence_logprobs against a float64 loop, its gradient, padding invariance and bad inputs."""

import naive
import pytest
import torch
from functional_testing import close, gradcheck, seeds
from hypothesis import given
from hypothesis import strategies as st

import rmreg
from rmreg import functional as F


def _random_labels(rows: int, seq: int, vocab: int, generator: torch.Generator) -> torch.Tensor:
    labels = torch.randint(0, vocab, (rows, seq), generator=generator)
    prompt_lengths = torch.randint(1, seq - 1, (rows,), generator=generator)
    for row, prompt_length in enumerate(prompt_lengths.tolist()):
        labels[row, :prompt_length] = -100
    return labels


@given(st.integers(1, 4), st.integers(3, 9), st.integers(2, 7), seeds)
def test_sequence_logprobs_matches_naive(rows, seq, vocab, seed):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, seq, vocab, generator=generator, dtype=torch.float64) * 3
    labels = _random_labels(rows, seq, vocab, generator)
    close(F.sequence_logprobs(logits, labels), naive.sequence_logprobs(logits.tolist(), labels.tolist()))


def test_gradcheck_sequence_logprobs():
    labels = torch.tensor([[-100, 2, 0, -100], [-100, -100, 1, 3]])
    gradcheck(lambda logits: F.sequence_logprobs(logits, labels), torch.randn(2, 4, 5))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits_compute_in_float32(dtype):
    logits = (torch.randn(2, 5, 300) * 4).to(dtype)
    labels = torch.tensor([[-100, 3, 200, 299, 1], [-100, -100, 0, 7, -100]])
    got = F.sequence_logprobs(logits, labels)
    assert got.dtype == torch.float32
    close(got, naive.sequence_logprobs(logits.double().tolist(), labels.tolist()), tol=1e-4)


@given(st.integers(1, 3), st.integers(3, 7), st.integers(1, 4), seeds)
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
