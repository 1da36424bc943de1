import csv
import json
import math

import pytest
import torch
from torch_geometric.metrics import (
    LinkPredHitRatio,
    LinkPredMAP,
    LinkPredMetricCollection,
    LinkPredMRR,
    LinkPredNDCG,
    LinkPredPrecision,
    LinkPredRecall,
)

from lightgcn_pyg.evaluation import (
    ALL_METRICS,
    HIT,
    MAP,
    MRR,
    NDCG,
    PRECISION,
    RECALL,
    EvalResult,
    Evaluator,
    metric_key,
    popularity_embeddings,
    popularity_scores,
)

NUM_USERS, NUM_ITEMS, DIM = 23, 37, 8
KS = (1, 5, 10)


def naive_metrics(ranked_hits, num_relevant, ks):
    out = {}
    for k in ks:
        hits = ranked_hits[:k]
        ideal = min(num_relevant, k)
        dcg = sum(1.0 / math.log2(i + 2) for i, h in enumerate(hits) if h)
        idcg = sum(1.0 / math.log2(i + 2) for i in range(ideal))
        ap, seen = 0.0, 0
        for i, h in enumerate(hits):
            if h:
                seen += 1
                ap += seen / (i + 1)
        first = next((i for i, h in enumerate(hits) if h), None)
        out[metric_key(RECALL, k)] = sum(hits) / num_relevant
        out[metric_key(PRECISION, k)] = sum(hits) / k
        out[metric_key(NDCG, k)] = dcg / idcg
        out[metric_key(HIT, k)] = float(sum(hits) > 0)
        out[metric_key(MAP, k)] = ap / ideal
        out[metric_key(MRR, k)] = 0.0 if first is None else 1.0 / (first + 1)
    return out


def naive_evaluate(train, test, user_emb, item_emb, ks, cold_users="include"):
    """Per-user Python reference: dense scores, sets, a full sort per user."""
    scores = (user_emb.double() @ item_emb.double().t()).tolist()
    train_items = {u: set() for u in range(user_emb.size(0))}
    test_items = {u: set() for u in range(user_emb.size(0))}
    for u, i in train.t().tolist():
        train_items[u].add(i)
    for u, i in test.t().tolist():
        test_items[u].add(i)
    per_user = {}
    for u in range(user_emb.size(0)):
        if not test_items[u] or (cold_users == "exclude" and not train_items[u]):
            continue
        masked = train_items[u] - test_items[u]
        candidates = [i for i in range(item_emb.size(0)) if i not in masked]
        ranked = sorted(candidates, key=lambda i: -scores[u][i])[: max(ks)]
        ranked_hits = [int(i in test_items[u]) for i in ranked] + [0] * max(ks)
        per_user[u] = naive_metrics(ranked_hits, len(test_items[u]), ks)
    keys = list(next(iter(per_user.values())))
    means = {key: sum(m[key] for m in per_user.values()) / len(per_user) for key in keys}
    return means, per_user


def make_data(seed=0):
    gen = torch.Generator().manual_seed(seed)
    train = torch.stack(
        [
            torch.randint(0, NUM_USERS - 3, (120,), generator=gen),
            torch.randint(0, NUM_ITEMS, (120,), generator=gen),
        ]
    )
    # Users 0..NUM_USERS-4 (some without test items), 20-21 cold, 22 has no interaction.
    test = torch.stack(
        [
            torch.randint(0, NUM_USERS - 5, (40,), generator=gen),
            torch.randint(0, NUM_ITEMS, (40,), generator=gen),
        ]
    )
    test = torch.cat([test, torch.tensor([[20, 20, 21], [3, 4, 5]])], dim=1)
    # Pairs in both train and test, and duplicated pairs.
    test = torch.cat([test, train[:, :6], test[:, :3]], dim=1)
    train = torch.cat([train, train[:, :4]], dim=1)
    user_emb = torch.randn(NUM_USERS, DIM, generator=gen)
    item_emb = torch.randn(NUM_ITEMS, DIM, generator=gen)
    return train, test, user_emb, item_emb


