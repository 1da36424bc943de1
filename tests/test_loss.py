import math

import pytest
import torch

from lightgcn_pyg.loss import BPRLoss, bpr_loss, embedding_l2_loss


def naive_bpr(pos, neg):
    values = []
    for b, p in enumerate(pos):
        negs = neg[b] if isinstance(neg[b], list) else [neg[b]]
        values += [-math.log(1.0 / (1.0 + math.exp(-(p - n)))) for n in negs]
    return sum(values) / len(values)


def test_bpr_loss_matches_hand_computation():
    pos = torch.tensor([2.0, 0.5, -1.0])
    neg = torch.tensor([1.0, 0.5, 1.0])
    # softplus(-1), softplus(0), softplus(2)
    expected = (math.log1p(math.exp(-1.0)) + math.log(2.0) + math.log1p(math.exp(2.0))) / 3
    assert bpr_loss(pos, neg).item() == pytest.approx(expected, rel=1e-6)
    assert bpr_loss(pos, neg).item() == pytest.approx(naive_bpr(pos.tolist(), neg.tolist()))


def test_bpr_loss_multiple_negatives_broadcasts_positives():
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(4, generator=gen)
    neg = torch.randn(4, 3, generator=gen)
    expected = naive_bpr(pos.tolist(), neg.tolist())
    assert bpr_loss(pos, neg).item() == pytest.approx(expected, rel=1e-6)
    flat = bpr_loss(pos.repeat_interleave(3), neg.view(-1))
    assert torch.allclose(bpr_loss(pos, neg), flat)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bpr_loss_is_finite_for_large_gaps(dtype):
    pos = torch.tensor([0.0, 100.0], dtype=dtype, requires_grad=True)
    neg = torch.tensor([100.0, 0.0], dtype=dtype, requires_grad=True)
    loss = bpr_loss(pos, neg)
    # gap -100 -> softplus(100) = 100, gap +100 -> ~exp(-100)
    assert loss.item() == pytest.approx(50.0, rel=1e-6)
    loss.backward()
    assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()
    assert pos.grad.tolist() == pytest.approx([-0.5, 0.0], abs=1e-6)
    assert neg.grad.tolist() == pytest.approx([0.5, 0.0], abs=1e-6)
    single = bpr_loss(torch.tensor([-50.0], dtype=dtype), torch.tensor([50.0], dtype=dtype))
    assert single.item() == pytest.approx(100.0, rel=1e-6)


def test_bpr_loss_gradient_matches_naive():
    pos = torch.tensor([0.3, -0.2], dtype=torch.float64, requires_grad=True)
    neg = torch.tensor([0.1, 0.4], dtype=torch.float64, requires_grad=True)
    bpr_loss(pos, neg).backward()
    # d/dpos softplus(neg - pos) / B = -sigmoid(neg - pos) / B
    expected = [-1.0 / (1.0 + math.exp(-(n - p))) / 2 for p, n in ((0.3, 0.1), (-0.2, 0.4))]
    assert pos.grad.tolist() == pytest.approx(expected)
    assert neg.grad.tolist() == pytest.approx([-g for g in expected])


def test_bpr_loss_empty_batch_is_zero_and_differentiable():
    pos = torch.zeros(0, requires_grad=True)
    loss = bpr_loss(pos, torch.zeros(0, 2))
    assert loss.item() == 0.0
    loss.backward()
    assert pos.grad.shape == (0,)


@pytest.mark.parametrize(
    "pos, neg, match",
    [
        (torch.zeros(2, 1), torch.zeros(2), "'pos_scores' must be one-dimensional.*\\(2, 1\\)"),
        (torch.zeros(3), torch.zeros(2), "'neg_scores' must have shape \\[3\\].*\\(2,\\)"),
        (torch.zeros(3), torch.zeros(3, 2, 1), "'neg_scores'.*\\(3, 2, 1\\)"),
    ],
)
def test_bpr_loss_rejects_bad_shapes(pos, neg, match):
    with pytest.raises(ValueError, match=match):
        bpr_loss(pos, neg)


def test_embedding_l2_loss_matches_hand_computation():
    user = torch.tensor([[1.0, 2.0], [0.0, 1.0]])  # 1 + 4 + 1 = 6
    pos = torch.tensor([[3.0, 0.0], [0.0, 0.0]])  # 9
    neg = torch.tensor([[[1.0, 1.0], [2.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]])  # 2 + 4 + 1 = 7
    assert embedding_l2_loss(user, pos, neg, batch_size=2).item() == pytest.approx(0.5 * 22 / 2)
    assert embedding_l2_loss(user, batch_size=4).item() == pytest.approx(0.5 * 6 / 4)
    # A float denominator (e.g. a distributed global batch size) is accepted.
    assert embedding_l2_loss(user, batch_size=2.5).item() == pytest.approx(0.5 * 6 / 2.5)


def test_embedding_l2_loss_gradient():
    emb = torch.tensor([[1.0, -2.0], [0.5, 0.0]], requires_grad=True)
    embedding_l2_loss(emb, batch_size=2).backward()
    assert torch.allclose(emb.grad, emb.detach() / 2)


def test_embedding_l2_loss_empty_batch():
    empty = torch.zeros(0, 4, requires_grad=True)
    assert embedding_l2_loss(empty, empty, batch_size=0).item() == 0.0
    assert embedding_l2_loss(empty, batch_size=0.0).item() == 0.0
    with pytest.raises(ValueError, match="'batch_size' must be positive.*got 0"):
        embedding_l2_loss(torch.ones(1, 4), batch_size=0)


@pytest.mark.parametrize("batch_size", [-1, -0.5, float("nan"), float("inf"), True, "2"])
def test_embedding_l2_loss_rejects_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="'batch_size' must be a finite non-negative number"):
        embedding_l2_loss(torch.ones(2, 2), batch_size=batch_size)


def test_embedding_l2_loss_needs_tensors():
    with pytest.raises(ValueError, match="'ego_embeddings'"):
        embedding_l2_loss(batch_size=2)


def test_bpr_loss_module_combines_terms():
    gen = torch.Generator().manual_seed(1)
    user, pos_emb, neg_emb = (torch.randn(5, 3, generator=gen) for _ in range(3))
    pos_scores = (user * pos_emb).sum(-1)
    neg_scores = (user * neg_emb).sum(-1)
    module = BPRLoss(reg=1e-2)
    expected = (
        naive_bpr(pos_scores.tolist(), neg_scores.tolist())
        + 1e-2 * 0.5 * (user.pow(2).sum() + pos_emb.pow(2).sum() + neg_emb.pow(2).sum()).item() / 5
    )
    out = module(pos_scores, neg_scores, user, pos_emb, neg_emb)
    assert out.item() == pytest.approx(expected, rel=1e-6)
    assert BPRLoss(reg=0.0)(pos_scores, neg_scores).item() == pytest.approx(
        naive_bpr(pos_scores.tolist(), neg_scores.tolist()), rel=1e-6
    )
    assert repr(module) == "BPRLoss(reg=0.01)"
    with pytest.raises(ValueError, match="'ego_embeddings' must be given"):
        module(pos_scores, neg_scores)


@pytest.mark.parametrize("reg", [-1e-4, float("nan"), float("inf"), "0.1"])
def test_bpr_loss_module_rejects_bad_reg(reg):
    with pytest.raises(ValueError, match="'reg' must be"):
        BPRLoss(reg=reg)
