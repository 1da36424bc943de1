"""Resuming or restoring with data or checkpoints that do not match (found by a breaker run)."""

import pytest
import torch
from synthetic import write_clustered_txt

from lightgcn_pyg.data import read_lightgcn_txt
from lightgcn_pyg.training import CheckpointError, TrainConfig, Trainer, restore


def _config(**kw):
    values = dict(embedding_dim=4, num_layers=2, batch_size=16, epochs=1, eval_every=1, ks=(5,),
                  metric="recall@5", device="cpu", progress=False, tensorboard=False)  # fmt: skip
    values.update(kw)
    return TrainConfig(**values)


@pytest.fixture
def run(tmp_path):
    train, test = write_clustered_txt(tmp_path / "data", num_users=30, num_items=40)
    Trainer(read_lightgcn_txt(train, test), _config(), out_dir=tmp_path / "out").fit()
    return tmp_path, train, test


def test_resume_refuses_other_training_pairs_and_leaves_the_data_alone(run):
    tmp_path, train, test = run
    lines = train.read_text().splitlines()
    first = lines[0].split()
    swapped = next(str(i) for i in range(40) if str(i) not in first[1:])
    lines[0] = " ".join(first[:-1] + [swapped])  # same ids, same number of pairs
    other = tmp_path / "other.txt"
    other.write_text("\n".join(lines) + "\n")
    data = read_lightgcn_txt(other, test)
    before = data.train_edge_index.clone()
    trainer = Trainer(data, _config(epochs=2), out_dir=tmp_path / "out")
    with pytest.raises(ValueError, match="Cannot resume .* interactions differ"):
        trainer.fit(resume=True)
    assert torch.equal(data.train_edge_index, before)


def test_resume_refuses_another_validation_split(run):
    tmp_path, train, test = run
    data = read_lightgcn_txt(train, test, val_ratio=0.3)
    with pytest.raises(ValueError, match="Cannot resume .* interactions differ"):
        Trainer(data, _config(epochs=2), out_dir=tmp_path / "out").fit(resume=True)


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda s: s.__setitem__("model_args", 5), "does not fit the model"),
        (lambda s: s["model_args"].__setitem__("num_users", 31), "31 users"),
        (
            lambda s: s["model"]["user_embedding.weight"].fill_(float("nan")),
            "non-finite values in 'user_embedding.weight'",
        ),
    ],
)
def test_restore_refuses_inconsistent_checkpoints(run, edit, match):
    tmp_path, _, _ = run
    state = torch.load(tmp_path / "out" / "best.pt", weights_only=True)
    edit(state)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=match):
        restore(tmp_path / "bad.pt")


def test_empty_test_split_names_the_cause(tmp_path):
    train, _ = write_clustered_txt(tmp_path / "data", num_users=30, num_items=40)
    data = read_lightgcn_txt(train, train)  # every test pair is a training pair
    with pytest.raises(
        ValueError, match=r"test split has no interactions .*\d+ test pairs were dropped"
    ):
        Trainer(data, _config())
