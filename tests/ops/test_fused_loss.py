"""rmreg.ops.fused_logprob_loss against autograd through the naive full-logits path (values and gradients)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_testing import (
    F64_TOL,
    assert_close_all,
    jacobian_central_differences,
    jacobian_rows_fresh,
    make_inputs,
    segment_sums,
)
from torch.utils._python_dispatch import TorchDispatchMode

import rmreg
from rmreg.ops import _kernel, _tiles, fused_logprob_loss, linear_logprobs_naive

ALPHA, BETA = 0.3, 0.1


def sft(pairs):
    """GRM's SFT regularizer on the chosen sequences 0..P-1, one group each: α·mean(−log σ(β·log π_c))."""
    return lambda logps: ALPHA * -F.logsigmoid(BETA * logps[:pairs]).mean()


def dpo(pairs, ref=None):
    """GRM's DPO regularizer, chosen 0..P-1 and rejected P..2P-1, one group per pair (reference optional)."""

    def loss(logps):
        margin = logps[:pairs] - logps[pairs:]
        if ref is not None:
            margin = margin - (ref[:pairs] - ref[pairs:])
        return ALPHA * -F.logsigmoid(BETA * margin).mean()

    return loss


def naive_loss(h, w, b, y, sequence_ids, num_sequences, loss_fn, **kw):
    return loss_fn(segment_sums(linear_logprobs_naive(h, w, y, bias=b, **kw), sequence_ids, num_sequences))


def gradients(value, *tensors):
    wanted = [t for t in tensors if t is not None and t.requires_grad]
    found = iter(torch.autograd.grad(value, wanted))
    return [next(found) if t is not None and t.requires_grad else None for t in tensors]


