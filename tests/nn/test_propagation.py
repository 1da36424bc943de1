import pytest
import torch

from lightgcn_pyg.nn import BipartiteAdjacency, gather_csr_rows, propagation
from lightgcn_pyg.nn.batch_propagation import batch_propagate, unique_rows

NU, NI = 7, 9  # users, items


@pytest.mark.parametrize("backend", ["csr", "coo"])
@pytest.mark.parametrize("weighted", [False, True])
def test_products_equal_dense_reference(graph, dense, backend, weighted):
    edge_index, weight = graph(NU, NI, weighted=weighted)
    adj = BipartiteAdjacency(edge_index, NU, NI, weight, backend=backend)
    assert adj.dtype == (torch.float64 if weighted else torch.float32)
    adj = adj.to(dtype=torch.float64)
    r = dense(edge_index, NU, NI, weight)
    assert torch.allclose(adj.to_dense(), r, atol=1e-12)
    assert torch.allclose(adj.adj.to_dense(), r, atol=1e-12)
    assert torch.allclose(adj.adj_t.to_dense(), r.t(), atol=1e-12)

    gen = torch.Generator().manual_seed(1)
    x_user = torch.randn(NU, 4, generator=gen, dtype=torch.float64)
    x_item = torch.randn(NI, 4, generator=gen, dtype=torch.float64)
    out_user, out_item = adj.propagate(x_user, x_item)
    assert torch.allclose(out_user, r @ x_item, atol=1e-12)
    assert torch.allclose(out_item, r.t() @ x_user, atol=1e-12)
    # Isolated users / items receive exactly nothing, and nothing is NaN.
    assert out_user[-2:].abs().sum() == 0 and out_item[-2:].abs().sum() == 0
    assert torch.isfinite(out_user).all() and torch.isfinite(out_item).all()


