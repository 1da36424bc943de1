import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_help_lists_every_option, invoke
from synthetic import write_clustered_txt

from lightgcn_pyg.cli.recommend_cmd import recommend

SMALL = ["--dim", "8", "--layers", "2", "--batch-size", "32", "--lr", "0.05", "--eval-every", "2",
         "--seed", "4", "--device", "cpu", "--init", "normal", "--no-progress", "--no-tensorboard"]  # fmt: skip


def read_pairs(path):
    """(user, item) pairs of a LightGCN text file, as Python ints."""
    pairs = []
    for line in path.read_text().splitlines():
        user, *items = map(int, line.split())
        pairs += [(user, item) for item in items]
    return pairs


def exported(ckpt, folder):
    """Embeddings and raw ids from 'lightgcn export' (the reference for the scores)."""
    result = invoke("export", "--checkpoint", ckpt, "--out", folder)
    assert result.exit_code == 0, result.output
    user_ids = (folder / "user_ids.txt").read_text().splitlines()
    item_ids = (folder / "item_ids.txt").read_text().splitlines()
    return np.load(folder / "user_emb.npy"), np.load(folder / "item_emb.npy"), user_ids, item_ids


def naive_top(user_emb, item_emb, user_ids, item_ids, seen, user, k):
    """The top-k unseen items of one user by a plain Python sort over all items."""
    row = user_ids.index(str(user))
    scores = [float(np.dot(user_emb[row], item_emb[i])) for i in range(len(item_ids))]
    order = sorted(range(len(item_ids)), key=lambda i: -scores[i])
    top = [i for i in order if item_ids[i] not in seen.get(str(user), set())][:k]
    return [item_ids[i] for i in top], [scores[i] for i in top]


@pytest.fixture(scope="module")
def txt_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("txt")
    train, test = write_clustered_txt(folder, num_users=30, num_items=40)
    result = invoke("train", "--train", train, "--test", test, "--out", folder / "out",
                    "--epochs", 2, *SMALL)  # fmt: skip
    assert result.exit_code == 0, result.output
    seen = {}
    for user, item in read_pairs(train):
        seen.setdefault(str(user), set()).add(str(item))
    return folder / "out" / "best.pt", seen, exported(folder / "out" / "best.pt", folder / "emb")


def test_json_top_k_unseen_best_first_with_exported_scores(txt_run):
    ckpt, seen, (user_emb, item_emb, user_ids, item_ids) = txt_run
    result = invoke("recommend", "--checkpoint", ckpt, "--user", 7, "--user", 0, "--k", 5, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["user"] for row in rows] == [7, 0]
    for row in rows:
        assert len(row["items"]) == len(row["scores"]) == 5
        assert all(isinstance(i, int) for i in row["items"])
        assert not {str(i) for i in row["items"]} & seen[str(row["user"])]  # never a seen item
        assert row["scores"] == sorted(row["scores"], reverse=True)  # best first
        items, scores = naive_top(user_emb, item_emb, user_ids, item_ids, seen, row["user"], 5)
        assert [str(i) for i in row["items"]] == items
        np.testing.assert_allclose(row["scores"], scores, rtol=1e-5, atol=1e-6)


