import copy

import pytest
import torch
from torch.func import functional_call

from lightgcn_pyg.nn import LightGCN, propagation

NU, NI = 7, 9  # users, items


def dense_final(model, r, alpha=None):
    """Naive dense propagation: layer k is (R I_{k-1}, R^T U_{k-1})."""
    num_layers = model.num_layers
    alpha = alpha if alpha is not None else [1.0 / (num_layers + 1)] * (num_layers + 1)
    x_user = model.user_embedding.weight.detach().double()
    x_item = model.item_embedding.weight.detach().double()
    out_user, out_item = alpha[0] * x_user, alpha[0] * x_item
    for k in range(1, num_layers + 1):
        x_user, x_item = r @ x_item, r.t() @ x_user
        out_user, out_item = out_user + alpha[k] * x_user, out_item + alpha[k] * x_item
    return out_user, out_item


def make_model(graph, num_layers=3, weighted=False, **kwargs):
    torch.manual_seed(0)
    edge_index, weight = graph(NU, NI, weighted=weighted)
    model = LightGCN(
        NU, NI, edge_index, embedding_dim=4, num_layers=num_layers, edge_weight=weight, **kwargs
    )
    return model.double(), edge_index, weight


@pytest.mark.parametrize("num_layers", [0, 1, 2, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_full_forward_equals_dense(graph, dense, num_layers, weighted):
    model, edge_index, weight = make_model(graph, num_layers, weighted)
    r = dense(edge_index, NU, NI, weight)
    out_user, out_item = model()
    exp_user, exp_item = dense_final(model, r)
    assert out_user.shape == (NU, 4) and out_item.shape == (NI, 4)
    assert torch.allclose(out_user, exp_user, atol=1e-12)
    assert torch.allclose(out_item, exp_item, atol=1e-12)
    if num_layers == 0:  # matrix factorisation: the ego embeddings
        assert torch.allclose(out_user, model.user_embedding.weight)


@pytest.mark.parametrize("num_layers", [0, 1, 2, 3])
@pytest.mark.parametrize("weights", ["mean", "fixed", "learnable"])
def test_fast_path_equals_full_then_index(graph, num_layers, weights):
    kwargs = {}
    if weights == "fixed":
        kwargs["layer_weights"] = [0.5 + k for k in range(num_layers + 1)]
    elif weights == "learnable":
        kwargs["learnable_weights"] = True
    model, _, _ = make_model(graph, num_layers, weighted=True, **kwargs)
    user_index = torch.tensor([0, 3, 3, 6, 1, 0])  # duplicates, isolated user 6
    item_index = torch.tensor([1, 8, 2, 1, 7, 1, 4, 4])  # pos + neg, isolated 7 / 8
    params = [p for p in model.parameters()]

    fast_user, fast_item = model(user_index, item_index)
    loss = (fast_user.pow(2).sum() + (fast_item * torch.arange(8.0)[:, None]).sum()) / 3
    fast_grads = torch.autograd.grad(loss, params)

    full_user, full_item = model()
    ref_user, ref_item = full_user[user_index], full_item[item_index]
    loss = (ref_user.pow(2).sum() + (ref_item * torch.arange(8.0)[:, None]).sum()) / 3
    ref_grads = torch.autograd.grad(loss, params)

    assert torch.allclose(fast_user, ref_user, atol=1e-10)
    assert torch.allclose(fast_item, ref_item, atol=1e-10)
    for fast, ref in zip(fast_grads, ref_grads):
        assert torch.allclose(fast, ref, atol=1e-10)
    assert fast_grads[0].abs().sum() > 0


@pytest.mark.parametrize("num_layers", [0, 1, 3])
def test_fast_path_with_ego_rows_equals_reference(graph, num_layers):
    """The BPR + L2 loss the trainer builds: final rows and layer-0 rows together."""
    model, _, _ = make_model(graph, num_layers, weighted=True, learnable_weights=True)
    user_index = torch.tensor([0, 3, 3, 6, 1])
    item_index = torch.tensor([1, 8, 2, 1, 7, 1, 4, 4, 0, 5])
    params = list(model.parameters())

    def loss_of(user, item, ego_user, ego_item):
        scores = (user.repeat(2, 1) * item).sum(-1)
        return torch.nn.functional.softplus(-scores).mean() + 0.3 * (
            ego_user.pow(2).sum() + ego_item.pow(2).sum()
        )

    fast = model(user_index, item_index, return_ego=True)
    assert len(fast) == 4
    fast_grads = torch.autograd.grad(loss_of(*fast), params)

    full_user, full_item = model()
    ego = model.ego_embeddings(user_index, item_index)
    ref = (full_user[user_index], full_item[item_index], *ego)
    ref_grads = torch.autograd.grad(loss_of(*ref), params)
    for a, b in zip(fast, ref):
        assert torch.allclose(a, b, atol=1e-10)
    for a, b in zip(fast_grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-10)


def count_products(monkeypatch):
    """Records the number of non-zeros of every sparse-dense product."""
    from lightgcn_pyg.nn import propagation

    calls = []
    original = propagation._CSR._csr_matmul

    def counting(self, x):
        calls.append(self.col.numel())
        return original(self, x)

    monkeypatch.setattr(propagation._CSR, "_csr_matmul", counting)
    return calls


@pytest.mark.parametrize("num_layers", [1, 3])
def test_sparse_products_per_step(graph, monkeypatch, num_layers):
    model, edge_index, _ = make_model(graph, num_layers)
    num_edges = model.adjacency().num_edges
    calls = count_products(monkeypatch)
    user, item = model()
    (user.sum() + item.sum()).backward()
    assert calls == [num_edges] * (4 * num_layers)  # 2K forward + 2K backward
    calls.clear()
    users, items = torch.tensor([0, 1]), torch.tensor([2, 3, 2])
    user, item = model(users, items)
    (user.sum() + item.sum()).backward()
    # The last layer only at the batch rows: 4 (K - 1) full products, plus 4 small ones
    # (2 forward, 2 backward) over the edges of the batch's rows only.
    full = [c for c in calls if c == num_edges]
    small = [c for c in calls if c != num_edges]
    assert len(full) == 4 * (num_layers - 1)
    batch_edges = int(
        torch.isin(edge_index[0], users).sum() + torch.isin(edge_index[1], items).sum()
    )
    assert len(small) == 4 and sum(small) == 2 * batch_edges


def test_gradcheck(graph):
    model, _, _ = make_model(graph, 2, weighted=True, learnable_weights=True)
    user_index, item_index = torch.tensor([0, 2, 2]), torch.tensor([1, 5, 8])
    names = ["user_embedding.weight", "item_embedding.weight", "layer_weight"]
    inputs = tuple(
        dict(model.named_parameters())[n].detach().clone().requires_grad_() for n in names
    )

    def fast(*tensors):
        return functional_call(model, dict(zip(names, tensors)), (user_index, item_index))

    def full(*tensors):
        return functional_call(model, dict(zip(names, tensors)), ())

    assert torch.autograd.gradcheck(fast, inputs)
    assert torch.autograd.gradcheck(full, inputs)


def test_layer_weights(graph, dense):
    model, edge_index, _ = make_model(graph, 2, layer_weights=[0.2, 0.3, 0.5])
    r = dense(edge_index, NU, NI)
    out_user, out_item = model()
    exp_user, exp_item = dense_final(model, r, [0.2, 0.3, 0.5])
    assert torch.allclose(out_user, exp_user) and torch.allclose(out_item, exp_item)
    assert model.layer_weight is None and "layer_weight" not in model.state_dict()

    learn, _, _ = make_model(graph, 2, learnable_weights=True)
    assert isinstance(learn.layer_weight, torch.nn.Parameter)
    assert torch.allclose(learn.layer_weight, torch.full((3,), 1 / 3, dtype=torch.float64))
    user, _ = learn()
    user.sum().backward()
    assert learn.layer_weight.grad is not None and learn.layer_weight.grad.abs().sum() > 0
    with torch.no_grad():
        learn.layer_weight.copy_(torch.tensor([0.2, 0.3, 0.5]))
    assert torch.allclose(learn()[0], out_user)
    learn.reset_parameters()
    assert torch.allclose(learn.layer_weight, torch.full((3,), 1 / 3, dtype=torch.float64))

    with pytest.raises(ValueError, match="layer_weights.*3"):
        make_model(graph, 2, layer_weights=[0.5, 0.5])


def test_edge_dropout(graph, dense):
    model, edge_index, _ = make_model(graph, 2, keep_prob=0.6)
    reference, _, _ = make_model(graph, 2)
    model.eval()
    assert torch.equal(model()[0], reference()[0])  # never applied in eval mode
    assert torch.equal(model.embeddings()[0], reference.embeddings()[0])
    model.train()
    assert torch.equal(model.embeddings()[0], reference.embeddings()[0])  # nor there
    first, second = model()[0], model()[0]
    assert not torch.allclose(first, second)  # resampled on every forward
    # One layer: E[dropped R] = R, so the mean of many samples converges.
    one, _, _ = make_model(graph, 1, keep_prob=0.6, layer_weights=[0.0, 1.0])
    r = dense(edge_index, NU, NI)
    expected = r @ one.item_embedding.weight.detach()
    with torch.no_grad():
        mean = sum(one()[0] for _ in range(400)) / 400
    bound = 4.5 * ((0.4 / (0.6 * 400)) * (r.pow(2) @ one.item_embedding.weight.pow(2))).sqrt()
    assert ((mean - expected).abs() <= bound + 1e-9).all()
    assert not torch.allclose(mean, expected, atol=1e-9)  # it is random


def test_embeddings_cache(graph):
    model, _, _ = make_model(graph, 2)
    model.eval()
    first = model.embeddings()
    assert model.embeddings() is first  # no step: the same object
    assert first[0].requires_grad is False
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model.train()
    user, item = model(torch.tensor([0, 1]), torch.tensor([2, 3]))
    (user * item).sum().backward()
    optimizer.step()
    model.eval()
    second = model.embeddings()
    assert second is not first and not torch.allclose(second[0], first[0])
    assert model.embeddings() is second
    model.load_state_dict(copy.deepcopy(model.state_dict()))
    third = model.embeddings()
    assert third is not second  # load_state_dict writes the parameters
    assert torch.allclose(third[0], second[0])
    model.train()
    fourth = model.embeddings()
    assert fourth is not third  # the training flag is part of the key
    assert torch.allclose(fourth[0], third[0])


def test_score(graph):
    model, _, _ = make_model(graph, 2)
    user_index, item_index = torch.tensor([0, 3, 6]), torch.tensor([1, 1, 8])
    user_emb, item_emb = model()
    expected = (user_emb[user_index] * item_emb[item_index]).sum(-1)
    train_score = model.score(user_index, item_index)
    assert train_score.requires_grad and torch.allclose(train_score, expected)
    model.eval()
    assert torch.allclose(model.score(user_index, item_index), expected)
    with pytest.raises(ValueError, match="same shape"):
        model.score(user_index, item_index[:2])


@pytest.mark.parametrize("num_layers", [0, 2])
def test_recommend_never_returns_seen_items(graph, num_layers):
    model, edge_index, _ = make_model(graph, num_layers)
    model.eval()
    user_index = torch.tensor([0, 1, 2, 3, 4, 5, 6, 2])
    k = NI - max(int((edge_index[0] == u).sum()) for u in range(NU))
    scores, items = model.recommend(user_index, k=k)
    assert scores.shape == items.shape == (8, k)
    user_emb, item_emb = model.embeddings()
    seen = {(u, i) for u, i in edge_index.t().tolist()}
    for row, u in enumerate(user_index.tolist()):  # naive per-user reference
        candidates = [
            (float(user_emb[u] @ item_emb[i]), i) for i in range(NI) if (u, i) not in seen
        ]
        candidates.sort(key=lambda t: -t[0])
        assert items[row].tolist() == [i for _, i in candidates[:k]]
        assert torch.allclose(scores[row], torch.tensor([s for s, _ in candidates[:k]]).double())
        assert not any((u, i) in seen for i in items[row].tolist())
    assert torch.all(scores[:, :-1] >= scores[:, 1:])  # best first

    _, all_items = model.recommend(torch.tensor([0]), k=NI, exclude_seen=False)
    assert sorted(all_items[0].tolist()) == list(range(NI))
    with pytest.raises(ValueError, match="unseen items"):
        model.recommend(user_index, k=k + 1)
    with pytest.raises(ValueError, match="'k'"):
        model.recommend(user_index, k=0)


def test_out_of_range_indices(graph):
    model, _, _ = make_model(graph, 2)
    bad_user, ok_item = torch.tensor([0, NU]), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=rf"user_index.*index {NU}"):
        model(bad_user, ok_item)
    with pytest.raises(ValueError, match=r"item_index.*index -1"):
        model(torch.tensor([0]), torch.tensor([-1]))
    with pytest.raises(ValueError, match=rf"user_index.*index {NU}"):
        model.ego_embeddings(bad_user, ok_item)
    model.eval()
    with pytest.raises(ValueError, match=rf"item_index.*index {NI + 2}"):
        model.score(torch.tensor([0]), torch.tensor([NI + 2]))
    with pytest.raises(ValueError, match=rf"user_index.*index {NU + 1}"):
        model.recommend(torch.tensor([NU + 1]), k=1)
    with pytest.raises(ValueError, match="together"):
        model(torch.tensor([0]))
    with pytest.raises(ValueError, match="integer"):
        model(torch.tensor([0.0]), ok_item)


def test_constructor_validation(graph):
    edge_index, _ = graph(NU, NI)
    with pytest.raises(ValueError, match=r"edge_index\[1\].*index 6.*\[0, 6\)"):
        LightGCN(NU, 6, edge_index)
    with pytest.raises(ValueError, match="num_layers"):
        LightGCN(NU, NI, edge_index, num_layers=-1)
    with pytest.raises(ValueError, match="init"):
        LightGCN(NU, NI, edge_index, init="uniform")
    with pytest.raises(ValueError, match="keep_prob"):
        LightGCN(NU, NI, edge_index, keep_prob=0.0)
    with pytest.raises(ValueError, match="embedding_dim"):
        LightGCN(NU, NI, edge_index, embedding_dim=0)


def test_init_and_ego_embeddings(graph):
    edge_index, _ = graph(NU, NI)
    torch.manual_seed(0)
    xavier = LightGCN(200, 300, edge_index, embedding_dim=64)
    bound = (6 / (64 + 200)) ** 0.5
    weight = xavier.user_embedding.weight
    assert weight.abs().max() <= bound and weight.abs().max() > 0.9 * bound
    normal = LightGCN(200, 300, edge_index, embedding_dim=64, init="normal", init_std=0.1)
    assert abs(normal.item_embedding.weight.std().item() - 0.1) < 0.005
    user, item = normal.ego_embeddings(torch.tensor([3, 3]), torch.tensor([7]))
    assert torch.equal(user, normal.user_embedding.weight[[3, 3]])
    assert torch.equal(item, normal.item_embedding.weight[[7]])


def test_state_dict_rebuilds_model(graph):
    model, edge_index, weight = make_model(graph, 2, weighted=True)
    state = model.state_dict()
    assert set(state) == {
        "user_embedding.weight",
        "item_embedding.weight",
        "edge_index",
        "edge_weight",
    }
    rebuilt = LightGCN(NU, NI, state["edge_index"], 4, 2, edge_weight=state["edge_weight"]).double()
    rebuilt.load_state_dict(state)
    assert torch.allclose(rebuilt()[0], model()[0])
    assert model.adjacency().dtype == torch.float64  # follows .double()
    model.float()
    assert model.adjacency().dtype == torch.float32
    assert torch.allclose(model()[0].double(), rebuilt()[0], atol=1e-5)
    assert "LightGCN(7, 9" in repr(model)


def test_coo_fallback_in_model(graph, monkeypatch):
    model, _, _ = make_model(graph, 3)
    user_index, item_index = torch.tensor([0, 1, 1]), torch.tensor([2, 3])
    expected = model(user_index, item_index)
    expected_grad = torch.autograd.grad(expected[0].sum() + expected[1].sum(), model.parameters())

    def unsupported(*args, **kwargs):
        raise RuntimeError("sparse CSR is not supported on this device")

    monkeypatch.setattr(propagation._CSR, "_csr_matmul", unsupported)
    fallback = copy.deepcopy(model)
    fallback._adj_key = ()  # force a rebuild, as after a device change
    out = fallback(user_index, item_index)
    grad = torch.autograd.grad(out[0].sum() + out[1].sum(), fallback.parameters())
    for a, b in zip(out + grad, expected + expected_grad):
        assert torch.allclose(a, b, atol=1e-10)


def test_empty_batch(graph):
    model, _, _ = make_model(graph, 2)
    empty = torch.empty(0, dtype=torch.long)
    user, item = model(empty, empty)
    assert user.shape == item.shape == (0, 4)
    (user.sum() + item.sum()).backward()
    assert model.user_embedding.weight.grad.abs().sum() == 0
    scores, items = model.recommend(empty, k=3)
    assert scores.shape == items.shape == (0, 3)


def test_cache_sees_fused_optimizer_steps(graph):
    """Adam(fused=True) does not bump version counters; the cache must still notice."""
    model, _, _ = make_model(graph, 2)
    model = model.float()
    try:
        opt = torch.optim.Adam(model.parameters(), lr=0.1, fused=True)
    except RuntimeError:
        pytest.skip("no fused Adam on this build")
    model.eval()
    before = model.embeddings()[0].clone()
    assert model.embeddings()[0] is model.embeddings()[0]  # cached while nothing changes
    model.train()
    user, item = model(torch.tensor([0, 1]), torch.tensor([2, 3]))
    (user.sum() - item.sum()).backward()
    versions = [p._version for p in model.parameters()]
    opt.step()
    model.eval()
    after = model.embeddings()[0]
    full = model._propagate(model.adjacency())[0]
    assert not torch.allclose(before, after)
    assert torch.allclose(after, full)
    # The point of the test: the fused kernel really did not bump the counters here.
    if [p._version for p in model.parameters()] != versions:
        pytest.skip("this torch bumps version counters in fused Adam; covered elsewhere")


def test_fast_path_refuses_double_backward(graph):
    """The hand-written backward is not differentiable: a second-order gradient raises instead of
    coming out silently wrong."""
    model, _, _ = make_model(graph, 3, learnable_weights=True)
    user_out, item_out = model(torch.tensor([0, 3]), torch.tensor([1, 2]))
    loss = (user_out * item_out).sum()
    with pytest.raises(RuntimeError, match="has no second-order gradient; call the model"):
        torch.autograd.grad(loss, list(model.parameters()), create_graph=True)
    # A plain backward of the same kind of graph still works.
    user_out, item_out = model(torch.tensor([0, 3]), torch.tensor([1, 2]))
    assert all(g.abs().sum() > 0 for g in torch.autograd.grad((user_out * item_out).sum(),
                                                              list(model.parameters())))  # fmt: skip
    # The adjacency still uses its CSR products afterwards.
    assert model.adjacency()._user_op.fwd.csr_ok is True


def test_csr_product_recorded_by_autograd_keeps_the_csr_path(graph):
    """A product called where autograd records (grad mode, input requiring grad) cannot write
    into a buffer with out=: it must still use CSR (not switch to the slow fallback for good)."""
    edge_index, _ = graph(NU, NI)
    adj = propagation.BipartiteAdjacency(edge_index, NU, NI)
    m = adj._user_op.fwd
    x = torch.randn(NI, 4, requires_grad=True)
    out = m.matmul(x, "auto")
    assert m.csr_ok is True and out.requires_grad
    torch.testing.assert_close(out, adj.to_dense() @ x)
    (g,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(g, adj.to_dense().t() @ torch.ones(NU, 4))


def test_float64_model_builds_its_adjacency_in_float64(graph):
    edge_index, _ = graph(NU, NI)
    model = LightGCN(NU, NI, edge_index, embedding_dim=4, num_layers=2).double()
    value = model.adjacency().value
    assert value.dtype == torch.float64
    deg_u = torch.bincount(edge_index[0], minlength=NU).double()
    deg_i = torch.bincount(edge_index[1], minlength=NI).double()
    adj = model.adjacency()
    row = torch.repeat_interleave(torch.arange(NU), adj.rowptr.diff().long())
    expected = 1.0 / torch.sqrt(deg_u[row] * deg_i[adj.col.long()])
    # Exact in float64 (a float32 value upcast is off by ~1e-8).
    torch.testing.assert_close(value, expected, rtol=1e-15, atol=0)