@pytest.mark.parametrize("backend", ["csr", "coo"])
def test_gradients_use_transpose(graph, dense, backend):
    edge_index, _ = graph(NU, NI)
    adj = BipartiteAdjacency(edge_index, NU, NI, backend=backend).to(dtype=torch.float64)
    r = dense(edge_index, NU, NI)
    x_item = torch.randn(NI, 3, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(NU, 3, dtype=torch.float64)
    adj.user_update(x_item).backward(grad)
    assert torch.allclose(x_item.grad, r.t() @ grad, atol=1e-12)

    x_user = torch.randn(NU, 3, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(NI, 3, dtype=torch.float64)
    adj.item_update(x_user).backward(grad)
    assert torch.allclose(x_user.grad, r @ grad, atol=1e-12)


@pytest.mark.parametrize("backend", ["csr", "coo"])
def test_gradcheck(graph, backend):
    edge_index, weight = graph(5, 6, num_edges=12, weighted=True)
    adj = BipartiteAdjacency(edge_index, 5, 6, weight, backend=backend)
    x_user = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    x_item = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(adj.propagate, (x_user, x_item))
    assert torch.autograd.gradgradcheck(adj.propagate, (x_user, x_item))


def test_coo_fallback_agrees_with_csr(graph):
    edge_index, weight = graph(NU, NI, num_edges=30, weighted=True, seed=3)
    csr = BipartiteAdjacency(edge_index, NU, NI, weight.float(), backend="csr")
    coo = BipartiteAdjacency(edge_index, NU, NI, weight.float(), backend="coo")
    x_user = torch.randn(NU, 8, requires_grad=True)
    x_item = torch.randn(NI, 8, requires_grad=True)
    out_csr, out_coo = csr.propagate(x_user, x_item), coo.propagate(x_user, x_item)
    for a, b in zip(out_csr, out_coo):
        assert torch.allclose(a, b, atol=1e-5)
    grads_csr = torch.autograd.grad(sum(o.pow(2).sum() for o in out_csr), (x_user, x_item))
    grads_coo = torch.autograd.grad(sum(o.pow(2).sum() for o in out_coo), (x_user, x_item))
    for a, b in zip(grads_csr, grads_coo):
        assert torch.allclose(a, b, atol=1e-5)


def test_auto_backend_falls_back_when_csr_fails(graph, monkeypatch):
    edge_index, _ = graph(NU, NI)
    x_item = torch.randn(NI, 4)
    expected = BipartiteAdjacency(edge_index, NU, NI, backend="coo").user_update(x_item)

    def unsupported(*args, **kwargs):
        raise NotImplementedError("no sparse CSR kernel on this device")

    monkeypatch.setattr(propagation._CSR, "_csr_matmul", unsupported)
    auto = BipartiteAdjacency(edge_index, NU, NI)
    assert torch.allclose(auto.user_update(x_item), expected, atol=1e-6)
    forced = BipartiteAdjacency(edge_index, NU, NI, backend="csr")
    with pytest.raises(NotImplementedError):
        forced.user_update(x_item)


def test_duplicates_are_summed(dense):
    edge_index = torch.tensor([[0, 0, 0, 1, 2], [1, 1, 2, 2, 0]])
    adj = BipartiteAdjacency(edge_index, 3, 3).to(dtype=torch.float64)
    assert adj.num_edges == 4
    expected = dense(edge_index, 3, 3)  # the dense reference adds duplicates
    assert torch.allclose(adj.to_dense(), expected, atol=1e-12)
    weighted = torch.tensor([[0, 0, 1, 2], [1, 2, 2, 0]])
    w = torch.tensor([2.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    assert torch.allclose(adj.to_dense(), BipartiteAdjacency(weighted, 3, 3, w).to_dense())


def test_edge_order_invariance(graph):
    edge_index, weight = graph(NU, NI, weighted=True)
    adj = BipartiteAdjacency(edge_index, NU, NI, weight)
    perm = torch.randperm(edge_index.size(1), generator=torch.Generator().manual_seed(5))
    other = BipartiteAdjacency(edge_index[:, perm], NU, NI, weight[perm])
    assert torch.equal(adj.rowptr, other.rowptr) and torch.equal(adj.col, other.col)
    assert torch.equal(adj.value, other.value)
    assert torch.equal(adj.adj_t.col_indices(), other.adj_t.col_indices())
    # Columns sorted within every row, in both matrices.
    for m in (adj.adj, adj.adj_t):
        ptr, col = m.crow_indices(), m.col_indices()
        for r in range(ptr.numel() - 1):
            seg = col[ptr[r] : ptr[r + 1]]
            assert torch.equal(seg, seg.sort().values)


def _check_batch_propagate(adj, num_layers, users, items, atol=1e-10, equal_alpha=False):
    """Batch rows (+ layer-0 rows) of batch_propagate == full propagation, then index."""
    gen = torch.Generator().manual_seed(3)
    x_user = torch.randn(NU, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    x_item = torch.randn(NI, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    alpha = (
        torch.full((num_layers + 1,), 1 / (num_layers + 1), dtype=torch.float64)
        if equal_alpha  # the default: the backward shares one scaled gradient
        else torch.linspace(0.5, 1.5, num_layers + 1, dtype=torch.float64)
    ).requires_grad_()
    u, u_inv = torch.unique(users, return_inverse=True)
    i, i_inv = torch.unique(items, return_inverse=True)
    fast = batch_propagate(adj, x_user, x_item, alpha, u, i, num_layers, u_inv, i_inv)
    out_u, out_i, xu, xi = x_user * alpha[0], x_item * alpha[0], x_user, x_item
    for k in range(1, num_layers + 1):
        xu, xi = adj.propagate(xu, xi)
        out_u, out_i = out_u + alpha[k] * xu, out_i + alpha[k] * xi
    ref = (out_u[users], out_i[items], x_user[users], x_item[items])
    weights = [torch.randn(t.shape, dtype=torch.float64, generator=gen) for t in ref]
    g_fast = torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, fast)),
                                 (x_user, x_item, alpha))  # fmt: skip
    g_ref = torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, ref)),
                                (x_user, x_item, alpha))  # fmt: skip
    for a, b in zip(list(fast) + list(g_fast), list(ref) + list(g_ref)):
        assert torch.allclose(a, b, atol=atol)


@pytest.mark.parametrize("backend", ["csr", "coo"])
@pytest.mark.parametrize("num_layers", [0, 1, 3])
@pytest.mark.parametrize("equal_alpha", [False, True])
def test_batch_propagate_equals_full_then_index(graph, backend, num_layers, equal_alpha):
    edge_index, weight = graph(NU, NI, weighted=True)
    adj = BipartiteAdjacency(edge_index, NU, NI, weight, backend=backend).to(dtype=torch.float64)
    users = torch.tensor([6, 0, 0, 3, 5])  # duplicates and an isolated user
    items = torch.tensor([8, 1, 1, 2])
    _check_batch_propagate(adj, num_layers, users, items, equal_alpha=equal_alpha)


