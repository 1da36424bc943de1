import math

import pytest
import torch
from synthetic import write_clustered_txt

from lightgcn_pyg.data import read_lightgcn_txt
from lightgcn_pyg.training import (
    TrainConfig,
    Trainer,
    TrainingDivergedError,
    load_checkpoint,
    tags,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    train, test = write_clustered_txt(tmp_path_factory.mktemp("clustered"))
    return read_lightgcn_txt(train, test)


def small_config(**overrides) -> TrainConfig:
    values = dict(
        embedding_dim=16,
        num_layers=2,
        lr=0.02,
        batch_size=64,
        epochs=6,
        eval_every=2,
        ks=(5, 10),
        metric="recall@10",
        patience=10,
        seed=7,
        device="cpu",
        progress=False,
        init="normal",
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_training_beats_a_random_model(data):
    trainer = Trainer(data, small_config(epochs=30, eval_every=10), log=lambda _: None)
    before = trainer.evaluate("test")["recall@10"]
    result = trainer.fit()
    after = result.test_metrics["recall@10"]
    # Chance level is about 10 / 34 unseen items; the clustered structure is easy to learn.
    assert before < 0.45
    assert after > 0.75
    assert after > before + 0.3
    assert result.epochs_run == 30
    assert result.eval_split == "test"
    assert [h["epoch"] for h in result.history] == [10, 20, 30]
    assert set(result.test_metrics) >= {"recall@5", "ndcg@10", "precision@10", "num_users"}
    assert result.test_metrics["num_users"] == 60


def test_uses_validation_split_when_present(data):
    with_val = data.with_validation(0.2, seed=1)
    logs = []
    trainer = Trainer(with_val, small_config(epochs=2), log=logs.append)
    result = trainer.fit()
    assert result.eval_split == "val"
    assert any("validation split" in line for line in logs)
    assert result.history[0]["split"] == "val"


def test_logs_say_test_split_is_used_without_validation(data):
    logs = []
    Trainer(data, small_config(epochs=1), log=logs.append).fit()
    assert any("test split (no validation split given)" in line for line in logs)


def _params(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_resume_equals_uninterrupted(data, tmp_path):
    straight = Trainer(data, small_config(epochs=4), log=lambda _: None)
    straight.fit()

    first = Trainer(data, small_config(epochs=2), out_dir=tmp_path, log=lambda _: None)
    first.fit()
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    second = Trainer(data, small_config(epochs=4), out_dir=tmp_path, log=lambda _: None)
    result = second.fit(resume=True)
    assert result.epochs_run == 4
    for key, value in _params(straight).items():
        torch.testing.assert_close(_params(second)[key], value, rtol=0, atol=0)
    # Adam state continues too.
    assert (
        second.optimizer.state_dict()["state"][0]["step"]
        == straight.optimizer.state_dict()["state"][0]["step"]
    )


def test_mid_epoch_stop_and_resume_equals_uninterrupted(data, tmp_path):
    straight = Trainer(data, small_config(epochs=3), log=lambda _: None)
    straight.fit()

    interrupted = Trainer(data, small_config(epochs=3), out_dir=tmp_path, log=lambda _: None)
    original_step = interrupted.train_step
    calls = {"n": 0}

    def step_then_request_stop(*args):
        out = original_step(*args)
        calls["n"] += 1
        if calls["n"] == 5:  # what the SIGINT handler does, in the middle of epoch 2
            interrupted._stop_requested = True
        return out

    interrupted.train_step = step_then_request_stop
    result = interrupted.fit()
    assert result.interrupted
    state = load_checkpoint(tmp_path / "last.pt")
    batches_per_epoch = len(interrupted.sampler)
    assert (state["epoch"], state["batch_in_epoch"]) == (
        5 // batches_per_epoch,
        5 % batches_per_epoch,
    )
    resumed = Trainer(data, small_config(epochs=3), out_dir=tmp_path, log=lambda _: None)
    resumed.fit(resume=True)
    for key, value in _params(straight).items():
        torch.testing.assert_close(_params(resumed)[key], value, rtol=0, atol=0)


def test_resume_refuses_a_different_configuration(data, tmp_path):
    Trainer(data, small_config(epochs=1), out_dir=tmp_path, log=lambda _: None).fit()
    other = Trainer(data, small_config(epochs=2, lr=0.5), out_dir=tmp_path, log=lambda _: None)
    with pytest.raises(ValueError, match=r"configuration differs.*lr: 0.02 -> 0.5"):
        other.fit(resume=True)


def test_early_stopping_stops(data):
    # lr = 0: the metric never improves after the first evaluation.
    trainer = Trainer(
        data, small_config(lr=1e-12, epochs=100, eval_every=1, patience=2), log=lambda _: None
    )
    result = trainer.fit()
    assert result.stopped_early
    assert result.epochs_run == 4  # best at 1, then 2 evaluations without gain stop at the 3rd
    assert result.best_epoch == 1


def test_checkpoints_hold_everything(data, tmp_path):
    Trainer(data, small_config(epochs=2, eval_every=1), out_dir=tmp_path, log=lambda _: None).fit()
    for name in ("best.pt", "last.pt"):
        # Loads with weights_only=True: no pickled objects.
        state = torch.load(tmp_path / name, weights_only=True)
        for key in (
            "model",
            "optimizer",
            "epoch",
            "config",
            "data",
            "rng",
            "early_stopping",
            "model_args",
            "data_fingerprint",
        ):
            assert key in state, (name, key)
    assert not list(tmp_path.glob("*.tmp"))


def test_tensorboard_has_the_tags(data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    Trainer(data, small_config(epochs=2, eval_every=1), out_dir=tmp_path, log=lambda _: None).fit()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    expected = {
        tags.TRAIN_LOSS,
        tags.EPOCH_TIME,
        tags.SAMPLING_TIME,
        tags.EVAL_TIME,
        tags.metric_tag("test", "recall@5"),
        tags.metric_tag("test", "ndcg@10"),
    }
    assert expected <= scalars
    losses = [e.value for e in acc.Scalars(tags.TRAIN_LOSS)]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert (tmp_path / "tb" / "hparams").is_dir()


def test_non_finite_embeddings_stop_with_a_clear_error(data, tmp_path):
    trainer = Trainer(data, small_config(epochs=1), out_dir=tmp_path, log=lambda _: None)
    trainer.fit()
    good = load_checkpoint(tmp_path / "last.pt")
    with torch.no_grad():
        trainer.model.user_embedding.weight[3, 0] = float("nan")
    trainer.config.epochs = 2
    with pytest.raises(TrainingDivergedError, match=r"epoch 2, step 1 .*last good checkpoint"):
        trainer.fit()
    kept = load_checkpoint(tmp_path / "last.pt")
    assert kept["epoch"] == good["epoch"] == 1
    torch.testing.assert_close(
        kept["model"]["user_embedding.weight"], good["model"]["user_embedding.weight"]
    )


def test_sampling_modes_and_negatives_train(data):
    for mode in ("user", "interaction"):
        result = Trainer(
            data, small_config(epochs=2, sampling=mode, num_neg=3), log=lambda _: None
        ).fit()
        assert math.isfinite(result.test_metrics["recall@10"])