def shapes(kind, pairs, tokens):
    """(sequence_ids [N], group_ids [S], loss_fn) for P pairs of ``tokens`` tokens per sequence."""
    if kind == "sft":
        return torch.arange(pairs).repeat_interleave(tokens), torch.arange(pairs), sft(pairs)
    ref = torch.randn(2 * pairs, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 3
    loss_fn = dpo(pairs, ref if kind == "dpo" else None)
    return torch.arange(2 * pairs).repeat_interleave(tokens), torch.arange(pairs).repeat(2), loss_fn


def signs(kind, pairs):
    """The declared sequence weights of GRM's regularizers: +1 for chosen, −1 for rejected."""
    return (
        torch.ones(pairs, dtype=torch.float64) if kind == "sft" else torch.cat([torch.ones(pairs), -torch.ones(pairs)])
    )


def grouping(grouped, group_ids):
    """fused_logprob_loss's keywords for one pass by ``group_ids``, or for two passes over as many sequences."""
    return {"group_ids": group_ids} if grouped else {"num_sequences": len(group_ids)}


def strategy_kwargs(strategy, kind, pairs, group_ids):
    """fused_logprob_loss's keywords for each strategy: two passes, one pass by groups, one pass with weights."""
    if strategy == "two-pass":
        return grouping(False, group_ids)
    return {"group_ids": group_ids, "sequence_weights": signs(kind, pairs) if strategy == "declared" else None}


STRATEGIES = ["two-pass", "groups", "declared"]


@pytest.mark.parametrize("kind", ["sft", "dpo", "dpo-noref"])
@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize(("softcap", "scale", "bias"), [(None, None, False), (None, None, True), (2.0, 0.5, False)])
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("chunk_size", [None, 3])
def test_matches_autograd_through_the_naive_path(kind, frozen, softcap, scale, bias, strategy, chunk_size):
    pairs, tokens = 5, 7
    sequence_ids, group_ids, loss_fn = shapes(kind, pairs, tokens)
    n = len(sequence_ids)
    h, w, b, y = make_inputs(n, 6, 23, bias=bias, frozen=frozen)
    h = (h * 3).detach().requires_grad_()
    kw = {"softcap": softcap, "scale": scale}
    expected = naive_loss(h, w, b, y, sequence_ids, len(group_ids), loss_fn, **kw)
    strategy_kw = strategy_kwargs(strategy, kind, pairs, group_ids)
    loss, logps = fused_logprob_loss(h, w, y, sequence_ids, loss_fn, bias=b, chunk_size=chunk_size, **strategy_kw, **kw)
    torch.testing.assert_close(loss, expected, atol=F64_TOL, rtol=0)
    expected_logps = segment_sums(linear_logprobs_naive(h, w, y, bias=b, **kw), sequence_ids, len(group_ids))
    torch.testing.assert_close(logps, expected_logps.detach(), atol=F64_TOL, rtol=0)
    assert not logps.requires_grad
    assert_close_all(gradients(loss, h, w, b), gradients(expected, h, w, b), F64_TOL)


@pytest.mark.parametrize("grouped", [False, True])
def test_jacobian_float64(grouped):
    """A fresh forward pass per backward (one backward per forward), against central differences."""
    h, w, b, y = make_inputs(10, 3, 7, bias=True, ignored=0.2)
    h = (h * 2).detach().requires_grad_()
    sequence_ids = torch.tensor([3, 0, 0, 1, 2, 2, 3, 1, 3, 0])  # unsorted rows
    kw = grouping(grouped, torch.tensor([0, 1, 0, 1]))
    loss_fn = dpo(2)
    for fn, inputs in [
        (
            lambda *a: fused_logprob_loss(*a[:2], y, sequence_ids, loss_fn, bias=a[2], softcap=1.5, **kw)[0][None],
            (h, w, b),
        ),
        (lambda h: fused_logprob_loss(h, w.detach(), y, sequence_ids, loss_fn, scale=2.0, **kw)[0][None], (h,)),
    ]:
        torch.testing.assert_close(
            jacobian_rows_fresh(fn, inputs), jacobian_central_differences(fn, inputs), atol=1e-7, rtol=1e-5
        )


class WeightSizedOutputs(TorchDispatchMode):
    """Records the storages of every op output with at least ``numel`` elements."""

    def __init__(self, numel):
        super().__init__()
        self.numel, self.storages = numel, set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(tensor, torch.Tensor) and tensor.numel() >= self.numel:
                self.storages.add(tensor.untyped_storage().data_ptr())
        return out


@pytest.mark.parametrize("kind", ["sft", "dpo"])
def test_two_passes_allocate_no_weight_sized_buffer(kind):
    """Two passes: the returned weight gradient is the only weight-sized tensor made, for any number of pairs."""
    for pairs in (1, 6):
        sequence_ids, group_ids, loss_fn = shapes(kind, pairs, 2)
        h, w, _, y = make_inputs(len(sequence_ids), 16, 50)  # N·V < V·H: no tile reaches the weight's size
        with WeightSizedOutputs(w.numel()) as mode:
            loss, _ = fused_logprob_loss(h, w, y, sequence_ids, loss_fn, num_sequences=len(group_ids), chunk_size=2)
            loss.backward()
        made = mode.storages - {w.untyped_storage().data_ptr()}  # views of the weight itself (its blocks) aside
        assert made == {w.grad.untyped_storage().data_ptr()}


def test_weight_buffers_do_not_grow_with_the_number_of_pairs(monkeypatch):
    """At most (largest group) weight-sized buffers beyond the returned gradient, for any number of pairs."""
    written = set()
    real = _kernel.Sweep.weight_grad_into

    def spy(self, chunk, row_scale, out, **kw):
        written.add(out.data_ptr())
        return real(self, chunk, row_scale, out, **kw)

    monkeypatch.setattr(_kernel.Sweep, "weight_grad_into", spy)
    for kind, pairs, declared, bound in [
        ("sft", 12, False, 1),
        ("dpo", 12, False, 2),
        ("dpo", 3, False, 2),
        ("dpo", 12, True, 1),
    ]:
        written.clear()
        sequence_ids, group_ids, loss_fn = shapes(kind, pairs, 4)
        h, w, _, y = make_inputs(len(sequence_ids), 4, 11)
        weights = signs(kind, pairs) if declared else None
        loss, _ = fused_logprob_loss(
            h, w, y, sequence_ids, loss_fn, group_ids=group_ids, chunk_size=2, sequence_weights=weights
        )
        loss.backward()
        assert len(written) == bound
        assert w.grad.data_ptr() not in written


@pytest.mark.parametrize("grouped", [False, True])
def test_backward_only_scales_and_follows_the_incoming_gradient(monkeypatch, grouped):
    sequence_ids, group_ids, loss_fn = shapes("dpo", 3, 5)
    kw = grouping(grouped, group_ids)
    h, w, b, y = make_inputs(len(sequence_ids), 4, 9, bias=True)
    expected = gradients(2.5 * naive_loss(h, w, b, y, sequence_ids, 6, loss_fn), h, w, b)
    loss, _ = fused_logprob_loss(h, w, y, sequence_ids, loss_fn, bias=b, **kw)
    recomputed = lambda *a, **k: pytest.fail("the backward pass recomputed logits")  # noqa: E731
    monkeypatch.setattr(_kernel.Sweep, "softmax", recomputed)
    monkeypatch.setattr(_tiles.Tiles, "_transformed", recomputed)
    assert_close_all(gradients(2.5 * loss, h, w, b), expected, F64_TOL)


@pytest.mark.parametrize("grouped", [False, True])
def test_second_backward_raises(grouped):
    sequence_ids, group_ids, loss_fn = shapes("sft", 2, 4)
    h, w, _, y = make_inputs(8, 3, 7)
    kw = {"group_ids": group_ids} if grouped else {}  # two passes: S inferred from sequence_ids
    loss, _ = fused_logprob_loss(h, w, y, sequence_ids, loss_fn, **kw)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward pass per forward pass"):
        loss.backward()


@pytest.mark.parametrize("grouped", [False, True])
def test_no_grad_gives_the_same_values(grouped):
    sequence_ids, group_ids, loss_fn = shapes("dpo", 3, 4)
    h, w, _, y = make_inputs(len(sequence_ids), 4, 9)
    kw = grouping(grouped, group_ids)
    with torch.no_grad():
        loss, logps = fused_logprob_loss(h, w, y, sequence_ids, loss_fn, **kw)
    assert not loss.requires_grad
    torch.testing.assert_close(loss, naive_loss(h, w, None, y, sequence_ids, 6, loss_fn).detach())
    torch.testing.assert_close(logps, segment_sums(linear_logprobs_naive(h, w, y), sequence_ids, 6).detach())


@rmreg.typechecking(False)
def test_bad_loss_functions_and_ids_raise_value_error():
    sequence_ids, group_ids, _ = shapes("dpo", 2, 3)
    h, w, _, y = make_inputs(12, 3, 7)
    coupled = lambda logps: logps.sum() ** 2  # noqa: E731 - every group's gradient depends on all groups
    with pytest.raises(ValueError, match="not separable"):
        fused_logprob_loss(h, w, y, sequence_ids, coupled, group_ids=group_ids)
    trainable = torch.ones((), dtype=torch.float64, requires_grad=True)
    for kw in ({"group_ids": group_ids}, {}):
        with pytest.raises(ValueError, match="require grad"):
            fused_logprob_loss(h, w, y, sequence_ids, lambda logps: trainable * logps.sum(), **kw)
        with pytest.raises(ValueError, match="scalar"):
            fused_logprob_loss(h, w, y, sequence_ids, lambda logps: logps, **kw)
        with pytest.raises(ValueError, match="non-finite"):
            fused_logprob_loss(h, w, y, sequence_ids, lambda logps: logps.sqrt().sum(), **kw)
    with pytest.raises(ValueError, match="group_ids"):
        fused_logprob_loss(h, w, y, sequence_ids, lambda logps: logps.sum(), group_ids=group_ids.double())
    with pytest.raises(ValueError, match="sequence_ids must lie"):
        fused_logprob_loss(h, w, y, sequence_ids, lambda logps: logps.sum(), group_ids=group_ids[:3])
    with pytest.raises(ValueError, match="sequence_ids must lie"):
        fused_logprob_loss(h, w, y, sequence_ids, lambda logps: logps.sum(), num_sequences=3)
    with pytest.raises(ValueError, match="group_ids must be"):
        fused_logprob_loss(h, w, y, sequence_ids, lambda logps: logps.sum(), group_ids=group_ids, num_sequences=5)
    with pytest.raises(ValueError, match="only through"):  # DPO does not depend on log π_c + log π_r
        fused_logprob_loss(h, w, y, sequence_ids, dpo(2), group_ids=group_ids, sequence_weights=torch.ones(4))
    with pytest.raises(ValueError, match="sequence_weights must be"):
        fused_logprob_loss(h, w, y, sequence_ids, dpo(2), group_ids=group_ids, sequence_weights=torch.ones(3))
    with pytest.raises(ValueError, match="give group_ids too"):
        fused_logprob_loss(h, w, y, sequence_ids, dpo(2), sequence_weights=torch.ones(4))


@pytest.mark.parametrize("grouped", [False, True])
def test_autocast_bf16_against_float64(grouped):
    sequence_ids, group_ids, loss_fn = shapes("dpo-noref", 4, 16)
    kw = grouping(grouped, group_ids)
    h, w, _, y = make_inputs(len(sequence_ids), 32, 300, ignored=0.0)
    h32, w32 = (t.detach().float().requires_grad_() for t in (h, w))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = fused_logprob_loss(h32, w32, y, sequence_ids, lambda lp: loss_fn(lp.double()).float(), **kw)
    loss.backward()
    assert w32.grad.dtype == torch.float32
    h64, w64 = (t.detach().bfloat16().double().requires_grad_() for t in (h, w))
    expected = naive_loss(h64, w64, None, y, sequence_ids, 8, loss_fn)
    expected.backward()
    assert abs(loss.item() - expected.item()) < 1e-3
    for got, ref in ((h32.grad, h64.grad), (w32.grad, w64.grad)):
        assert (got.double() - ref).abs().max() / ref.abs().max() < 2e-2


@settings(max_examples=30, deadline=None)
@given(
    group_sizes=st.lists(st.integers(1, 3), min_size=1, max_size=5),
    lengths_seed=st.integers(0, 2**16),
    chunk_size=st.one_of(st.none(), st.integers(1, 9)),
    frozen=st.booleans(),
    softcap=st.one_of(st.none(), st.floats(0.5, 20.0)),
    grouped=st.booleans(),
)
def test_property_any_separable_loss_equals_naive(group_sizes, lengths_seed, chunk_size, frozen, softcap, grouped):
    gen = torch.Generator().manual_seed(lengths_seed)
    group_ids = torch.repeat_interleave(torch.arange(len(group_sizes)), torch.tensor(group_sizes))
    group_ids = group_ids[torch.randperm(len(group_ids), generator=gen)]  # groups interleaved over sequences
    lengths = torch.randint(0, 6, (len(group_ids),), generator=gen)  # empty sequences included
    sequence_ids = torch.repeat_interleave(torch.arange(len(group_ids)), lengths)
    sequence_ids = sequence_ids[torch.randperm(len(sequence_ids), generator=gen)]
    weights = torch.randn(len(group_ids), dtype=torch.float64, generator=gen)

    def loss_fn(logps):  # Σ_g softplus(Σ_{s∈g} a_s log π_s) + Σ_s a_s² log π_s / 10: separable over groups
        inner = logps.new_zeros(len(group_sizes)).index_add(0, group_ids, weights * logps / 10)
        return F.softplus(inner).sum() + (weights**2 * logps).sum() / 10

    h, w, b, y = make_inputs(len(sequence_ids), 4, 13, bias=True, frozen=frozen, ignored=0.2, seed=lengths_seed)
    expected = naive_loss(h, w, b, y, sequence_ids, len(group_ids), loss_fn, softcap=softcap)
    kw = grouping(grouped, group_ids)
    loss, _ = fused_logprob_loss(h, w, y, sequence_ids, loss_fn, bias=b, chunk_size=chunk_size, softcap=softcap, **kw)
    torch.testing.assert_close(loss, expected, atol=F64_TOL, rtol=0)
    assert_close_all(gradients(loss, h, w, b), gradients(expected, h, w, b), F64_TOL)


@settings(max_examples=30, deadline=None)
@given(
    lengths_seed=st.integers(0, 2**16),
    num_sequences=st.integers(1, 6),
    tile_rows=st.one_of(st.none(), st.integers(1, 9)),
    transform=st.sampled_from([(None, None), (3.0, None), (None, 0.7), (2.0, 1.5)]),
)
def test_property_two_passes_take_any_loss_of_the_sums(lengths_seed, num_sequences, tile_rows, transform):
    """Two passes need no separability: a loss coupling every sequence equals autograd through the naive path."""
    gen = torch.Generator().manual_seed(lengths_seed)
    lengths = torch.randint(0, 6, (num_sequences,), generator=gen)  # empty sequences included
    sequence_ids = torch.repeat_interleave(torch.arange(num_sequences), lengths)
    sequence_ids = sequence_ids[torch.randperm(len(sequence_ids), generator=gen)]

    def loss_fn(logps):  # a batch-level softmax over sequences plus a square of the total: not separable
        return -torch.log_softmax(logps / 5, 0)[0] + (logps.sum() / 50) ** 2

    softcap, scale = transform
    h, w, b, y = make_inputs(len(sequence_ids), 4, 13, bias=True, ignored=0.2, seed=lengths_seed)
    expected = naive_loss(h, w, b, y, sequence_ids, num_sequences, loss_fn, softcap=softcap, scale=scale)
    loss, _ = fused_logprob_loss(
        h,
        w,
        y,
        sequence_ids,
        loss_fn,
        num_sequences=num_sequences,
        bias=b,
        chunk_size=tile_rows,
        softcap=softcap,
        scale=scale,
    )
    torch.testing.assert_close(loss, expected, atol=F64_TOL, rtol=0)
    assert_close_all(gradients(loss, h, w, b), gradients(expected, h, w, b), F64_TOL)
