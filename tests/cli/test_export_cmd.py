import json

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import assert_help_lists_every_option, invoke
from synthetic import write_clustered_txt

from lightgcn_pyg.cli.export_cmd import export
from lightgcn_pyg.evaluation import Evaluator
from lightgcn_pyg.training import restore

SMALL = ["--dim", "8", "--layers", "2", "--batch-size", "32", "--lr", "0.05", "--eval-every", "1",
         "--seed", "6", "--device", "cpu", "--init", "normal", "--no-progress", "--no-tensorboard"]  # fmt: skip


def csv_pairs(txt, path):
    rows = []
    for line in txt.read_text().splitlines():
        user, *items = map(int, line.split())
        rows += [("alice" if user == 0 else f"u{user:02d}", f"i{item:02d}") for item in items]
    pd.DataFrame(rows, columns=["user", "item"]).to_csv(path, index=False)
    return rows


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    train_txt, test_txt = write_clustered_txt(folder / "txt", num_users=30, num_items=40, seed=3)
    train = csv_pairs(train_txt, folder / "train.csv")
    test = csv_pairs(test_txt, folder / "test.csv")
    result = invoke("train", "--train", folder / "train.csv", "--test", folder / "test.csv",
                    "--out", folder / "out", "--epochs", 2, "--k", 5, "--k", 20, *SMALL)  # fmt: skip
    assert result.exit_code == 0, result.output
    return folder / "out" / "best.pt", train, test


def edge_index(pairs, user_ids, item_ids):
    """Raw-id pairs as indices into the exported id lists (independent of the data layer)."""
    users = {u: n for n, u in enumerate(user_ids)}
    items = {i: n for n, i in enumerate(item_ids)}
    return torch.tensor([[users[u] for u, _ in pairs], [items[i] for _, i in pairs]])


def test_npy_export_reproduces_eval_exactly(run, tmp_path):
    ckpt, train, test = run
    result = invoke("export", "--checkpoint", ckpt, "--out", tmp_path / "emb")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # the log line goes to stderr
    assert "Exported 30 user and 40 item embeddings to" in result.stderr
    files = sorted(p.name for p in (tmp_path / "emb").iterdir())
    assert files == ["item_emb.npy", "item_ids.txt", "user_emb.npy", "user_ids.txt"]
    user_emb = np.load(tmp_path / "emb" / "user_emb.npy")
    item_emb = np.load(tmp_path / "emb" / "item_emb.npy")
    user_ids = (tmp_path / "emb" / "user_ids.txt").read_text().splitlines()
    item_ids = (tmp_path / "emb" / "item_ids.txt").read_text().splitlines()
    assert user_emb.shape == (30, 8) and item_emb.shape == (40, 8)
    assert user_emb.dtype == item_emb.dtype == np.float32
    assert sorted(user_ids) == sorted({u for u, _ in train}) and "alice" in user_ids
    assert sorted(item_ids) == sorted({i for pairs in (train, test) for _, i in pairs})
    # The same rows as the restored model's embeddings, in index order.
    model_user, model_item = restore(ckpt).model.embeddings()
    np.testing.assert_array_equal(user_emb, model_user.numpy())
    np.testing.assert_array_equal(item_emb, model_item.numpy())

    evaluator = Evaluator(
        edge_index(train, user_ids, item_ids),
        edge_index(test, user_ids, item_ids),
        num_users=len(user_ids),
        num_items=len(item_ids),
        ks=(5, 20),
    )
    ours = evaluator.evaluate(torch.from_numpy(user_emb), torch.from_numpy(item_emb)).to_dict()
    result = invoke("eval", "--checkpoint", ckpt, "--json")
    assert result.exit_code == 0, result.output
    assert ours == json.loads(result.stdout)  # exactly: same scores, same ranking
    assert ours["num_users"] == 30 and "recall@5" in ours


def test_parquet_export(run, tmp_path):
    ckpt = run[0]
    assert invoke("export", "--checkpoint", ckpt, "--out", tmp_path / "npy").exit_code == 0
    result = invoke("export", "--checkpoint", ckpt, "--out", tmp_path / "pq", "--format", "parquet")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "pq").iterdir()) == [
        "item_emb.parquet",
        "user_emb.parquet",
    ]
    for kind in ("user", "item"):
        frame = pd.read_parquet(tmp_path / "pq" / f"{kind}_emb.parquet")
        assert list(frame.columns) == [f"{kind}_id", *(f"e{j}" for j in range(8))]
        ids = (tmp_path / "npy" / f"{kind}_ids.txt").read_text().splitlines()
        assert frame[f"{kind}_id"].tolist() == ids
        np.testing.assert_array_equal(
            frame.iloc[:, 1:].to_numpy(), np.load(tmp_path / "npy" / f"{kind}_emb.npy")
        )


def test_integer_ids_from_the_text_format(tmp_path):
    train, test = write_clustered_txt(tmp_path / "txt", num_users=12, num_items=20, clusters=2)
    result = invoke("train", "--train", train, "--test", test, "--out", tmp_path / "out",
                    "--epochs", 1, *SMALL)  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke("export", "--checkpoint", tmp_path / "out" / "last.pt", "--out", tmp_path / "e")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "e" / "user_ids.txt").read_text() == "".join(f"{u}\n" for u in range(12))
    assert np.load(tmp_path / "e" / "item_emb.npy").shape == (20, 8)


def test_ids_with_line_breaks_need_parquet(tmp_path):
    pd.DataFrame({"user": ["a\nb", "a\nb", "c", "c"], "item": ["x", "y", "y", "z"]}).to_csv(
        tmp_path / "train.csv", index=False
    )
    pd.DataFrame({"user": ["a\nb", "c"], "item": ["z", "x"]}).to_csv(
        tmp_path / "test.csv", index=False
    )
    result = invoke("train", "--train", tmp_path / "train.csv", "--test", tmp_path / "test.csv",
                    "--out", tmp_path / "out", "--epochs", 1, "--k", 1, "--dim", 4,
                    "--no-progress", "--no-tensorboard", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    ckpt = tmp_path / "out" / "last.pt"
    result = invoke("export", "--checkpoint", ckpt, "--out", tmp_path / "e")
    assert result.exit_code == 1
    assert result.output == (
        "Error: Raw id 'a\\nb' is empty or contains a line break, so it cannot be written one "
        "per line; use --format parquet\n"
    )
    assert not (tmp_path / "e").exists()  # nothing half-written
    result = invoke("export", "--checkpoint", ckpt, "--out", tmp_path / "p", "--format", "parquet")
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(tmp_path / "p" / "user_emb.parquet")["user_id"].tolist() == ["a\nb", "c"]


def test_out_must_be_a_folder(run, tmp_path):
    (tmp_path / "file").write_text("x")
    result = invoke("export", "--checkpoint", run[0], "--out", tmp_path / "file")
    assert result.exit_code == 2
    assert "is a file" in result.output
    # A folder that cannot be made: one line, no traceback (a bug showed the OSError's trace).
    result = invoke("export", "--checkpoint", run[0], "--out", tmp_path / "file" / "sub")
    assert result.exit_code == 1
    assert result.output == f"Error: [Errno 20] Not a directory: '{tmp_path / 'file' / 'sub'}'\n"
    result = invoke("export", "--checkpoint", run[0], "--out", tmp_path / "e", "--format", "csv")
    assert result.exit_code == 2 and "'csv' is not one of 'npy', 'parquet'" in result.output


def test_help_lists_every_option():
    assert_help_lists_every_option("export", export)