@pytest.mark.parametrize("index", [[5, 0, 0, 3, 5, 1], [2, 2, 2], [0], [6, 5, 4, 3, 2, 1, 0], []])
def test_unique_rows_equals_torch_unique(index):
    index = torch.tensor(index, dtype=torch.long)
    unique, inverse = unique_rows(index, 7)
    expected, expected_inverse = torch.unique(index, return_inverse=True)
    assert torch.equal(unique, expected) and torch.equal(inverse, expected_inverse)
    assert unique.dtype == torch.long and inverse.dtype == torch.long


def test_gather_csr_rows_matches_loop():
    rowptr = torch.tensor([0, 2, 2, 5, 6])
    index = torch.tensor([2, 0, 1, 2, 3])
    entry, segment = gather_csr_rows(rowptr, index)
    exp_entry, exp_segment = [], []
    for b, r in enumerate(index.tolist()):
        for e in range(int(rowptr[r]), int(rowptr[r + 1])):
            exp_entry.append(e)
            exp_segment.append(b)
    assert entry.tolist() == exp_entry and segment.tolist() == exp_segment


def test_user_items_matches_loop(graph):
    edge_index, _ = graph(NU, NI)
    adj = BipartiteAdjacency(edge_index, NU, NI)
    users = torch.tensor([3, 0, 6, 3])
    position, item = adj.user_items(users)
    got = sorted(zip(position.tolist(), item.tolist()))
    expected = sorted(
        (b, i) for b, u in enumerate(users.tolist()) for uu, i in edge_index.t().tolist() if uu == u
    )
    assert got == expected


def test_empty_graph():
    adj = BipartiteAdjacency(torch.empty(2, 0, dtype=torch.long), 3, 4)
    x_user, x_item = torch.randn(3, 2), torch.randn(4, 2)
    out_user, out_item = adj.propagate(x_user, x_item)
    assert torch.equal(out_user, torch.zeros(3, 2)) and torch.equal(out_item, torch.zeros(4, 2))


def _to_dense(m, shape):
    out = torch.zeros(shape, dtype=m.value.dtype)
    return out.index_put_((m.row, m.col), m.value, accumulate=True)


@pytest.mark.parametrize("keep_prob", [0.3, 0.7])
def test_dropout(graph, dense, keep_prob):
    edge_index, _ = graph(NU, NI, num_edges=30)
    adj = BipartiteAdjacency(edge_index, NU, NI).to(dtype=torch.float64)
    assert adj.dropout(1.0) is adj
    r = dense(edge_index, NU, NI)
    torch.manual_seed(0)
    x_user = torch.randn(NU, 3, dtype=torch.float64)
    x_item = torch.randn(NI, 3, dtype=torch.float64)
    for _ in range(3):  # products and gradients are exact for the sampled matrices
        d = adj.dropout(keep_prob)
        dense_user = _to_dense(d._user_op.fwd, (NU, NI))
        dense_item = _to_dense(d._item_op.fwd, (NI, NU))
        assert torch.equal(_to_dense(d._user_op.bwd, (NI, NU)), dense_user.t())
        assert torch.equal(_to_dense(d._item_op.bwd, (NU, NI)), dense_item.t())
        xi, xu = x_item.clone().requires_grad_(), x_user.clone().requires_grad_()
        out_user, out_item = d.propagate(xu, xi)
        assert torch.allclose(out_user, dense_user @ x_item, atol=1e-12)
        assert torch.allclose(out_item, dense_item @ x_user, atol=1e-12)
        g_user = torch.randn(NU, 3, dtype=torch.float64)
        g_item = torch.randn(NI, 3, dtype=torch.float64)
        torch.autograd.backward((out_user, out_item), (g_user, g_item))
        assert torch.allclose(xi.grad, dense_user.t() @ g_user, atol=1e-12)
        assert torch.allclose(xu.grad, dense_item.t() @ g_item, atol=1e-12)
        # The training path on the dropped (no longer symmetric) matrices: its hand-written
        # backward must use each matrix's own transpose.
        _check_batch_propagate(d, 2, torch.tensor([0, 1, 1, 4]), torch.tensor([2, 2, 7, 0]))

    # Each entry kept with probability keep_prob and divided by it: unbiased.
    n, nnz = 400, adj.num_edges
    sum_user = torch.zeros(NU * NI, dtype=torch.float64)
    sum_item = torch.zeros(NI * NU, dtype=torch.float64)
    kept, differ = 0, 0
    for _ in range(n):
        d = adj.dropout(keep_prob)
        mu, mi = d._user_op.fwd, d._item_op.fwd
        sum_user.index_add_(0, mu.row * NI + mu.col, mu.value)
        sum_item.index_add_(0, mi.row * NU + mi.col, mi.value)
        kept += mu.col.numel()
        differ += int(mu.col.numel() != mi.col.numel())
    assert (
        abs(kept / (n * nnz) - keep_prob) < 4.5 * (keep_prob * (1 - keep_prob) / (n * nnz)) ** 0.5
    )
    bound = 4.5 * r * ((1 - keep_prob) / (keep_prob * n)) ** 0.5 + 1e-12
    assert ((sum_user.view(NU, NI) / n - r).abs() <= bound).all()
    assert ((sum_item.view(NI, NU) / n - r.t()).abs() <= bound.t()).all()
    assert differ > 0  # the two directions are sampled independently
    with pytest.raises(ValueError, match="keep_prob"):
        adj.dropout(0.0)


