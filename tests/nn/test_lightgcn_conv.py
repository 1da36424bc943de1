import pytest
import torch
from torch_geometric import EdgeIndex
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv, LGConv, to_hetero
from torch_geometric.typing import WITH_TORCH_SPARSE
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csr_tensor

from lightgcn_pyg.nn import BipartiteAdjacency, LightGCNConv, lightgcn_norm

NU, NI = 7, 9  # users, items


def homogeneous(edge_index, weight=None):
    """Both directions, items offset by NU (a LightGCN graph as one node set)."""
    user, item = edge_index[0], edge_index[1] + NU
    full = torch.cat([torch.stack([user, item]), torch.stack([item, user])], dim=1)
    return full, None if weight is None else torch.cat([weight, weight])


def dense_homogeneous(edge_index, num_nodes, weight=None):
    """Naive D^-1/2 A D^-1/2 with A[target, source] and in-degrees."""
    if weight is None:
        weight = torch.ones(edge_index.size(1), dtype=torch.float64)
    a = torch.zeros(num_nodes, num_nodes, dtype=torch.float64)
    for (src, dst), w in zip(edge_index.t().tolist(), weight.tolist()):
        a[dst, src] += w
    deg = a.sum(1)
    inv = torch.where(deg > 0, deg.rsqrt(), torch.zeros_like(deg))
    return inv[:, None] * a * inv[None, :]


def sparse_inputs(edge_index, num_nodes, weight=None):
    """The same graph as every supported input type (sparse ones transposed)."""
    inputs = {
        "edge_index": (edge_index, weight),
        "EdgeIndex": (EdgeIndex(edge_index, sparse_size=(num_nodes, num_nodes)), weight),
        "coo": (to_torch_coo_tensor(edge_index.flip(0), weight, num_nodes), None),
        "csr": (to_torch_csr_tensor(edge_index.flip(0), weight, num_nodes), None),
    }
    inputs["csc"] = (inputs["csr"][0].to_sparse_csc(), None)
    if WITH_TORCH_SPARSE:
        from torch_sparse import SparseTensor

        adj_t = SparseTensor.from_edge_index(
            edge_index.flip(0), weight, sparse_sizes=(num_nodes, num_nodes)
        )
        inputs["SparseTensor"] = (adj_t, None)
    return inputs


@pytest.mark.parametrize("weighted", [False, True])
def test_equals_lgconv_and_dense(graph, weighted):
    edge_index, weight = graph(NU, NI, weighted=weighted)
    full, full_weight = homogeneous(edge_index, weight)
    x = torch.randn(NU + NI, 5, dtype=torch.float64)
    out = LightGCNConv()(x, full, full_weight)
    assert torch.allclose(out, LGConv()(x, full, full_weight), atol=1e-12)
    assert torch.allclose(out, dense_homogeneous(full, NU + NI, full_weight) @ x, atol=1e-12)
    assert out[NU - 2 : NU].abs().sum() == 0 and out[-2:].abs().sum() == 0  # isolated
    assert torch.isfinite(out).all()


def test_equals_lgconv_on_directed_graph():
    gen = torch.Generator().manual_seed(4)
    edge_index = torch.randint(0, 8, (2, 20), generator=gen)
    weight = torch.rand(20, generator=gen, dtype=torch.float64)
    x = torch.randn(10, 3, dtype=torch.float64, generator=gen)
    for flow in ["source_to_target", "target_to_source"]:
        expected = LGConv(flow=flow)(x, edge_index, weight)
        assert torch.allclose(LightGCNConv(flow=flow)(x, edge_index, weight), expected)


@pytest.mark.parametrize("weighted", [False, True])
def test_input_type_and_edge_order_invariance(graph, weighted):
    edge_index, weight = graph(NU, NI, weighted=weighted)
    full, full_weight = homogeneous(edge_index, weight)
    x = torch.randn(NU + NI, 4, dtype=torch.float64)
    expected = dense_homogeneous(full, NU + NI, full_weight) @ x
    perm = torch.randperm(full.size(1), generator=torch.Generator().manual_seed(2))
    perm_weight = None if full_weight is None else full_weight[perm]
    cases = {**sparse_inputs(full, NU + NI, full_weight)}
    cases.update(
        {f"permuted {k}": v for k, v in sparse_inputs(full[:, perm], NU + NI, perm_weight).items()}
    )
    assert len(cases) >= 10
    for name, (adj, w) in cases.items():
        out = LightGCNConv()(x, adj, w)
        assert torch.allclose(out, expected, atol=1e-12), name


