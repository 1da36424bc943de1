"""DDP on CPU with gloo: 2 processes on a small synthetic graph."""

import json
import os
import signal
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp
from click.testing import CliRunner
from synthetic import write_clustered_txt

from lightgcn_pyg.cli import main as cli
from lightgcn_pyg.data import read_lightgcn_txt
from lightgcn_pyg.training import TrainConfig, Trainer

WORLD = 2


def _config(**overrides) -> TrainConfig:
    values = dict(
        embedding_dim=8,
        num_layers=2,
        lr=0.01,
        batch_size=64,
        epochs=3,
        eval_every=1,
        ks=(10,),
        metric="recall@10",
        seed=3,
        device="cpu",
        progress=False,
        tensorboard=False,
        init="normal",
    )
    values.update(overrides)
    return TrainConfig(**values)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(fn, *args, timeout_s: float = 300.0) -> None:
    """``mp.spawn(fn, args, nprocs=WORLD)`` that kills the ranks and fails after ``timeout_s``.

    A hung rank must fail this test, not stall the whole suite (and CI) forever.
    """
    context = mp.start_processes(fn, args=args, nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout_s
    while not context.join(timeout=max(deadline - time.monotonic(), 0.1)):
        if time.monotonic() >= deadline:
            stuck = [rank for rank, p in enumerate(context.processes) if p.is_alive()]
            for process in context.processes:
                process.kill()
            pytest.fail(f"ranks {stuck} still running after {timeout_s:.0f} s (a distributed hang)")


def _live_ddp_modules() -> int:
    import gc

    from torch.nn.parallel import DistributedDataParallel

    return sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())


def _worker(rank: int, port: int, folder: str, config_dict: dict) -> None:
    from lightgcn_pyg.distributed import run_distributed_training

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_RANK=str(rank),
    )
    import torch.distributed as dist

    # How many DDP modules are still alive when the process group is destroyed: a live reducer
    # dying after its group can deadlock in ProcessGroupGloo's destructor.
    live_ddp, destroy = [], dist.destroy_process_group

    def checked_destroy(*args, **kwargs):
        live_ddp.append(_live_ddp_modules())
        return destroy(*args, **kwargs)

    dist.destroy_process_group = checked_destroy
    torch.set_num_threads(1)
    data = read_lightgcn_txt(f"{folder}/data/train.txt", f"{folder}/data/test.txt")
    result = run_distributed_training(data, TrainConfig.from_dict(config_dict), f"{folder}/out")
    torch.save(
        {"losses": result.losses if result is not None else None, "live_ddp": live_ddp},
        f"{folder}/rank{rank}_result.pt",
    )


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    write_clustered_txt(folder / "data", num_users=50, num_items=30)
    config = _config()
    _spawn(_worker, _free_port(), str(folder), config.to_dict())
    return folder, config


def test_ddp_is_freed_before_the_process_group_is_destroyed(ddp_run):
    folder, _ = ddp_run
    for rank in range(WORLD):
        result = torch.load(folder / f"rank{rank}_result.pt", weights_only=True)
        assert result["live_ddp"] == [0]  # destroyed once, with no DDP module left


def test_ddp_matches_single_process(ddp_run):
    folder, config = ddp_run
    data = read_lightgcn_txt(folder / "data" / "train.txt", folder / "data" / "test.txt")
    single = Trainer(data, config, log=lambda _: None)
    single_result = single.fit()
    ddp_losses = torch.load(folder / "rank0_result.pt", weights_only=True)["losses"]
    assert len(ddp_losses) == config.epochs
    # Same global batches, gradients averaged exactly: the trajectories agree closely.
    torch.testing.assert_close(
        torch.tensor(ddp_losses), torch.tensor(single_result.losses), rtol=1e-4, atol=1e-5
    )
    ddp_state = torch.load(folder / "out" / "last.pt", weights_only=True)["model"]
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp_state[key], value, rtol=1e-4, atol=1e-5)


def test_only_rank0_writes_and_checkpoint_loads_in_single_process_eval(ddp_run):
    folder, config = ddp_run
    out = folder / "out"
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt"]
    result = CliRunner().invoke(
        cli, ["eval", "--checkpoint", str(out / "best.pt"), "--k", "10", "--json"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["num_users"] + metrics["num_users_without_test"] == 50
    assert 0.0 <= metrics["recall@10"] <= 1.0


def _param_worker(rank: int, port: int, folder: str, config_dict: dict) -> None:
    import torch.distributed as dist

    from lightgcn_pyg.distributed import DistributedTrainer

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    data = read_lightgcn_txt(f"{folder}/data/train.txt", f"{folder}/data/test.txt")
    trainer = DistributedTrainer(data, TrainConfig.from_dict(config_dict), log=lambda _: None)
    trainer.fit()
    # The caller still holds the trainer: fit() itself must have freed its DDP wrapper, or the
    # destroy below can deadlock (this test hung CI once when it held a live wrapper here).
    live_ddp = _live_ddp_modules()
    torch.save(
        {
            **trainer.model.state_dict(),
            "epochs_run": torch.tensor(trainer.epoch),
            "live_ddp": torch.tensor(live_ddp),
        },
        f"{folder}/params{rank}.pt",
    )
    dist.destroy_process_group()


def test_all_ranks_end_with_identical_parameters_and_stop_together(tmp_path):
    write_clustered_txt(tmp_path / "data", num_users=40, num_items=40)
    # lr ~ 0 so early stopping triggers (after 1 + patience + 1 evaluations) on rank 0 only; the
    # decision must reach rank 1 or the job would hang / diverge.
    config = _config(epochs=50, patience=1, lr=1e-12)
    _spawn(_param_worker, _free_port(), str(tmp_path), config.to_dict())
    p0 = torch.load(tmp_path / "params0.pt", weights_only=True)
    p1 = torch.load(tmp_path / "params1.pt", weights_only=True)
    assert int(p0.pop("live_ddp")) == int(p1.pop("live_ddp")) == 0
    assert int(p0["epochs_run"]) == int(p1["epochs_run"]) == 3
    for key in p0:
        torch.testing.assert_close(p0[key], p1[key], rtol=0, atol=0)


def test_cli_under_torchrun(tmp_path):
    """The real entry point: torchrun starting 'lightgcn train --distributed' on 2 CPU ranks."""
    import subprocess
    import sys

    write_clustered_txt(tmp_path / "data")
    args = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        f"--master_port={_free_port()}", "-m", "lightgcn_pyg", "train",
        "--train", str(tmp_path / "data" / "train.txt"),
        "--test", str(tmp_path / "data" / "test.txt"),
        "--distributed", "--device", "cpu", "--epochs", "2", "--eval-every", "1", "--dim", "8",
        "--batch-size", "64", "--k", "10", "--no-progress", "--no-tensorboard",
        "--out", str(tmp_path / "out"), "--json",
    ]  # fmt: skip
    # Own process group: a hang is killed with torchrun's workers, not left running.
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"torchrun did not finish within 300 s:\n{stderr[-2000:]}")
    done = subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1  # only rank 0 prints, one JSON object
    metrics = json.loads(lines[0])
    assert metrics["num_users"] == 60 and 0.0 < metrics["recall@10"] <= 1.0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["best.pt", "last.pt"]
    assert done.stderr.count("epoch    2/2") == 1  # progress from rank 0 only