def assert_result_equal(a: EvalResult, b: EvalResult):
    assert a.metrics == b.metrics
    assert a.num_users == b.num_users
    assert a.per_user.keys() == b.per_user.keys()
    for key in a.per_user:
        assert torch.equal(a.per_user[key], b.per_user[key]), key


@pytest.mark.parametrize("cold_users", ["include", "exclude"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_naive_reference(cold_users, seed):
    train, test, user_emb, item_emb = make_data(seed)
    evaluator = Evaluator(train, test, NUM_USERS, NUM_ITEMS, ks=KS, cold_users=cold_users)
    result = evaluator.evaluate(user_emb, item_emb, per_user=True)
    means, per_user = naive_evaluate(train, test, user_emb, item_emb, KS, cold_users)

    assert list(result.metrics) == [metric_key(n, k) for n in ALL_METRICS for k in KS]
    for key, value in means.items():
        assert result[key] == pytest.approx(value, abs=1e-6), key
    assert result.per_user["user"].tolist() == sorted(per_user)
    for row, user in enumerate(result.per_user["user"].tolist()):
        for key, value in per_user[user].items():
            assert result.per_user[key][row].item() == pytest.approx(value, abs=1e-6)
    assert result.num_users == len(per_user) == evaluator.num_eval_users
    assert result.cold_user_policy == cold_users


def test_counts_and_cold_policy():
    train = torch.tensor([[0, 0, 1, 2], [0, 1, 2, 3]])
    test = torch.tensor([[0, 1, 3, 3, 4], [2, 0, 1, 1, 2]])  # Users 3 and 4 are cold.
    num_users, num_items = 6, 5  # User 2 has no test item, user 5 nothing at all.
    include = Evaluator(train, test, num_users, num_items, ks=[2])
    exclude = Evaluator(train, test, num_users, num_items, ks=[2], cold_users="exclude")
    for evaluator in (include, exclude):
        assert evaluator.num_users_without_test == 2
        assert evaluator.num_cold_users == 2
    assert include.num_eval_users == 4
    assert exclude.num_eval_users == 2
    assert include.eval_users.tolist() == [0, 1, 3, 4]
    assert exclude.eval_users.tolist() == [0, 1]

    user_emb, item_emb = torch.ones(num_users, 1), torch.tensor([[5.0], [4.0], [3.0], [2.0], [1.0]])
    result = include.evaluate(user_emb, item_emb, per_user=True)
    # Rankings: u0 [2, 3] (0, 1 masked) -> hit at 1; u1 [0, 1] -> hit at 1;
    # cold u3 [0, 1] -> hit at 2; cold u4 [0, 1] -> miss.
    assert result.per_user["user"].tolist() == [0, 1, 3, 4]
    assert result.per_user["mrr@2"].tolist() == [1.0, 1.0, 0.5, 0.0]
    assert result["mrr@2"] == pytest.approx(2.5 / 4)
    assert result.to_dict()["num_users"] == 4
    assert exclude.evaluate(user_emb, item_emb)["mrr@2"] == pytest.approx(1.0)


def test_training_items_masked_but_test_items_never():
    # User 0: train {0, 1}, test {1, 3}; item 1 is in both sets.
    train = torch.tensor([[0, 0, 1], [0, 1, 2]])
    test = torch.tensor([[0, 0, 1], [1, 3, 2]])
    user_emb = torch.tensor([[1.0], [-1.0]])
    item_emb = torch.tensor([[9.0], [8.0], [7.0], [1.0]])  # Item 0 would rank first for user 0.
    evaluator = Evaluator(train, test, 2, 4, ks=[1, 2, 3])
    result = evaluator.evaluate(user_emb, item_emb, per_user=True)
    # User 0 ranks [1, 2, 3]; user 1 ranks [3, 2, 1] (2 is in train and test: kept).
    assert result.per_user["precision@1"].tolist() == [1.0, 0.0]
    assert result.per_user["recall@2"].tolist() == [0.5, 1.0]
    assert result.per_user["recall@3"].tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(chunk_size=1),
        dict(chunk_size=2),
        dict(chunk_size=7),
        dict(chunk_size=1000),
        dict(memory_budget_mb=1e-6),  # Below one row: one user at a time.
        dict(memory_budget_mb=4 * NUM_ITEMS * 3 / 2**20),  # Three users at a time.
        dict(),
    ],
)
def test_chunking_does_not_change_result(kwargs):
    train, test, user_emb, item_emb = make_data(2)
    reference = Evaluator(train, test, NUM_USERS, NUM_ITEMS, ks=KS, chunk_size=5)
    evaluator = Evaluator(train, test, NUM_USERS, NUM_ITEMS, ks=KS, **kwargs)
    assert_result_equal(
        evaluator.evaluate(user_emb, item_emb, per_user=True),
        reference.evaluate(user_emb, item_emb, per_user=True),
    )