def test_to_keeps_values():
    edge_index = torch.tensor([[0, 1, 1], [1, 0, 1]])
    adj = BipartiteAdjacency(edge_index, 2, 2)
    moved = adj.to(torch.device("cpu"), torch.float64)
    assert moved.dtype == torch.float64 and moved.device == torch.device("cpu")
    assert torch.allclose(moved.to_dense(), adj.to_dense().double())
    assert "num_edges=3" in repr(adj)


def test_dtype_argument():
    edge_index = torch.tensor([[0, 0, 1], [0, 2, 1]])
    weight = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float16)
    assert BipartiteAdjacency(edge_index, 2, 3).dtype == torch.float32
    assert BipartiteAdjacency(edge_index, 2, 3, weight).dtype == torch.float16
    adj = BipartiteAdjacency(edge_index, 2, 3, weight, dtype=torch.float64)
    # R_{0,2} = 2 / sqrt(d_u0 d_i2) = 2 / sqrt(3 * 2), computed and kept in float64.
    assert adj.dtype == torch.float64
    assert adj.to_dense()[0, 2].item() == pytest.approx(2 / (3 * 2) ** 0.5, rel=1e-15, abs=0)
    with pytest.raises(ValueError, match=r"'dtype' must be a floating torch.dtype.*int64"):
        BipartiteAdjacency(edge_index, 2, 3, dtype=torch.int64)


def test_validation():
    edge_index = torch.tensor([[0, 1, 2], [0, 1, 5]])
    with pytest.raises(ValueError, match=r"edge_index\[1\].*index 5.*\[0, 3\)"):
        BipartiteAdjacency(edge_index, 3, 3)
    with pytest.raises(ValueError, match=r"edge_index\[0\].*index -1"):
        BipartiteAdjacency(torch.tensor([[0, -1], [0, 0]]), 3, 3)
    with pytest.raises(ValueError, match=r"edge_index\[0\].*index 3"):
        BipartiteAdjacency(torch.tensor([[3], [0]]), 3, 3)
    with pytest.raises(ValueError, match="shape"):
        BipartiteAdjacency(torch.zeros(3, 2, dtype=torch.long), 3, 3)
    with pytest.raises(ValueError, match="integer"):
        BipartiteAdjacency(torch.zeros(2, 2), 3, 3)
    with pytest.raises(ValueError, match="num_users"):
        BipartiteAdjacency(torch.zeros(2, 2, dtype=torch.long), 0, 3)
    with pytest.raises(ValueError, match="backend"):
        BipartiteAdjacency(torch.zeros(2, 2, dtype=torch.long), 3, 3, backend="dense")
    ok = torch.tensor([[0, 1], [0, 1]])
    with pytest.raises(ValueError, match=r"edge_weight.*-1"):
        BipartiteAdjacency(ok, 3, 3, torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"edge_weight.*nan"):
        BipartiteAdjacency(ok, 3, 3, torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match=r"edge_weight.*\[2\]"):
        BipartiteAdjacency(ok, 3, 3, torch.ones(3))
    adj = BipartiteAdjacency(ok, 3, 3)
    with pytest.raises(ValueError, match="x_item"):
        adj.user_update(torch.randn(2, 4))
    with pytest.raises(ValueError, match="x_user"):
        adj.item_update(torch.randn(3, 4, dtype=torch.float64))
