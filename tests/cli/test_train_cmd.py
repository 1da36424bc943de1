import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from cli_helpers import assert_help_lists_every_option, invoke
from synthetic import write_clustered_txt

from lightgcn_pyg.cli.train_cmd import train
from lightgcn_pyg.data import read_lightgcn_txt
from lightgcn_pyg.training import TrainConfig, Trainer, load_checkpoint

METRIC_KEYS = {"recall@20", "precision@20", "ndcg@20", "hit@20", "map@20", "mrr@20", "num_users"}
SMALL = {
    "--dim": 8, "--layers": 2, "--batch-size": 32, "--lr": 0.05, "--eval-every": 1,
    "--seed": 3, "--device": "cpu", "--init": "normal",
}  # fmt: skip
QUIET = ("--no-progress", "--no-tensorboard")


def flags(**overrides):
    values = {**SMALL, **{f"--{k.replace('_', '-')}": v for k, v in overrides.items()}}
    return [str(a) for pair in values.items() for a in pair] + list(QUIET)


def small_config(**overrides) -> TrainConfig:
    values = dict(
        embedding_dim=8, num_layers=2, batch_size=32, lr=0.05, eval_every=1, seed=3,
        device="cpu", init="normal", progress=False, tensorboard=False,
    )  # fmt: skip
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_clustered_txt(tmp_path_factory.mktemp("data"), num_users=30, num_items=40)


@pytest.fixture(scope="module")
def data(files):
    return read_lightgcn_txt(*files)


def train_args(files, out, *extra):
    return ["train", "--train", files[0], "--test", files[1], "--out", out, *extra]


def test_train_json_checkpoints_and_numbers(files, data, tmp_path):
    result = invoke(*train_args(files, tmp_path, "--epochs", 2, "--json", *flags()))
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1  # one JSON object, nothing else on stdout
    metrics = json.loads(result.stdout)
    assert METRIC_KEYS <= set(metrics)
    assert metrics["num_users"] == 30
    # Logs went to stderr.
    assert "Training LightGCN on cpu: 30 users, 40 items" in result.stderr
    assert "test split (no validation split given)" in result.stderr
    # The same numbers as the library with the same configuration.
    expected = Trainer(data, small_config(epochs=2), log=lambda _: None).fit().test_metrics
    assert metrics == expected
    assert 0.0 < metrics["recall@20"] <= 1.0
    last, best = load_checkpoint(tmp_path / "last.pt"), load_checkpoint(tmp_path / "best.pt")
    assert last["epoch"] == 2 and best["epoch"] == best["best_epoch"] >= 1
    assert last["config"] == small_config(epochs=2).to_dict()
    assert not list(tmp_path.glob("*.tmp"))


def test_train_table_output(files, tmp_path):
    result = invoke(*train_args(files, tmp_path, "--epochs", 1, *flags()))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Test metrics of the best model (epoch 1), 30 users"
    assert lines[1].split() == ["metric", "ours"]  # no paper column for custom data
    keys = ["recall@20", "precision@20", "ndcg@20", "hit@20", "map@20", "mrr@20"]
    assert [line.split()[0] for line in lines[2:]] == keys
    assert all(len(line.split()) == 2 for line in lines[2:])


def test_results_table_shows_the_paper_for_named_datasets():
    from lightgcn_pyg.cli.train_cmd import format_results

    table = format_results({"recall@20": 0.11, "ndcg@20": 0.09, "num_users": 5}, "gowalla", 5)
    assert table.splitlines()[1].split() == ["metric", "ours", "paper"]
    assert table.splitlines()[2].split() == ["recall@20", "0.1100", "0.1830"]
    assert table.splitlines()[3].split() == ["ndcg@20", "0.0900", "0.1554"]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_file_with_cli_override(files, tmp_path, suffix):
    values = {"dim": 12, "layers": 1, "lr": 0.03, "batch-size": 16, "epochs": 1,
              "ks": [5, 10], "metric": "ndcg@5", "progress": False, "tensorboard": False,
              "device": "cpu", "seed": 9}  # fmt: skip
    path = tmp_path / f"config{suffix}"
    if suffix == ".json":  # keys as TrainConfig fields; the YAML file spells them as the flags
        renamed = {"dim": "embedding_dim", "layers": "num_layers", "batch-size": "batch_size"}
        path.write_text(json.dumps({renamed.get(k, k): v for k, v in values.items()}))
    else:  # YAML reads 1e-3 without a dot as a string: it must still work
        text = "\n".join(f"{k}: {json.dumps(v)}" for k, v in values.items())
        path.write_text(text.replace("lr: 0.03", "lr: 3e-2") + "\nreg: 1e-3\n")
    out = tmp_path / "run"
    result = invoke(*train_args(files, out, "--config", path, "--lr", "0.07", "--json"))
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert {"ndcg@5", "recall@10", "num_users"} <= set(metrics) and "recall@20" not in metrics
    stored = load_checkpoint(out / "last.pt")["config"]
    expected = TrainConfig(
        embedding_dim=12, num_layers=1, lr=0.07, batch_size=16, epochs=1, ks=(5, 10),
        metric="ndcg@5", progress=False, tensorboard=False, device="cpu", seed=9,
        reg=1e-3 if suffix == ".yaml" else 1e-4,
    ).to_dict()  # fmt: skip
    assert stored == expected
    assert load_checkpoint(out / "last.pt")["model_args"]["embedding_dim"] == 12