def test_chunk_size_follows_memory_budget():
    train, test, _, _ = make_data()
    evaluator = Evaluator(train, test, NUM_USERS, NUM_ITEMS, memory_budget_mb=1.0)
    assert evaluator.chunk_size_for(4) == 2**20 // (NUM_ITEMS * 4)
    assert evaluator.chunk_size_for(8) == 2**20 // (NUM_ITEMS * 8)
    evaluator = Evaluator(train, test, NUM_USERS, NUM_ITEMS, memory_budget_mb=1e-9)
    assert evaluator.chunk_size_for(4) == 1
    evaluator = Evaluator(train, test, NUM_USERS, NUM_ITEMS, chunk_size=3)
    assert evaluator.chunk_size_for(4) == 3


def test_ties_follow_torch_topk():
    # Integer embeddings produce many tied scores, including at the cut-off.
    gen = torch.Generator().manual_seed(4)
    train, test, _, _ = make_data(4)
    user_emb = torch.randint(0, 2, (NUM_USERS, 2), generator=gen).float()
    item_emb = torch.randint(0, 2, (NUM_ITEMS, 2), generator=gen).float()
    results = [
        Evaluator(train, test, NUM_USERS, NUM_ITEMS, ks=KS, chunk_size=c).evaluate(
            user_emb, item_emb, per_user=True
        )
        for c in (1, 4, NUM_USERS)
    ]
    for other in results[1:]:
        assert_result_equal(results[0], other)

    # Reference: torch.topk over the dense masked score matrix of the evaluated users.
    evaluator = Evaluator(train, test, NUM_USERS, NUM_ITEMS, ks=KS)
    users = evaluator.eval_users
    scores = user_emb[users] @ item_emb.t()
    test_pairs = set(map(tuple, test.t().tolist()))
    for row, u in enumerate(users.tolist()):
        for i in train[1][train[0] == u].tolist():
            if (u, i) not in test_pairs:
                scores[row, i] = float("-inf")
    top_items = scores.topk(max(KS), dim=1).indices
    for row, u in enumerate(users.tolist()):
        relevant = {i for (v, i) in test_pairs if v == u}
        ranked_hits = [int(i in relevant) for i in top_items[row].tolist()]
        for key, value in naive_metrics(ranked_hits, len(relevant), KS).items():
            assert results[0].per_user[key][row].item() == pytest.approx(value, abs=1e-6)


