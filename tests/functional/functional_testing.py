"""Strategies and comparison helpers shared by the tests of rmreg.functional."""

import torch
from hypothesis import strategies as st

finite = st.floats(-30.0, 30.0, allow_nan=False, allow_infinity=False)
vectors = st.integers(1, 8).flatmap(lambda n: st.lists(finite, min_size=n, max_size=n))
pairs_of_vectors = st.integers(1, 8).flatmap(
    lambda n: st.tuples(st.lists(finite, min_size=n, max_size=n), st.lists(finite, min_size=n, max_size=n))
)
logps = st.floats(-200.0, 0.0, allow_nan=False)
seeds = st.integers(0, 2**16)


def t64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def close(actual: torch.Tensor, expected, tol: float = 1e-6) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), rtol=tol, atol=tol)


def gradcheck(fn, *tensors: torch.Tensor) -> None:
    """``torch.autograd.gradcheck`` of ``fn`` in float64 with respect to every tensor given."""
    inputs = tuple(t.detach().to(torch.float64).requires_grad_(True) for t in tensors)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def random_mask(groups: int, slots: int, minimum: int, generator: torch.Generator) -> torch.Tensor:
    """A ``[groups, slots]`` bool mask with at least ``minimum`` True per row, at random places."""
    mask = torch.rand(groups, slots, generator=generator) < 0.6
    for row in range(groups):
        while int(mask[row].sum()) < minimum:
            mask[row, torch.randint(0, slots, (1,), generator=generator)] = True
    return mask