def test_resume_continues_and_equals_a_straight_run(files, tmp_path):
    first = invoke(*train_args(files, tmp_path / "a", "--epochs", 2, "--json", *flags()))
    assert first.exit_code == 0, first.output
    assert load_checkpoint(tmp_path / "a" / "last.pt")["epoch"] == 2
    # Only the data, --out, --resume and the new --epochs: the rest comes from last.pt.
    resumed = invoke(*train_args(files, tmp_path / "a", "--resume", "--epochs", 4, "--json"))
    assert resumed.exit_code == 0, resumed.output
    assert "Resumed from" in resumed.stderr and "2 epochs and 0 batches done" in resumed.stderr
    straight = invoke(*train_args(files, tmp_path / "b", "--epochs", 4, "--json", *flags()))
    assert straight.exit_code == 0, straight.output
    assert json.loads(resumed.stdout) == json.loads(straight.stdout)
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["epoch"] == b["epoch"] == 4 and a["global_step"] == b["global_step"]
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)
    assert a["history"] == b["history"] and len(a["history"]) == 4


def test_resume_refuses_another_configuration(files, tmp_path):
    assert invoke(*train_args(files, tmp_path, "--epochs", 1, *flags())).exit_code == 0
    result = invoke(*train_args(files, tmp_path, "--resume", "--epochs", 2, "--lr", "0.5"))
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: Cannot resume: the configuration differs from the checkpoint (lr: 0.05 -> 0.5)"
    )


def test_every_hyperparameter_flag_reaches_the_config(files, tmp_path):
    given = {
        "embedding_dim": ("--dim", "6", 6),
        "num_layers": ("--layers", "1", 1),
        "lr": ("--lr", "0.03", 0.03),
        "batch_size": ("--batch-size", "24", 24),
        "reg": ("--reg", "0.001", 0.001),
        "epochs": ("--epochs", "1", 1),
        "init": ("--init", "normal", "normal"),
        "init_std": ("--init-std", "0.05", 0.05),
        "sampling": ("--sampling", "interaction", "interaction"),
        "num_neg": ("--num-neg", "2", 2),
        "keep_prob": ("--keep-prob", "0.9", 0.9),
        "learnable_weights": ("--learnable-weights", None, True),
        "eval_every": ("--eval-every", "3", 3),
        "ks": ("--k", "5", (5, 7)),
        "metric": ("--metric", "ndcg@7", "ndcg@7"),
        "patience": ("--patience", "4", 4),
        "seed": ("--seed", "11", 11),
        "device": ("--device", "cpu", "cpu"),
        "eval_memory_mb": ("--eval-memory-mb", "64", 64.0),
        "progress": ("--no-progress", None, False),
        "tensorboard": ("--no-tensorboard", None, False),
    }
    # A new TrainConfig field needs a flag (and a line here).
    assert set(given) == {f.name for f in dataclasses.fields(TrainConfig)}
    args = []
    for name, (flag, value, expected) in given.items():
        args += [flag] if value is None else [flag, value]
        assert expected != getattr(TrainConfig(), name)  # every value differs from the default
    result = invoke(*train_args(files, tmp_path, *args, "--k", "7"))
    assert result.exit_code == 0, result.output
    state = load_checkpoint(tmp_path / "last.pt")
    expected = {name: value for name, (_, _, value) in given.items()}
    assert state["config"] == {**expected, "ks": [5, 7]}
    assert state["model_args"]["keep_prob"] == 0.9 and "layer_weight" in state["model"]