def test_include_seen_returns_training_items(txt_run):
    ckpt, seen, (user_emb, item_emb, user_ids, item_ids) = txt_run
    result = invoke("recommend", "--checkpoint", ckpt, "--user", 7, "--k", 10, "--include-seen",
                    "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)[0]
    items, _ = naive_top(user_emb, item_emb, user_ids, item_ids, {}, 7, 10)
    assert [str(i) for i in row["items"]] == items
    assert {str(i) for i in row["items"]} & seen["7"]  # a trained model ranks them high


def test_csv_output_and_users_file(txt_run, tmp_path):
    ckpt = txt_run[0]
    as_json = json.loads(
        invoke(
            "recommend", "--checkpoint", ckpt, "--user", 3, "--user", 12, "--k", 4, "--json"
        ).stdout  # fmt: skip
    )
    users_file = tmp_path / "users.txt"
    users_file.write_text("3\n\n  12  \n")
    result = invoke("recommend", "--checkpoint", ckpt, "--users-file", users_file, "--k", 4,
                    "--csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["user", "rank", "item", "score"]
    expected = [
        [str(row["user"]), str(rank), str(item), f"{score:.6g}"]
        for row in as_json
        for rank, (item, score) in enumerate(zip(row["items"], row["scores"]), start=1)
    ]
    assert rows[1:] == expected and len(expected) == 8
    # The default output: one line per user.
    text = invoke("recommend", "--checkpoint", ckpt, "--user", 3, "--k", 2)
    first = as_json[0]
    assert text.stdout == (
        f"3: {first['items'][0]} ({first['scores'][0]:.3f}), "
        f"{first['items'][1]} ({first['scores'][1]:.3f})\n"
    )


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--user", "3", "--user", "9999"], 2,
         "Invalid value for --user: Unknown user id 9999 in '{ckpt}' (not among the 30 users"),
        (["--user", "-1"], 2, "unknown user id '-1'"),
        (["--user", "bob"], 2, "Invalid value for --user: unknown user id 'bob'"),
        (["--users-file", "{tmp}/users.txt"], 2, "Invalid value for --users-file: Unknown user id 77"),
        ([], 2, "give at least one --user or a --users-file"),
        (["--user", "3", "--json", "--csv"], 2, "choose one of --json and --csv"),
        (["--user", "3", "--k", "41"], 2, "Invalid value for --k: 41 exceeds the number of items (40)"),
        (["--user", "3", "--k", "0"], 2, "Invalid value for '--k': 0 is not in the range x>=1"),
    ],
)  # fmt: skip
def test_bad_users_and_options(txt_run, tmp_path, args, code, message):
    (tmp_path / "users.txt").write_text("3\n77\n")
    fill = dict(ckpt=txt_run[0], tmp=tmp_path)
    result = invoke("recommend", "--checkpoint", txt_run[0], *(a.format(**fill) for a in args))
    assert result.exit_code == code, result.output
    assert message.format(**fill) in result.output
    assert "Traceback" not in result.output and result.stdout == ""


def test_fewer_unseen_items_than_k(txt_run):
    # --k above a user's number of unseen items gives all of them (a bug gave an error).
    ckpt, seen, _ = txt_run
    result = invoke(
        "recommend", "--checkpoint", ckpt, "--user", 7, "--user", 8, "--k", 40, "--json"
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    for row in rows:
        unseen = {str(i) for i in range(40)} - seen[str(row["user"])]
        assert sorted(str(i) for i in row["items"]) == sorted(unseen)
        assert len(row["scores"]) == len(unseen) < 40


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    """A model trained on a CSV with string ids: alice, u01, ... and i00, i01, ..."""
    folder = tmp_path_factory.mktemp("csv")
    train, test = write_clustered_txt(folder, num_users=24, num_items=40, seed=2)
    names = {0: "alice", 1: "bob"}
    for path in (train, test):
        rows = [(names.get(u, f"u{u:02d}"), f"i{i:02d}") for u, i in read_pairs(path)]
        pd.DataFrame(rows, columns=["uid", "iid"]).to_csv(path.with_suffix(".csv"), index=False)
    result = invoke("train", "--train", train.with_suffix(".csv"), "--test",
                    test.with_suffix(".csv"), "--user-col", "uid", "--item-col", "iid",
                    "--out", folder / "out", "--epochs", 2, *SMALL)  # fmt: skip
    assert result.exit_code == 0, result.output
    seen = {}
    for uid, iid in pd.read_csv(train.with_suffix(".csv")).itertuples(index=False):
        seen.setdefault(uid, set()).add(iid)
    return folder / "out" / "best.pt", seen, exported(folder / "out" / "best.pt", folder / "emb")


def test_string_ids(csv_run):
    ckpt, seen, (user_emb, item_emb, user_ids, item_ids) = csv_run
    result = invoke("recommend", "--checkpoint", ckpt, "--user", "alice", "--user", "u05",
                    "--k", 6, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["user"] for row in rows] == ["alice", "u05"]
    for row in rows:
        assert not set(row["items"]) & seen[row["user"]]
        items, scores = naive_top(user_emb, item_emb, user_ids, item_ids, seen, row["user"], 6)
        assert row["items"] == items
        np.testing.assert_allclose(row["scores"], scores, rtol=1e-5, atol=1e-6)
    unknown = invoke("recommend", "--checkpoint", ckpt, "--user", "alice", "--user", "mallory")
    assert unknown.exit_code == 2
    assert "Invalid value for --user: Unknown user id 'mallory'" in unknown.output
    # An item id is not a user id.
    assert invoke("recommend", "--checkpoint", ckpt, "--user", "i00").exit_code == 2


def test_help_lists_every_option():
    assert_help_lists_every_option("recommend", recommend)
