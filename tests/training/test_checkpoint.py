import os
import pickle

import pytest
import torch

from lightgcn_pyg.training import CheckpointError, load_checkpoint, save_checkpoint
from lightgcn_pyg.training.checkpoint import VERSION


def minimal_state():
    return {
        "model_args": {"num_users": 2},
        "model": {"w": torch.arange(6.0).view(2, 3)},
        "config": {"lr": 0.1},
        "data": {},
        "epoch": 3,
        "data_fingerprint": "abc",
    }


def test_round_trip(tmp_path):
    path = save_checkpoint(minimal_state(), tmp_path / "sub" / "last.pt")
    state = load_checkpoint(path)
    assert state["epoch"] == 3 and state["version"] == VERSION
    torch.testing.assert_close(state["model"]["w"], torch.arange(6.0).view(2, 3))
    assert os.listdir(tmp_path / "sub") == ["last.pt"]  # no temp file left


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_checkpoint(minimal_state(), tmp_path / "last.pt")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({**minimal_state(), "epoch": 4}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.pt"]


def test_truncated(tmp_path):
    path = save_checkpoint(minimal_state(), tmp_path / "last.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointError, match=r"last.pt' is truncated, damaged or not a checkpoint"
    ):
        load_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"hello world\n" * 10)
    with pytest.raises(CheckpointError, match=r"x.pt' is truncated, damaged or not a checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "y.pt")
    with pytest.raises(CheckpointError, match=r"y.pt' is not a lightgcn_pyg checkpoint"):
        load_checkpoint(tmp_path / "y.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_other_version(tmp_path):
    path = save_checkpoint(minimal_state(), tmp_path / "last.pt")
    state = torch.load(path, weights_only=True)
    state["version"] = VERSION + 1
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=f"format version {VERSION + 1}"):
        load_checkpoint(path)


def test_other_dataset(tmp_path):
    path = save_checkpoint(minimal_state(), tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="trained on other data"):
        load_checkpoint(path, expected_fingerprint="xyz")
    assert load_checkpoint(path, expected_fingerprint="abc")["epoch"] == 3


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_arbitrary_pickles_are_not_executed(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "lightgcn_pyg.checkpoint", "payload": Evil()}, path, pickle_protocol=2)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(path)
    # And a plain pickle file, not a torch zip.
    (tmp_path / "plain.pt").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="plain.pt'"):
        load_checkpoint(tmp_path / "plain.pt")


def test_checkpoint_has_normal_file_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        path = save_checkpoint(minimal_state(), tmp_path / "best.pt")
        assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
    finally:
        os.umask(mask)