def test_cross_check_with_pyg():
    train, test, user_emb, item_emb = make_data(5)
    evaluator = Evaluator(train, test, NUM_USERS, NUM_ITEMS, ks=KS, chunk_size=4)
    result = evaluator.evaluate(user_emb, item_emb)

    users = evaluator.eval_users
    position = torch.full((NUM_USERS,), -1)
    position[users] = torch.arange(users.numel())
    test_keys = torch.unique(test[0] * NUM_ITEMS + test[1])
    scores = user_emb[users] @ item_emb.t()
    train_keys = train[0] * NUM_ITEMS + train[1]
    masked = train_keys[~torch.isin(train_keys, test_keys) & (position[train[0]] >= 0)]
    scores[position[masked // NUM_ITEMS], masked % NUM_ITEMS] = float("-inf")
    pred_index_mat = scores.topk(max(KS), dim=1).indices
    label_user = position[test_keys // NUM_ITEMS]
    edge_label_index = torch.stack([label_user, test_keys % NUM_ITEMS])[:, label_user >= 0]

    classes = {
        RECALL: LinkPredRecall,
        PRECISION: LinkPredPrecision,
        NDCG: LinkPredNDCG,
        HIT: LinkPredHitRatio,
        MAP: LinkPredMAP,
        MRR: LinkPredMRR,
    }
    collection = LinkPredMetricCollection(
        {metric_key(n, k): cls(k) for n, cls in classes.items() for k in KS}
    )
    collection.update(pred_index_mat, edge_label_index)
    for key, value in collection.compute().items():
        assert result[key] == pytest.approx(value.item(), abs=1e-6), key


def test_popularity_baseline():
    # Item i is trained by users 0..2i (degrees 1, 3, 5, 7, 9: no ties).
    pairs = [(u, i) for i in range(5) for u in range(2 * i + 1)]
    train = torch.tensor(pairs).t()
    train = torch.cat([train, train[:, :3]], dim=1)  # Duplicates count once.
    gen = torch.Generator().manual_seed(6)
    test = torch.stack(
        [torch.randint(0, 10, (15,), generator=gen), torch.randint(0, 5, (15,), generator=gen)]
    )
    assert popularity_scores(train, 5).tolist() == [1.0, 3.0, 5.0, 7.0, 9.0]
    user_emb, item_emb = popularity_embeddings(train, 10, 5)
    assert user_emb.shape == (10, 1) and item_emb.shape == (5, 1)

    evaluator = Evaluator(train, test, 10, 5, ks=[1, 3])
    result = evaluator.evaluate_popularity(per_user=True)
    assert_result_equal(result, evaluator.evaluate(user_emb, item_emb, per_user=True))
    means, _ = naive_evaluate(train, test, user_emb, item_emb, [1, 3])
    for key, value in means.items():
        assert result[key] == pytest.approx(value, abs=1e-6), key


def test_result_export(tmp_path):
    train, test, user_emb, item_emb = make_data(7)
    evaluator = Evaluator(train, test, NUM_USERS, NUM_ITEMS, ks=[2, 4], metrics=[NDCG, RECALL])
    result = evaluator.evaluate(user_emb, item_emb, per_user=True, progress=True)
    assert list(result.metrics) == ["recall@2", "recall@4", "ndcg@2", "ndcg@4"]

    exported = json.loads(json.dumps(result.to_dict()))
    assert exported["num_users"] == result.num_users == evaluator.num_eval_users
    assert exported["num_cold_users"] == 2
    assert exported["num_users_without_test"] == evaluator.num_users_without_test
    assert result["recall@2"] == result.metrics["recall@2"]
    assert result["num_users"] == result.num_users
    with pytest.raises(KeyError, match="precision@2"):
        result["precision@2"]

    path = tmp_path / "per_user.csv"
    result.save_per_user(path)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["user", "recall@2", "recall@4", "ndcg@2", "ndcg@4"]
    assert [int(r[0]) for r in rows[1:]] == result.per_user["user"].tolist()
    assert [float(r[3]) for r in rows[1:]] == result.per_user["ndcg@2"].tolist()
    mean = sum(float(r[4]) for r in rows[1:]) / (len(rows) - 1)
    assert mean == pytest.approx(result["ndcg@4"], abs=1e-12)

    raw_ids = [f"u{u:03d}" for u in range(NUM_USERS)]
    result.save_per_user(path, user_ids=raw_ids)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows[1:]] == [raw_ids[u] for u in result.per_user["user"].tolist()]

    with pytest.raises(ValueError, match="'user_ids' must cover"):
        result.save_per_user(path, user_ids=raw_ids[:3])
    without = evaluator.evaluate(user_emb, item_emb)
    assert without.per_user is None
    with pytest.raises(ValueError, match="per_user=True"):
        without.save_per_user(path)


def test_device_state_is_cached():
    train, test, user_emb, item_emb = make_data()
    evaluator = Evaluator(train, test, NUM_USERS, NUM_ITEMS)
    first = evaluator.evaluate(user_emb, item_emb, per_user=True)
    state = evaluator._states[user_emb.device]
    second = evaluator.evaluate(user_emb, item_emb, per_user=True)
    assert evaluator._states[user_emb.device] is state
    assert_result_equal(first, second)


@pytest.mark.parametrize(
    "device",
    [
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"),
        ),
        pytest.param(
            "mps",
            marks=pytest.mark.skipif(not torch.backends.mps.is_available(), reason="no MPS"),
        ),
    ],
)
def test_accelerator_matches_cpu(device):
    train, test, user_emb, item_emb = make_data(8)
    evaluator = Evaluator(train, test, NUM_USERS, NUM_ITEMS, ks=KS, chunk_size=5)
    cpu = evaluator.evaluate(user_emb, item_emb)
    accelerated = evaluator.evaluate(user_emb.to(device), item_emb.to(device), per_user=True)
    assert accelerated.per_user["user"].device.type == "cpu"
    for key, value in cpu.metrics.items():
        assert accelerated[key] == pytest.approx(value, abs=1e-5), key


EDGES = torch.tensor([[0, 1], [0, 1]])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(ks=[0]), r"'ks' must contain positive integers only in 'Evaluator' \(got 0\)"),
        (dict(ks=[]), r"'ks' must be a non-empty sequence .* 'Evaluator'"),
        (dict(ks=[True]), r"'ks' .* \(got True\)"),
        (dict(ks=[4]), r"'ks' must not exceed 'num_items' \(3\) .* \(got 4\)"),
        (dict(metrics=["auc"]), r"unknown metric in 'Evaluator' \(got 'auc'"),
        (dict(memory_budget_mb=0), r"'memory_budget_mb' .* \(got 0\)"),
        (dict(chunk_size=0), r"'chunk_size' must be a positive integer .* \(got 0\)"),
        (dict(cold_users="maybe"), r"'cold_users' .* \(got 'maybe'\)"),
        (dict(num_users=0), r"'num_users' must be a positive integer .* \(got 0\)"),
        (dict(num_items=2.5), r"'num_items' must be a positive integer .* \(got 2.5\)"),
        (
            dict(train_edge_index=torch.tensor([[0, 5], [0, 1]])),
            r"'train_edge_index' .* user index 5",
        ),
        (dict(train_edge_index=torch.tensor([[0], [-1]])), r"'train_edge_index' .* item index -1"),
        (dict(test_edge_index=torch.tensor([[0], [3]])), r"'test_edge_index' .* item index 3 "),
        (dict(test_edge_index=torch.zeros(2, 0, dtype=torch.long)), r"must not be empty"),
        (dict(test_edge_index=torch.zeros(3, 2, dtype=torch.long)), r"\[2, num_edges\]"),
        (dict(train_edge_index=torch.zeros(2, 1)), r"'train_edge_index' must hold integer"),
    ],
)
def test_init_validation(kwargs, match):
    args = dict(train_edge_index=EDGES, test_edge_index=EDGES, num_users=2, num_items=3, ks=[1])
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Evaluator(**args)


def test_no_user_left_raises():
    test = torch.tensor([[1], [2]])  # User 1 is cold.
    with pytest.raises(ValueError, match="No user left to evaluate"):
        Evaluator(torch.tensor([[0], [0]]), test, 2, 3, ks=[1], cold_users="exclude")


@pytest.mark.parametrize(
    "user_emb, item_emb, match",
    [
        (torch.ones(3, 4), torch.ones(3, 4), r"'user_emb' must have shape \[2, dim\].*\(3, 4\)"),
        (torch.ones(2, 4), torch.ones(3), r"'item_emb' must have shape \[3, dim\]"),
        (torch.ones(2, 4), torch.ones(3, 5), r"same dimension .* \(got 4 and 5\)"),
        (torch.ones(2, 4, dtype=torch.long), torch.ones(3, 4), r"'user_emb' must be floating"),
        (torch.ones(2, 4), torch.ones(3, 4, dtype=torch.float64), r"share device and dtype"),
    ],
)
def test_embedding_validation(user_emb, item_emb, match):
    evaluator = Evaluator(EDGES, EDGES, 2, 3, ks=[1])
    with pytest.raises(ValueError, match=match):
        evaluator.evaluate(user_emb, item_emb)
