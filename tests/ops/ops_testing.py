"""Input builders and comparison helpers shared by the tests of rmreg.ops."""

import torch

F64_TOL = 1e-6


def make_inputs(n, hidden, vocab, *, dtype=torch.float64, bias=False, frozen=False, ignored=0.25, seed=0):
    """Random hidden [n, hidden], weight [vocab, hidden], optional bias [vocab], targets with ~``ignored`` -100s."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, hidden, generator=gen, dtype=torch.float64)
    w = torch.randn(vocab, hidden, generator=gen, dtype=torch.float64) / hidden**0.5 * 2
    b = torch.randn(vocab, generator=gen, dtype=torch.float64) if bias else None
    targets = torch.randint(0, vocab, (n,), generator=gen)
    targets[torch.rand(n, generator=gen) < ignored] = -100
    h = h.to(dtype).requires_grad_()
    w = w.to(dtype).requires_grad_(not frozen)
    b = None if b is None else b.to(dtype).requires_grad_(not frozen)
    return h, w, b, targets


def grads(out, upstream, *tensors):
    """Gradients of <out, upstream> w.r.t. the tensors that require grad (None for the others)."""
    wanted = [t for t in tensors if t is not None and t.requires_grad]
    found = iter(torch.autograd.grad(out, wanted, upstream))
    return [next(found) if t is not None and t.requires_grad else None for t in tensors]


def assert_close_all(got, expected, tol):
    for g, e in zip(got, expected, strict=True):
        assert (g is None) == (e is None)
        if g is not None:
            torch.testing.assert_close(g, e, atol=tol, rtol=0)


def segment_sums(token_logps, sequence_ids, num_sequences):
    return token_logps.new_zeros(num_sequences).index_add(0, sequence_ids, token_logps)


def jacobian_rows_fresh(fn, inputs):
    """Analytical Jacobian [outputs, inputs] with a fresh forward pass per row (one backward per forward)."""
    rows = []
    for i in range(fn(*inputs).numel()):
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(fn(*inputs)[i], inputs)]))
    return torch.stack(rows)


def jacobian_central_differences(fn, inputs, eps=1e-6):
    """Numerical Jacobian [outputs, inputs] by central differences, as gradcheck computes it."""
    columns = []
    with torch.no_grad():
        for tensor in inputs:
            flat = tensor.view(-1)
            for j in range(flat.numel()):
                flat[j] += eps
                plus = fn(*inputs)
                flat[j] -= 2 * eps
                minus = fn(*inputs)
                flat[j] += eps
                columns.append((plus - minus) / (2 * eps))
    return torch.stack(columns, dim=1)
