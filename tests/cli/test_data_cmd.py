import json

import click
import pandas as pd
import pytest
from click.testing import CliRunner

import lightgcn_pyg.data.datasets as datasets
from lightgcn_pyg.cli.data_options import data_options, load_interactions_from_options
from lightgcn_pyg.cli.main import main

REQUIRED_KEYS = {
    "num_users", "num_items", "num_train", "num_test", "num_val", "duplicates_dropped",
    "empty_lines", "test_only_users", "test_only_items",
}  # fmt: skip


def run(*args):
    return CliRunner().invoke(main, ["data", "info", *map(str, args)])


def test_info_json(tiny_txt):
    result = run("--train", tiny_txt[0], "--test", tiny_txt[1], "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # exactly one JSON object
    assert REQUIRED_KEYS <= set(summary)
    assert {k: summary[k] for k in REQUIRED_KEYS} == {
        "num_users": 4, "num_items": 5, "num_train": 7, "num_test": 4, "num_val": 0,
        "duplicates_dropped": 0, "empty_lines": 0, "test_only_users": 1, "test_only_items": 1,
    }  # fmt: skip
    assert summary["density"] == pytest.approx(11 / 20)


def test_info_text_with_validation(tiny_txt, tmp_path):
    messy = tmp_path / "messy.txt"
    messy.write_bytes(b"0 0 1 2 2\r\n\r\n1 1 2\n2 0 3\n")
    result = run("--train", messy, "--test", tiny_txt[1], "--val-ratio", "0.5")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "users:                      4" in lines
    assert "validation interactions:    4" in lines
    assert "duplicates dropped:         1" in lines
    assert "empty lines:                1" in lines
    assert "test-only users:            1" in lines
    assert "note: dropped 1 duplicate (user, item) pair(s)" in lines


def test_info_csv_columns(tmp_path):
    path = tmp_path / "ratings.csv"
    pd.DataFrame(
        {"uid": ["a", "a", "b", "b", "c"], "iid": [1, 2, 1, 3, 3], "t": [1, 2, 1, 5, 1]}
    ).to_csv(path, index=False)
    args = ["--train", path, "--user-col", "uid", "--item-col", "iid", "--time-col", "t"]
    result = run(*args, "--split", "leave_last_out", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["num_users"], summary["num_items"]) == (3, 3)
    assert (summary["num_train"], summary["num_test"]) == (3, 2)
    parquet = tmp_path / "ratings.parquet"
    pd.read_csv(path).to_parquet(parquet)
    result = run("--train", parquet, "--user-col", "uid", "--item-col", "iid", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["num_users"] == 3


def test_info_named_dataset(tmp_path, monkeypatch):
    monkeypatch.setitem(datasets.DATASET_STATS, "gowalla", datasets.DatasetStats(2, 3, 4, 2))
    folder = tmp_path / "gowalla"
    folder.mkdir()
    (folder / "train.txt").write_text("0 0 1\n1 1 2\n")
    (folder / "test.txt").write_text("0 2\n1 0\n")
    result = run("--dataset", "GOWALLA", "--data-root", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["name"] == "gowalla" and summary["num_train"] == 4


@pytest.mark.parametrize(
    "args, code, message",
    [
        ([], 2, "No data: give --dataset NAME or --train FILE"),
        (["--dataset", "gowalla", "--train", "{train}"], 2, "either --dataset or --train"),
        (["--train", "{train}", "--data-root", "."], 2, "--data-root only applies to --dataset"),
        (["--train", "{train}", "--time-col", "t"], 2, "--time-col only apply to CSV/Parquet"),
        (["--train", "{bad}"], 1, "Error: Invalid id 'x' in '{bad}' line 2"),
        (["--train", "{train}", "--format", "csv"], 1, "Column 'user' ('user_col') not found"),
        (["--train", "{train}", "--val-ratio", "1"], 2, "Invalid value for '--val-ratio'"),
        (["--train", "{tmp}/nope.txt"], 2, "does not exist"),
        (["--dataset", "yelp2018", "--data-root", "{tmp}", "--no-download"], 1,
         "Error: Dataset 'yelp2018' not found"),
    ],
)  # fmt: skip
def test_info_errors(tiny_txt, tmp_path, args, code, message):
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1\n1 x\n")
    fill = dict(train=tiny_txt[0], bad=bad, tmp=tmp_path)
    result = run(*(a.format(**fill) for a in args))
    assert result.exit_code == code, result.output
    assert message.format(**fill) in result.output
    if code == 1:  # a ClickException: one line, no traceback
        assert len(result.output.strip().splitlines()) == 1


def test_data_options_are_reusable(tiny_txt):
    seen = {}

    @click.command()
    @data_options
    @click.option("--epochs", type=int, default=1)
    def train(**options):
        seen["data"] = load_interactions_from_options(**options)  # ignores --epochs
        seen["epochs"] = options["epochs"]

    result = CliRunner().invoke(
        train, ["--train", str(tiny_txt[0]), "--test", str(tiny_txt[1]), "--epochs", "3"]
    )
    assert result.exit_code == 0, result.output
    assert seen["epochs"] == 3 and seen["data"].num_test == 4
