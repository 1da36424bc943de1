"""Crashes, interrupts, damaged or foreign checkpoints, and out-of-range ids (issue 8)."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from functools import partial

import pytest
import torch
from click.testing import CliRunner
from synthetic import write_clustered_txt

from lightgcn_pyg.cli.main import main
from lightgcn_pyg.data import read_lightgcn_txt
from lightgcn_pyg.evaluation import Evaluator
from lightgcn_pyg.nn import LightGCN
from lightgcn_pyg.training import (
    CheckpointError,
    TrainConfig,
    Trainer,
    load_checkpoint,
    restore,
    save_checkpoint,
    tags,
)

EPOCHS = 40
# Many cheap epochs (26 steps of 8 triplets), so that kills land at different points.
FLAGS = ["--dim", "8", "--layers", "2", "--batch-size", "8", "--lr", "0.01", "--eval-every", "5",
         "--k", "10", "--seed", "3", "--device", "cpu", "--init", "normal", "--no-progress",
         "--epochs", str(EPOCHS)]  # fmt: skip
CONFIG = dict(embedding_dim=8, num_layers=2, batch_size=8, lr=0.01, eval_every=5, ks=(10,),
              metric="recall@10", seed=3, device="cpu", init="normal", progress=False,
              tensorboard=False, epochs=EPOCHS)  # fmt: skip
# One thread: tiny ops are much faster without OpenMP on a busy machine, and the subprocesses
# and this process then compute bit for bit the same.
ONE_THREAD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@contextmanager
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_clustered_txt(tmp_path_factory.mktemp("data"), num_users=30, num_items=40)


@pytest.fixture(scope="module")
def reference(files):
    """An uninterrupted run with the same configuration: (model state, test metrics)."""
    with one_thread():
        trainer = Trainer(read_lightgcn_txt(*files), TrainConfig(**CONFIG), log=lambda _: None)
        result = trainer.fit()
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}, result.test_metrics


def start(files, out, log, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "lightgcn_pyg", "train", "--train", str(files[0]), "--test",
         str(files[1]), "--out", str(out), *FLAGS, *extra],
        stdout=subprocess.DEVNULL, stderr=log, env=ONE_THREAD_ENV,
    )  # fmt: skip


def wait_for(predicate, proc, log_path, timeout=90.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"training never got going:\n{log_path.read_text()}")
        time.sleep(0.02)


def logged_epoch(log_path, epoch):
    return re.search(rf"^epoch +{epoch}/", log_path.read_text(), re.M)


def assert_same_model(state, reference_state):
    assert state.keys() == reference_state.keys()
    for key, value in reference_state.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=1e-6)


def test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run(
    files, reference, tmp_path
):
    rng = random.Random(8)
    out = tmp_path / "run"
    progress = [(0, 0)]
    # Each run is killed a random short time after the log shows epoch `target`: in the
    # evaluation, the checkpoint write or the next steps, whatever the speed of the machine.
    for attempt, planned in enumerate(sorted(rng.sample(range(2, EPOCHS - 8), 4))):
        target = max(planned, progress[-1][0] + 2)
        log_path = tmp_path / f"log{attempt}.txt"
        with open(log_path, "w") as log:
            proc = start(files, out, log, "--resume", "--no-tensorboard")
            wait_for(partial(logged_epoch, log_path, target), proc, log_path)
            time.sleep(rng.uniform(0.0, 0.2))
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL, log_path.read_text()
        # Whatever the moment of the kill, last.pt is a complete checkpoint (atomic writes).
        state = load_checkpoint(out / "last.pt")
        assert target - 1 <= state["epoch"] < EPOCHS
        if attempt:
            match = re.search(
                r"Resumed from .*: (\d+) epochs and (\d+) batches", log_path.read_text()
            )
            assert match and (int(match[1]), int(match[2])) == progress[-1], log_path.read_text()
        progress.append((state["epoch"], state["batch_in_epoch"]))
    assert progress == sorted(progress)

    with one_thread():
        result = invoke("train", "--train", files[0], "--test", files[1], "--out", out,
                        *FLAGS, "--no-tensorboard", "--resume", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"Resumed from {out / 'last.pt'}: {progress[-1][0]} epochs" in result.stderr
    state = load_checkpoint(out / "last.pt")
    assert state["epoch"] == EPOCHS
    assert_same_model(state["model"], reference[0])
    assert json.loads(result.stdout) == pytest.approx(reference[1], abs=1e-6)
    assert not list(out.glob(".*.tmp"))  # temporary files of killed writers are gone


def test_ctrl_c_writes_a_checkpoint_and_resuming_equals_an_uninterrupted_run(
    files, reference, tmp_path
):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, log_path = tmp_path / "run", tmp_path / "log.txt"
    with open(log_path, "w") as log:
        proc = start(files, out, log, "--tensorboard")
        wait_for(partial(logged_epoch, log_path, 4), proc, log_path)
        time.sleep(0.05)  # most likely in the steps of epoch 5
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130, log_path.read_text()
    text = log_path.read_text()
    assert "Interrupt received: finishing this step, writing a checkpoint, then stopping" in text
    assert f"Interrupted: the last checkpoint is {out / 'last.pt'}; continue with --resume" in text
    assert "Traceback" not in text
    state = load_checkpoint(out / "last.pt")
    epochs_done = state["epoch"]
    assert 4 <= epochs_done < EPOCHS
    # The event file was closed and holds one loss per completed epoch.
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars(tags.TRAIN_LOSS)] == list(range(1, epochs_done + 1))

    with one_thread():
        result = invoke("train", "--train", files[0], "--test", files[1], "--out", out,
                        *FLAGS, "--tensorboard", "--resume", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{epochs_done} epochs and {state['batch_in_epoch']} batches done" in result.stderr
    assert_same_model(load_checkpoint(out / "last.pt")["model"], reference[0])
    assert json.loads(result.stdout) == pytest.approx(reference[1], abs=1e-6)
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars(tags.TRAIN_LOSS)] == list(range(1, EPOCHS + 1))


def test_second_ctrl_c_or_one_before_the_handler_exits_130(files, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = Trainer.train_step

    def step(self, *args):
        calls["n"] += 1
        if calls["n"] == 30:  # in epoch 2, after the first checkpoint
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(Trainer, "train_step", step)
    args = ["train", "--train", files[0], "--test", files[1], *FLAGS, "--no-tensorboard"]
    with one_thread():
        result = invoke(*args, "--out", tmp_path / "a")
    assert result.exit_code == 130
    assert f"Interrupted: the last checkpoint is {tmp_path / 'a' / 'last.pt'}; continue with " in (
        result.stderr
    )
    assert load_checkpoint(tmp_path / "a" / "last.pt")["epoch"] == 1
    calls["n"] = 25  # the next step is interrupted, before any checkpoint
    result = invoke(*args, "--out", tmp_path / "b")
    assert result.exit_code == 130
    assert "Interrupted before the first checkpoint was written; nothing to resume" in result.stderr
    assert not (tmp_path / "b" / "last.pt").exists()


def test_stale_temporary_files_are_removed(tmp_path):
    (tmp_path / ".last.pt.x1y2.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / ".best.pt.x1y2.tmp").write_bytes(b"another file's")
    save_checkpoint({"model_args": {}, "model": {}, "config": {}, "data": {}, "epoch": 1},
                    tmp_path / "last.pt")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == [".best.pt.x1y2.tmp", "last.pt"]


# ---------------------------------------------------------------- foreign / damaged checkpoints
@pytest.fixture(scope="module")
def trained(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    flags = [*FLAGS[:-1], "2", "--no-tensorboard"]
    with one_thread():
        result = invoke("train", "--train", files[0], "--test", files[1], "--out", out, *flags)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def other_files(tmp_path):
    return write_clustered_txt(tmp_path / "other", num_users=20, num_items=40, seed=5)


def test_resume_with_other_data_is_refused(files, trained, other_files, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes((trained / "last.pt").read_bytes())
    result = invoke("train", "--train", other_files[0], "--test", other_files[1], "--out", out,
                    "--resume", "--epochs", 3)  # fmt: skip
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith(
        f"Error: Checkpoint '{out / 'last.pt'}' was trained on other data (id maps differ"
    )
    assert "Traceback" not in result.output
    # The library view: the Trainer and restore() refuse it too.
    other = read_lightgcn_txt(*other_files)
    config = TrainConfig(**{**CONFIG, "epochs": 3})
    with pytest.raises(CheckpointError, match="was trained on other data"):
        Trainer(other, config, out_dir=out, log=lambda _: None).fit(resume=True)
    with pytest.raises(CheckpointError, match=r"given data's id maps differ \(20 users / 40"):
        restore(out / "last.pt", data=other)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate", "is truncated, damaged or not a checkpoint"),
        ("garbage", "is truncated, damaged or not a checkpoint"),
        ("version", "has format version 2; this lightgcn_pyg reads version 1"),
        ("foreign", "is not a lightgcn_pyg checkpoint"),
    ],
)
def test_resume_from_a_damaged_checkpoint_is_one_line(files, trained, tmp_path, damage, message):
    path = tmp_path / "last.pt"
    good = (trained / "last.pt").read_bytes()
    if damage == "truncate":
        path.write_bytes(good[: len(good) * 2 // 3])
    elif damage == "garbage":
        path.write_bytes(random.Random(0).randbytes(2000))
    elif damage == "version":
        state = torch.load(trained / "last.pt", weights_only=True)
        torch.save({**state, "version": 2}, path)
    else:
        torch.save({"state_dict": {"w": torch.ones(3)}}, path)
    result = invoke("train", "--train", files[0], "--test", files[1], "--out", tmp_path,
                    "--resume", "--epochs", 3)  # fmt: skip
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    name = f"Checkpoint '{path}'" if damage != "foreign" else f"'{path}'"
    assert len(lines) == 1 and lines[0].startswith(f"Error: {name} {message}"), lines
    assert "Traceback" not in result.output


def test_eval_with_a_mask_file_of_other_data(trained, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("0 1 2\n45 3\n")  # user 45 is not among the checkpoint's 30 users
    result = invoke("eval", "--checkpoint", trained / "best.pt", "--train", other)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: Unknown user id 45 in '{other}' (not among the 30 users of the interaction set)\n"
    )


# ---------------------------------------------------------------- out-of-range ids
@pytest.fixture(scope="module")
def model(files):
    data = read_lightgcn_txt(*files)
    return LightGCN(data.num_users, data.num_items, data.train_edge_index, embedding_dim=4)


@pytest.mark.parametrize("training_mode", [False, True])
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.recommend(torch.tensor([0, 30]), k=5),
         r"'user_index' contains the index 30, which is out of range \[0, 30\) in 'LightGCN'"),
        (lambda m: m.recommend(torch.tensor([-1]), k=5), r"'user_index' contains the index -1"),
        (lambda m: m.score(torch.tensor([3, 31]), torch.tensor([0, 1])),
         r"'user_index' contains the index 31, which is out of range \[0, 30\)"),
        (lambda m: m.score(torch.tensor([3, 4]), torch.tensor([0, 40])),
         r"'item_index' contains the index 40, which is out of range \[0, 40\)"),
        (lambda m: m(torch.tensor([30]), torch.tensor([0])), r"'user_index' contains the index 30"),
        (lambda m: m(torch.tensor([0]), torch.tensor([-3])), r"'item_index' contains the index -3"),
        (lambda m: m.ego_embeddings(torch.tensor([0]), torch.tensor([99])),
         r"'item_index' contains the index 99"),
        (lambda m: m.recommend(torch.tensor([0.0]), k=5), "'user_index' must be an integer tensor"),
    ],
)  # fmt: skip
def test_lightgcn_refuses_out_of_range_indices(model, training_mode, call, message):
    # A ValueError from an explicit check (on CUDA an out-of-range gather would be a device-side
    # assert, not an IndexError), before any indexing.
    model.train(training_mode)
    try:
        with pytest.raises(ValueError, match=message):
            call(model)
    finally:
        model.eval()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(train=[[0, 30], [0, 1]]), r"'train_edge_index' contains user index 30 outside \[0, 30\)"),
        (dict(test=[[0], [40]]), r"'test_edge_index' contains item index 40 outside \[0, 40\)"),
        (dict(test=[[-1], [2]]), r"'test_edge_index' contains user index -1 outside \[0, 30\)"),
    ],
)  # fmt: skip
def test_evaluator_refuses_out_of_range_indices(kwargs, message):
    train = torch.tensor(kwargs.get("train", [[0, 1], [0, 1]]))
    test = torch.tensor(kwargs.get("test", [[0], [2]]))
    with pytest.raises(ValueError, match=message):
        Evaluator(train, test, num_users=30, num_items=40)


def test_evaluator_refuses_embeddings_of_the_wrong_size():
    evaluator = Evaluator(torch.tensor([[0], [0]]), torch.tensor([[1], [2]]), 30, 40, ks=(5,))
    with pytest.raises(ValueError, match=r"'item_emb' must have shape \[40, dim\] in 'Evaluator'"):
        evaluator.evaluate(torch.zeros(30, 4), torch.zeros(39, 4))
    with pytest.raises(ValueError, match=r"'user_emb' must have shape \[30, dim\]"):
        evaluator.evaluate(torch.zeros(31, 4), torch.zeros(40, 4))
    result = evaluator.evaluate(torch.ones(30, 1), torch.arange(40.0).view(-1, 1))
    assert result.metrics["recall@5"] == 0.0  # items 39..35 ranked first; item 2 is relevant