def test_bipartite_message_passing(graph, dense):
    edge_index, weight = graph(NU, NI, weighted=True)
    r = dense(edge_index, NU, NI, weight)
    x_user = torch.randn(NU, 3, dtype=torch.float64)
    x_item = torch.randn(NI, 3, dtype=torch.float64)
    conv = LightGCNConv()
    to_item = conv((x_user, x_item), edge_index, weight, size=(NU, NI))
    assert to_item.shape == (NI, 3)
    assert torch.allclose(to_item, r.t() @ x_user, atol=1e-12)
    assert torch.allclose(conv((x_user, x_item), edge_index, weight), to_item)  # size from x
    to_user = conv((x_item, x_user), edge_index.flip(0), weight)
    assert torch.allclose(to_user, r @ x_item, atol=1e-12)
    edge = EdgeIndex(edge_index, sparse_size=(NU, NI))
    assert torch.allclose(conv((x_user, x_item), edge, weight), to_item, atol=1e-12)
    # A transposed sparse adjacency [num_items, num_users] gives the same.
    adj_t = to_torch_csr_tensor(edge_index.flip(0), weight, size=(NI, NU))
    assert torch.allclose(conv((x_user, x_item), adj_t), to_item, atol=1e-12)
    coo_t = to_torch_coo_tensor(edge_index.flip(0), weight, size=(NI, NU))
    assert torch.allclose(conv((x_user, x_item), coo_t), to_item, atol=1e-12)
    # ... and so does the propagation used by the model.
    adj = BipartiteAdjacency(edge_index, NU, NI, weight)
    assert torch.allclose(adj.propagate(x_user, x_item)[1], to_item, atol=1e-12)


def hetero_data(edge_index, x_user, x_item):
    data = HeteroData()
    data["user"].x, data["item"].x = x_user, x_item
    data["user", "interacts", "item"].edge_index = edge_index
    data["item", "rev_interacts", "user"].edge_index = edge_index.flip(0)
    return data