def test_non_default_flags_are_listed_in_help():
    output = assert_help_lists_every_option("train", train)
    assert "[default: 2048]" in output  # --batch-size shows the config default


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--lr", "-1"], 1, "Error: 'lr' must be positive and finite in 'TrainConfig' (got -1.0)"),
        (["--lr", "inf"], 1, "Error: 'lr' must be positive and finite in 'TrainConfig' (got inf)"),
        (["--reg", "nan"], 1, "'reg' must be non-negative and finite in 'TrainConfig' (got nan)"),
        (["--init-std", "0"], 1, "'init_std' must be positive and finite in 'TrainConfig'"),
        (["--keep-prob", "1.5"], 1, "Error: 'keep_prob' must be in (0, 1] in 'TrainConfig'"),
        (["--metric", "recall@5"], 1, "K among 'ks' (20,) in 'TrainConfig' (got 'recall@5')"),
        (["--metric", "auc@20"], 1, "with its name among ('recall', 'precision', 'ndcg'"),
        (["--eval-memory-mb", "0"], 1, "'eval_memory_mb' must be a positive number"),
        (["--dim", "0"], 2, "Invalid value for '--dim': 0 is not in the range x>=1"),
        (["--epochs", "-3"], 2, "Invalid value for '--epochs'"),
        (["--init", "he"], 2, "Invalid value for '--init': 'he' is not one of"),
        (["--lr", "fast"], 2, "Invalid value for '--lr': 'fast' is not a valid float"),
        (["--config", "{cfg}/unknown.json"], 1,
         "Error: Unknown option(s) ['learning_rate'] in config file '{cfg}/unknown.json'"),
        (["--config", "{cfg}/bad.json"], 1, "bad.json' is not valid JSON (line 1)"),
        (["--config", "{cfg}/word.yaml"], 1, "'lr' must be a number in 'TrainConfig' (got 'fast')"),
        (["--config", "{cfg}/type.yaml"], 1, "'patience' must be a non-negative integer in 'TrainConfig' (got 'many')"),
        (["--config", "{cfg}/flag.json"], 1, "'learnable_weights' must be true or false in 'TrainConfig' (got 'no')"),
        (["--config", "{cfg}/twice.yaml"], 1, "Option 'embedding_dim' is given twice in config file"),
        (["--config", "{cfg}/missing.yaml"], 2, "does not exist"),
    ],
)  # fmt: skip
def test_bad_values_give_one_clear_line(files, tmp_path, args, code, message):
    (tmp_path / "unknown.json").write_text('{"learning_rate": 0.1}')
    (tmp_path / "bad.json").write_text('{"lr": 0.1,}')
    (tmp_path / "word.yaml").write_text("lr: fast\n")
    (tmp_path / "type.yaml").write_text("patience: many\n")
    (tmp_path / "flag.json").write_text('{"learnable_weights": "no"}')
    (tmp_path / "twice.yaml").write_text("dim: 8\nembedding_dim: 16\n")
    args = [a.format(cfg=tmp_path) for a in args]
    result = invoke(*train_args(files, tmp_path / "out", "--epochs", 1, *QUIET, *args))
    assert result.exit_code == code, result.output
    assert message.format(cfg=tmp_path) in result.output
    assert "Traceback" not in result.output
    if code == 1:
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "last.pt").exists()


def test_output_folder_under_a_file_is_one_line(files, tmp_path):
    (tmp_path / "file").write_text("x")
    result = invoke(*train_args(files, tmp_path / "file" / "run", "--epochs", 1, *flags()))
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"Error: [Errno 20] Not a directory: '{tmp_path / 'file' / 'run'}'"
    )
    assert "Traceback" not in result.output


def test_diverging_loss_is_one_line_naming_epoch_and_step(files, tmp_path):
    result = invoke(*train_args(files, tmp_path, "--epochs", 2, *flags(lr=1e30)))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert lines == [
        "Error: The training loss became non-finite at epoch 1, step 2 (global step 2): "
        "lower the learning rate or check the data"
    ]
    assert "Traceback" not in result.output


def test_diverging_after_a_checkpoint_keeps_it(files, tmp_path):
    assert invoke(*train_args(files, tmp_path, "--epochs", 1, *flags())).exit_code == 0
    good = (tmp_path / "last.pt").read_bytes()
    # Poison one embedding row in the checkpoint (as a NaN from a bad step would).
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    state["model"]["user_embedding.weight"][0, 0] = float("nan")
    torch.save(state, tmp_path / "last.pt")
    poisoned = (tmp_path / "last.pt").read_bytes()
    result = invoke(*train_args(files, tmp_path, "--resume", "--epochs", 2))
    assert result.exit_code == 1
    assert (
        f"Error: The training loss became non-finite at epoch 2, step 1 (global step 8): lower the "
        f"learning rate or check the data; the last good checkpoint is {tmp_path / 'last.pt'}"
    ) in result.output.splitlines()
    assert (tmp_path / "last.pt").read_bytes() == poisoned != good  # not overwritten


def test_named_dataset_with_a_tiny_copy_fails_the_statistics_check(files, tmp_path):
    folder = tmp_path / "gowalla"
    folder.mkdir()
    for path in files:
        (folder / path.name).write_bytes(path.read_bytes())
    result = invoke("train", "--dataset", "gowalla", "--data-root", tmp_path, "--epochs", 1,
                    "--out", tmp_path / "out", *QUIET)  # fmt: skip
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: Dataset 'gowalla' in '{folder}' does not match the LightGCN split: num_users 30 "
        "(expected 29858), num_items 40 (expected 40981), num_train 207 (expected 810128), "
        "num_test 59 (expected 217242). The files may be truncated or from another source; "
        "delete them to download them again."
    )


def test_python_m_help_lists_every_command():
    result = subprocess.run(
        [sys.executable, "-m", "lightgcn_pyg", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    commands = result.stdout.split("Commands:")[1].split()
    for name in ("train", "eval", "recommend", "export", "data"):
        assert name in commands
