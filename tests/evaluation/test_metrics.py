import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.metrics import (
    LinkPredHitRatio,
    LinkPredMAP,
    LinkPredMetricCollection,
    LinkPredMRR,
    LinkPredNDCG,
    LinkPredPrecision,
    LinkPredRecall,
)

from lightgcn_pyg.evaluation.metrics import (
    ALL_METRICS,
    HIT,
    MAP,
    MRR,
    NDCG,
    PRECISION,
    RECALL,
    metric_key,
    topk_metrics,
)


def naive_user_metrics(ranked_hits, num_relevant, ks):
    """Per-user reference: plain Python over one ranked list of 0/1 hits."""
    out = {}
    for k in ks:
        hits = ranked_hits[:k]
        num_hits = sum(hits)
        if num_relevant == 0:
            values = dict.fromkeys(ALL_METRICS, 0.0)
        else:
            ideal = min(num_relevant, k)
            dcg = sum(1.0 / math.log2(i + 2) for i, h in enumerate(hits) if h)
            idcg = sum(1.0 / math.log2(i + 2) for i in range(ideal))
            precision_sum, seen = 0.0, 0
            for i, h in enumerate(hits):
                if h:
                    seen += 1
                    precision_sum += seen / (i + 1)
            first = next((i for i, h in enumerate(hits) if h), None)
            values = {
                RECALL: num_hits / num_relevant,
                PRECISION: num_hits / k,
                NDCG: dcg / idcg,
                HIT: float(num_hits > 0),
                MAP: precision_sum / ideal,
                MRR: 0.0 if first is None else 1.0 / (first + 1),
            }
        for name, value in values.items():
            out[metric_key(name, k)] = value
    return out


def assert_matches_naive(hits, num_relevant, ks):
    out = topk_metrics(hits, num_relevant, ks)
    assert set(out) == {metric_key(n, k) for n in ALL_METRICS for k in ks}
    for u in range(hits.size(0)):
        expected = naive_user_metrics(hits[u].int().tolist(), int(num_relevant[u]), ks)
        for key, value in expected.items():
            assert out[key][u].item() == pytest.approx(value, abs=1e-6), (u, key)


def test_worked_examples():
    # 3 test items, top-3 hits [1, 0, 0]: IDCG over 3 positions, not 1.
    out = topk_metrics(torch.tensor([[True, False, False]]), torch.tensor([3]), ks=[3])
    assert out["ndcg@3"].item() == pytest.approx(1 / (1 + 1 / math.log2(3) + 1 / 2), abs=1e-6)
    assert out["ndcg@3"].item() == pytest.approx(0.4693, abs=1e-4)
    assert out["recall@3"].item() == pytest.approx(1 / 3)
    assert out["precision@3"].item() == pytest.approx(1 / 3)
    assert out["map@3"].item() == pytest.approx(1 / 3)
    assert out["mrr@3"].item() == 1.0
    assert out["hit@3"].item() == 1.0

    # 2 test items ranked 1st and 3rd.
    out = topk_metrics(torch.tensor([[True, False, True]]), torch.tensor([2]), ks=[2, 3])
    assert out["recall@2"].item() == pytest.approx(0.5)
    assert out["precision@2"].item() == pytest.approx(0.5)
    assert out["recall@3"].item() == pytest.approx(1.0)
    assert out["precision@3"].item() == pytest.approx(2 / 3)
    assert out["map@2"].item() == pytest.approx(1 / 2)  # (1/1) / min(2, 2)
    assert out["map@3"].item() == pytest.approx((1 + 2 / 3) / 2)
    ndcg3 = (1 + 1 / 2) / (1 + 1 / math.log2(3))
    assert out["ndcg@3"].item() == pytest.approx(ndcg3, abs=1e-6)

    # First hit at rank 2.
    out = topk_metrics(torch.tensor([[False, True, True]]), torch.tensor([5]), ks=[1, 3])
    assert out["mrr@1"].item() == 0.0
    assert out["hit@1"].item() == 0.0
    assert out["mrr@3"].item() == pytest.approx(0.5)
    assert out["map@3"].item() == pytest.approx((1 / 2 + 2 / 3) / 3)