def test_hetero_conv_and_to_hetero(graph, dense):
    edge_index, _ = graph(NU, NI)
    r = dense(edge_index, NU, NI).float()
    x_user, x_item = torch.randn(NU, 4), torch.randn(NI, 4)
    data = hetero_data(edge_index, x_user, x_item)
    conv = HeteroConv(
        {
            ("user", "interacts", "item"): LightGCNConv(),
            ("item", "rev_interacts", "user"): LightGCNConv(),
        }
    )
    out = conv(data.x_dict, data.edge_index_dict)
    assert torch.allclose(out["user"], r @ x_item, atol=1e-6)
    assert torch.allclose(out["item"], r.t() @ x_user, atol=1e-6)

    class TwoLayers(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = LightGCNConv(), LightGCNConv()

        def forward(self, x, edge_index):
            return self.conv2(self.conv1(x, edge_index), edge_index)

    model = to_hetero(TwoLayers(), data.metadata(), aggr="sum")
    out = model(data.x_dict, data.edge_index_dict)
    assert torch.allclose(out["user"], r @ (r.t() @ x_user), atol=1e-5)
    assert torch.allclose(out["item"], r.t() @ (r @ x_item), atol=1e-5)


def test_cached():
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    other = torch.tensor([[0, 2], [2, 0]])
    x = torch.randn(3, 2)
    conv = LightGCNConv(cached=True)
    first = conv(x, edge_index)
    assert conv._cached_edge_index is not None
    assert torch.allclose(conv(x, other), first)  # the cached graph is reused
    conv.reset_parameters()
    assert conv._cached_edge_index is None
    assert torch.allclose(conv(x, other), LGConv()(x, other))
    uncached = LightGCNConv()
    uncached(x, edge_index)
    assert torch.allclose(uncached(x, other), LGConv()(x, other))
    sparse_conv = LightGCNConv(cached=True)
    adj_t = to_torch_csr_tensor(edge_index.flip(0), size=3)
    assert torch.allclose(sparse_conv(x, adj_t), first)
    assert sparse_conv._cached_adj_t is not None
    assert torch.allclose(sparse_conv(x, to_torch_csr_tensor(other, size=3)), first)


def test_no_nan_with_zero_weights_and_isolated_nodes():
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    weight = torch.tensor([0.0, 0.0, 1.0, 1.0])
    x = torch.randn(5, 3)  # nodes 3 and 4 are isolated
    out = LightGCNConv()(x, edge_index, weight)
    assert torch.isfinite(out).all()
    assert out[0].abs().sum() == 0 and out[3:].abs().sum() == 0
    _, norm = lightgcn_norm(edge_index, weight, (5, 5))
    assert torch.isfinite(norm).all() and norm[:2].abs().sum() == 0
    bip = LightGCNConv()((x[:3], x[:4]), edge_index, weight)
    assert torch.isfinite(bip).all() and bip[3].abs().sum() == 0


def test_normalize_false_and_gradients():
    edge_index = torch.tensor([[0, 1, 1, 2, 2], [1, 0, 2, 1, 1]])  # a duplicate edge
    weight = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    a = torch.zeros(3, 3, dtype=torch.float64)
    for (src, dst), w in zip(edge_index.t().tolist(), weight.tolist()):
        a[dst, src] += w
    assert torch.allclose(LightGCNConv(normalize=False)(x, edge_index, weight), a @ x)
    adj_t = to_torch_coo_tensor(edge_index.flip(0), weight, 3)
    assert torch.allclose(LightGCNConv(normalize=False)(x, adj_t), a @ x)
    assert torch.autograd.gradcheck(lambda t: LightGCNConv()(t, edge_index, weight), (x,))
    csr = to_torch_csr_tensor(edge_index.flip(0), weight, 3)
    assert torch.autograd.gradcheck(lambda t: LightGCNConv()(t, csr), (x,))


def test_validation():
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match=r"edge_index\[1\].*index 3.*\[0, 3\)"):
        LightGCNConv()(x, torch.tensor([[0, 1], [1, 3]]))
    with pytest.raises(ValueError, match=r"edge_index\[0\].*index -1"):
        LightGCNConv()(x, torch.tensor([[-1, 1], [1, 0]]))
    with pytest.raises(ValueError, match="edge_weight"):
        LightGCNConv()(x, to_torch_csr_tensor(torch.tensor([[0], [1]]), size=3), torch.ones(1))
    with pytest.raises(ValueError, match="size"):
        LightGCNConv()((x, None), torch.tensor([[0], [1]]))
    assert repr(LightGCNConv(cached=True)) == "LightGCNConv(normalize=True, cached=True)"


@pytest.mark.sparse
@pytest.mark.skipif(not WITH_TORCH_SPARSE, reason="torch_sparse is not installed")
def test_sparse_tensor(graph, dense):
    from torch_sparse import SparseTensor

    edge_index, weight = graph(NU, NI, weighted=True)
    full, full_weight = homogeneous(edge_index, weight)
    x = torch.randn(NU + NI, 3, dtype=torch.float64)
    adj_t = SparseTensor.from_edge_index(full.flip(0), full_weight, sparse_sizes=(NU + NI, NU + NI))
    expected = dense_homogeneous(full, NU + NI, full_weight) @ x
    assert torch.allclose(LightGCNConv()(x, adj_t), expected, atol=1e-12)
    assert torch.allclose(LightGCNConv(cached=True)(x, adj_t.set_value(None)), LGConv()(x, full))
    bip_t = SparseTensor.from_edge_index(edge_index.flip(0), weight, sparse_sizes=(NI, NU))
    x_user, x_item = x[:NU], x[NU:]
    expected = dense(edge_index, NU, NI, weight).t() @ x_user
    assert torch.allclose(LightGCNConv()((x_user, x_item), bip_t), expected, atol=1e-12)
