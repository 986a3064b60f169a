"""Input validation and options of rmreg.ops: clear ValueErrors, shape checking, chunk sizes."""

import pytest
import torch
from ops_testing import make_inputs

import rmreg
from rmreg import ops
from rmreg._typing import TypeCheckError
from rmreg.ops import auto_chunk_size, linear_logprobs, linear_logprobs_naive, sequence_linear_logprobs


def test_auto_chunk_size_budget():
    assert auto_chunk_size(128_000, 256) * 128_000 * 4 <= ops.DEFAULT_CHUNK_BYTES
    assert auto_chunk_size(256_000, 2048) == 256  # an eighth of the fp32 weight
    assert auto_chunk_size(10**9, 1) == 1


def test_wrong_shape_raises_under_typechecking():
    h, w, _, y = make_inputs(6, 4, 9)
    with rmreg.typechecking(), pytest.raises(TypeCheckError):
        linear_logprobs(h, w, y[:5])
    with rmreg.typechecking(), pytest.raises(TypeCheckError):
        sequence_linear_logprobs(h, w, y, y[:5])
    with rmreg.typechecking():
        linear_logprobs(h, w, y)  # right shapes pass


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h, w, y: (h, w[:, :3], y), "same H"),
        (lambda h, w, y: (h[0], w, y), "same H"),
        (lambda h, w, y: (h, w, y[:5]), "targets must be"),
        (lambda h, w, y: (h, w, y.double()), "integer"),
        (lambda h, w, y: (h, w, torch.full_like(y, 9)), "targets must lie in"),
        (lambda h, w, y: (h, w, torch.full_like(y, -1)), "targets must lie in"),
        (lambda h, w, y: (h.detach().index_fill(0, torch.tensor([2]), float("nan")), w, y), "NaN"),
        (lambda h, w, y: (h, w.float(), y), "dtype"),
    ],
)
def test_bad_inputs_raise_value_error(change, message):
    """Without the shape checker (off by default) the functions themselves reject bad inputs."""
    h, w, _, y = make_inputs(6, 4, 9)
    h, w, y = change(h, w, y)
    for call in (
        lambda: linear_logprobs(h, w, y),
        lambda: linear_logprobs_naive(h, w, y),
        lambda: sequence_linear_logprobs(h, w, y, torch.zeros(len(y), dtype=torch.long)),
    ):
        with rmreg.typechecking(False), pytest.raises(ValueError, match=message):
            call()


@rmreg.typechecking(False)
def test_bad_options_raise_value_error():
    h, w, _, y = make_inputs(6, 4, 9)
    with pytest.raises(ValueError, match="chunk_size"):
        linear_logprobs(h, w, y, chunk_size=0)
    with pytest.raises(ValueError, match="bias"):
        linear_logprobs(h, w, y, bias=torch.zeros(8, dtype=torch.float64))
    with pytest.raises(ValueError, match="sequence_ids must lie"):
        sequence_linear_logprobs(h, w, y, torch.tensor([0, 0, 1, 1, 2, 2]), num_sequences=2)
    with pytest.raises(ValueError, match="sequence_ids must be"):
        sequence_linear_logprobs(h, w, y, torch.zeros(5, dtype=torch.long))
    assert linear_logprobs(h, w, torch.full_like(y, -1), ignore_index=-1).eq(0).all()


@rmreg.typechecking(False)
def test_value_checks_are_skipped_in_the_models_hot_path():
    """The model checks its batch once; inside its hot path the ops do not read the device to re-check values."""
    from rmreg._typing import hot_path

    h, w, _, y = make_inputs(6, 4, 9, ignored=0.0)
    nan_hidden = h.detach().index_fill(0, torch.tensor([2]), float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        linear_logprobs(nan_hidden, w, y)
    with hot_path():
        assert linear_logprobs(nan_hidden, w, y).isnan().any()
        out = sequence_linear_logprobs(h, w, y, torch.tensor([0, 0, 0, 1, 1, 7]), num_sequences=8)
    assert out.shape == (8,)