@pytest.mark.parametrize("ks", [[1], [3, 1, 5], [2, 8]])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_naive_reference(ks, seed):
    gen = torch.Generator().manual_seed(seed)
    hits = torch.rand(40, max(ks), generator=gen) < 0.3
    extra = torch.randint(0, 4, (40,), generator=gen)
    num_relevant = hits.sum(dim=1) + extra
    assert_matches_naive(hits, num_relevant, ks)


def test_user_without_relevant_items_is_zero():
    out = topk_metrics(torch.zeros(2, 4, dtype=torch.bool), torch.tensor([0, 2]), ks=[4])
    for value in out.values():
        assert value.tolist() == [0.0, 0.0]


def test_metric_subset_and_key_order():
    hits = torch.tensor([[True, False], [False, False]])
    out = topk_metrics(hits, torch.tensor([1, 1]), ks=[2, 1], metrics=[NDCG, RECALL])
    assert list(out) == ["recall@1", "recall@2", "ndcg@1", "ndcg@2"]
    assert out["recall@2"].tolist() == [1.0, 0.0]
    assert out["ndcg@1"].dtype == torch.float64


def test_cross_check_with_pyg():
    gen = torch.Generator().manual_seed(3)
    num_users, num_items, max_k = 30, 25, 10
    pred_index_mat = torch.stack(
        [torch.randperm(num_items, generator=gen)[:max_k] for _ in range(num_users)]
    )
    label_user = torch.randint(0, num_users, (80,), generator=gen)
    label_item = torch.randint(0, num_items, (80,), generator=gen)
    keys = torch.unique(label_user * num_items + label_item)
    edge_label_index = torch.stack([keys // num_items, keys % num_items])

    hits = torch.isin(torch.arange(num_users).view(-1, 1) * num_items + pred_index_mat, keys)
    num_relevant = torch.bincount(edge_label_index[0], minlength=num_users)
    ks = [1, 5, 10]
    ours = topk_metrics(hits, num_relevant, ks)

    pyg_classes = {
        RECALL: LinkPredRecall,
        PRECISION: LinkPredPrecision,
        NDCG: LinkPredNDCG,
        HIT: LinkPredHitRatio,
        MAP: LinkPredMAP,
        MRR: LinkPredMRR,
    }
    collection = LinkPredMetricCollection(
        {metric_key(n, k): cls(k) for n, cls in pyg_classes.items() for k in ks}
    )
    collection.update(pred_index_mat, edge_label_index)
    pyg = collection.compute()
    evaluated = num_relevant > 0  # PyG averages over users with labels.
    assert 0 < int(evaluated.sum()) < num_users
    for key, value in pyg.items():
        assert ours[key][evaluated].mean().item() == pytest.approx(value.item(), abs=1e-6), key


@settings(derandomize=True, max_examples=40, deadline=None)
@given(
    rows=st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=1, max_size=8),
    extra=st.integers(min_value=0, max_value=3),
    ks=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=3),
)
def test_matches_naive_reference_property(rows, extra, ks):
    hits = torch.tensor(rows)
    num_relevant = hits.sum(dim=1) + extra
    assert_matches_naive(hits, num_relevant, sorted(set(ks)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(ks=[0]), r"'ks' must contain positive integers only in 'topk_metrics' \(got 0\)"),
        (dict(ks=[True]), r"'ks' .* \(got True\)"),
        (dict(ks=[2.0]), r"'ks' .* \(got 2.0\)"),
        (dict(ks=[]), r"'ks' must be a non-empty sequence"),
        (dict(ks=3), r"'ks' must be a non-empty sequence .* \(got 3\)"),
        (dict(ks=[5]), r"'ks' must not exceed .* 4 .* \(got 5\)"),
        (dict(metrics=["auc"]), r"unknown metric .* \(got 'auc'"),
        (dict(metrics="recall"), r"'metrics' must be a non-empty sequence"),
        (dict(hits=torch.zeros(4, dtype=torch.bool)), r"'hits' must be a 2-dimensional"),
        (dict(num_relevant=torch.ones(3)), r"'num_relevant' must have shape \[2\]"),
    ],
)
def test_validation(kwargs, match):
    args = dict(hits=torch.zeros(2, 4, dtype=torch.bool), num_relevant=torch.ones(2), ks=[1])
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        topk_metrics(**args)
