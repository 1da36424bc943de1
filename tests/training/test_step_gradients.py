"""The trainer's fast BPR step (last layer at the batch rows, hand-written backward) gives the
gradients of the straightforward computation: dense normalised adjacency, every layer in full,
plain autograd, the loss written out by hand. float32, as training runs."""

import pytest
import torch
from synthetic import write_clustered_txt

from lightgcn_pyg.data import read_lightgcn_txt
from lightgcn_pyg.training import TrainConfig, Trainer


def straightforward_loss(user_w, item_w, edge_index, num_layers, src, pos, neg, reg):
    num_users, num_items = user_w.size(0), item_w.size(0)
    a = torch.zeros(num_users, num_items)
    a[edge_index[0], edge_index[1]] = 1.0
    d_u, d_i = a.sum(1), a.sum(0)
    r = a / torch.sqrt(d_u.clamp(min=1)[:, None] * d_i.clamp(min=1)[None, :])
    x_u, x_i, out_u, out_i = user_w, item_w, user_w, item_w
    for _ in range(num_layers):
        x_u, x_i = r @ x_i, r.t() @ x_u
        out_u, out_i = out_u + x_u, out_i + x_i
    out_u, out_i = out_u / (num_layers + 1), out_i / (num_layers + 1)
    u, p, n = out_u[src], out_i[pos], out_i[neg]
    bpr = -torch.nn.functional.logsigmoid((u * p).sum(-1) - (u * n).sum(-1)).mean()
    l2 = 0.5 * (user_w[src].pow(2).sum() + item_w[pos].pow(2).sum() + item_w[neg].pow(2).sum())
    return bpr + reg * l2 / src.numel()


@pytest.mark.parametrize("num_layers", [1, 3])
def test_step_gradients_equal_the_straightforward_computation(tmp_path, num_layers):
    train, test = write_clustered_txt(tmp_path, num_users=120, num_items=80)
    data = read_lightgcn_txt(train, test)
    config = TrainConfig(
        embedding_dim=16, num_layers=num_layers, batch_size=256, reg=1e-2, seed=5,
        init="normal", init_std=0.5, device="cpu", progress=False, tensorboard=False,
    )  # fmt: skip
    trainer = Trainer(data, config, log=lambda _: None)
    trainer.optimizer.step = lambda *args, **kwargs: None  # keep the gradients, skip the update
    trainer.sampler.set_epoch(0)
    batch = next(iter(trainer.sampler))
    src, pos, neg = batch.src_index, batch.dst_pos_index, batch.dst_neg_index
    assert src.unique().numel() < src.numel()  # duplicate users and items in the batch
    model = trainer.model
    parts = trainer.train_step(src, pos, neg)
    fast = (model.user_embedding.weight.grad.clone(), model.item_embedding.weight.grad.clone())

    user_w = model.user_embedding.weight.detach().clone().requires_grad_()
    item_w = model.item_embedding.weight.detach().clone().requires_grad_()
    loss = straightforward_loss(
        user_w, item_w, data.train_edge_index, num_layers, src, pos, neg, config.reg
    )
    ref = torch.autograd.grad(loss, (user_w, item_w))
    assert float(parts["loss"]) == pytest.approx(loss.item(), abs=1e-5)
    for a, b in zip(fast, ref):
        assert b.abs().max() > 1e-3  # a real gradient, not zeros on both sides
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
