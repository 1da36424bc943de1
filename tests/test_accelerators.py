"""The training path on an accelerator gives the CPU's numbers (skipped where none is present).

Run on a GPU machine with ``bash benchmarks/gpu_check.sh``; on CPU-only machines every test here
is skipped with the reason.
"""

import pytest
import torch
from synthetic import write_clustered_txt

from lightgcn_pyg.data import read_lightgcn_txt
from lightgcn_pyg.nn import LightGCN
from lightgcn_pyg.training import TrainConfig, Trainer

ACCELERATORS = [
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")),
    pytest.param(
        "mps", marks=pytest.mark.skipif(not torch.backends.mps.is_available(), reason="no MPS")
    ),
]


@pytest.fixture
def data(tmp_path):
    train, test = write_clustered_txt(tmp_path, num_users=120, num_items=80)
    return read_lightgcn_txt(train, test)


@pytest.mark.parametrize("device", ACCELERATORS)
@pytest.mark.parametrize("learnable", [False, True])
def test_batch_propagation_matches_cpu(data, device, learnable):
    """Forward rows, layer-0 rows and all gradients of the training fast path."""
    torch.manual_seed(0)
    cpu = LightGCN(data.num_users, data.num_items, data.train_edge_index, embedding_dim=16,
                   num_layers=3, learnable_weights=learnable)  # fmt: skip
    acc = LightGCN(data.num_users, data.num_items, data.train_edge_index, embedding_dim=16,
                   num_layers=3, learnable_weights=learnable)  # fmt: skip
    acc.load_state_dict(cpu.state_dict())
    acc = acc.to(device)
    users = torch.tensor([0, 5, 5, 119, 30])
    items = torch.tensor([1, 79, 1, 40, 3, 3, 60, 2, 0, 7])
    results = []
    for model, dev in ((cpu, "cpu"), (acc, device)):
        model.train()
        out = model(users.to(dev), items.to(dev), return_ego=True)
        weights = [torch.linspace(-1, 1, t.numel(), device=dev).view_as(t) for t in out]
        loss = sum((w * t).sum() for w, t in zip(weights, out))
        grads = torch.autograd.grad(loss, list(model.parameters()))
        results.append([t.detach().cpu() for t in (*out, *grads)])
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device", ACCELERATORS)
def test_trainer_steps_match_cpu(data, device):
    """Ten BPR + Adam steps from the same start and batches end at the same embeddings."""
    config = dict(embedding_dim=16, num_layers=3, batch_size=64, lr=0.01, seed=4, init="normal",
                  progress=False, tensorboard=False)  # fmt: skip
    cpu = Trainer(data, TrainConfig(device="cpu", **config), log=lambda _: None)
    acc = Trainer(data, TrainConfig(device=device, **config), log=lambda _: None)
    acc.model.load_state_dict(cpu.model.state_dict())
    cpu.sampler.set_epoch(0)
    losses = {"cpu": [], device: []}
    for step, batch in enumerate(cpu.sampler):
        if step == 10:
            break
        for trainer, name in ((cpu, "cpu"), (acc, device)):
            parts = trainer.train_step(batch.src_index, batch.dst_pos_index, batch.dst_neg_index)
            losses[name].append(float(parts["loss"]))
    assert losses[device] == pytest.approx(losses["cpu"], abs=1e-5)
    for key, value in cpu.model.state_dict().items():
        torch.testing.assert_close(acc.model.state_dict()[key].cpu(), value, rtol=1e-4, atol=1e-5)
    # The accelerator's evaluation ranks like the CPU's.
    cpu_metrics, acc_metrics = cpu.evaluate("test"), acc.evaluate("test")
    for key in ("recall@20", "ndcg@20"):
        assert acc_metrics[key] == pytest.approx(cpu_metrics[key], abs=1e-4)
