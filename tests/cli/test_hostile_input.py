"""CLI cases found by a breaker run."""

import json

import pytest
from click.testing import CliRunner
from synthetic import write_clustered_txt

from lightgcn_pyg.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    train, test = write_clustered_txt(tmp / "data", num_users=30, num_items=40)
    out = tmp / "out"
    result = CliRunner().invoke(main, [
        "train", "--train", str(train), "--test", str(test), "--dim", "4", "--layers", "1",
        "--epochs", "1", "--batch-size", "16", "--k", "5", "--no-progress", "--no-tensorboard",
        "--device", "cpu", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    return train, test, out / "best.pt"


@pytest.mark.parametrize("raw", ["+3", "1_0", "\u0663", " 3"])
def test_recommend_takes_only_plain_digit_ids(trained, raw):
    _, _, ckpt = trained
    result = CliRunner().invoke(main, ["recommend", "--checkpoint", str(ckpt), "--user", raw])
    assert result.exit_code == 2
    assert f"unknown user id {raw!r}" in result.output


def test_eval_test_file_drops_training_pairs(trained):
    train, test, ckpt = trained
    runner = CliRunner()
    real = json.loads(runner.invoke(main, ["eval", "--checkpoint", str(ckpt), "--json"]).stdout)
    # The training file itself as the test file: every pair is a training pair.
    result = runner.invoke(
        main, ["eval", "--checkpoint", str(ckpt), "--test", str(train), "--json"]
    )
    assert result.exit_code == 1
    assert "no test pairs left that are not training pairs" in result.output
    # Test pairs plus training pairs: the training ones are dropped, the metrics are the real ones.
    mixed = train.parent / "mixed.txt"
    mixed.write_text(test.read_text() + train.read_text())
    result = runner.invoke(
        main, ["eval", "--checkpoint", str(ckpt), "--test", str(mixed), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert "that are also training pairs" in result.stderr
    assert json.loads(result.stdout)["recall@5"] == pytest.approx(real["recall@5"], abs=1e-12)
