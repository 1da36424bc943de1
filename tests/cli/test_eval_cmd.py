import csv
import json
import math
import os
import pickle

import pandas as pd
import pytest
import torch
from cli_helpers import assert_help_lists_every_option, invoke
from synthetic import write_clustered_txt

from lightgcn_pyg.cli.eval_cmd import evaluate
from lightgcn_pyg.training import load_checkpoint, restore

SMALL = ["--dim", "8", "--layers", "2", "--batch-size", "32", "--lr", "0.05", "--eval-every", "1",
         "--seed", "5", "--device", "cpu", "--init", "normal", "--no-progress", "--no-tensorboard"]  # fmt: skip
MEANS = ("recall", "precision", "ndcg")


def raw_user(u: int) -> str:
    return "alice" if u == 0 else f"u{u:02d}"


def to_csv(txt, path):
    """The LightGCN text file as a CSV of string ids (alice, u01, ...; i00, i01, ...)."""
    rows = []
    for line in txt.read_text().splitlines():
        user, *items = map(int, line.split())
        rows += [(raw_user(user), f"i{item:02d}") for item in items]
    pd.DataFrame(rows, columns=["user", "item"]).to_csv(path, index=False)
    return rows


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A model trained by the CLI on a CSV of string ids: (folder, train JSON, train/test pairs)."""
    folder = tmp_path_factory.mktemp("run")
    train_txt, test_txt = write_clustered_txt(folder / "txt", num_users=30, num_items=40)
    train_pairs = to_csv(train_txt, folder / "train.csv")
    test_pairs = to_csv(test_txt, folder / "test.csv")
    result = invoke("train", "--train", folder / "train.csv", "--test", folder / "test.csv",
                    "--out", folder / "out", "--epochs", 3, "--json", *SMALL)  # fmt: skip
    assert result.exit_code == 0, result.output
    return folder, json.loads(result.stdout), train_pairs, test_pairs


def naive_metrics(ckpt, train_pairs, test_pairs, ks):
    """Recall / Precision / NDCG@k with a per-user Python loop over raw ids (the reference)."""
    model, data = restore(ckpt).model, restore(ckpt).data
    user_emb, item_emb = model.embeddings()
    seen, relevant = {}, {}
    for user, item in train_pairs:
        seen.setdefault(user, set()).add(item)
    for user, item in test_pairs:
        relevant.setdefault(user, set()).add(item)
    user_pos = {u: n for n, u in enumerate(data.user_ids.tolist())}
    item_ids = data.item_ids.tolist()
    sums = {f"{m}@{k}": 0.0 for m in MEANS for k in ks}
    for user, rel in relevant.items():
        scores = (item_emb @ user_emb[user_pos[user]]).tolist()
        order = sorted(range(len(item_ids)), key=lambda i: -scores[i])
        ranked = [item_ids[i] for i in order if item_ids[i] not in seen.get(user, set())]
        for k in ks:
            hits = [item in rel for item in ranked[:k]]
            dcg = sum(1 / math.log2(r + 2) for r, hit in enumerate(hits) if hit)
            idcg = sum(1 / math.log2(r + 2) for r in range(min(len(rel), k)))
            sums[f"recall@{k}"] += sum(hits) / len(rel)
            sums[f"precision@{k}"] += sum(hits) / k
            sums[f"ndcg@{k}"] += dcg / idcg
    return {key: value / len(relevant) for key, value in sums.items()}, len(relevant)


def test_eval_of_best_checkpoint_equals_train_json(run):
    folder, trained, train_pairs, test_pairs = run
    result = invoke("eval", "--checkpoint", folder / "out" / "best.pt", "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1
    metrics = json.loads(result.stdout)
    assert {"recall@20", "precision@20", "ndcg@20", "hit@20", "map@20", "mrr@20"} <= set(metrics)
    assert metrics == trained  # the same model and data: the same numbers, exactly
    expected, num_users = naive_metrics(folder / "out" / "best.pt", train_pairs, test_pairs, [20])
    assert metrics["num_users"] == num_users == 30
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-6), key


def test_eval_of_last_checkpoint_equals_its_last_evaluation(run):
    # Regression: the fused Adam step does not bump the weights' version counters, and the
    # trainer's evaluations used the model's stale embedding cache (one evaluation behind).
    folder = run[0]
    state = load_checkpoint(folder / "out" / "last.pt")
    result = invoke("eval", "--checkpoint", folder / "out" / "last.pt", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    last = state["history"][-1]
    assert last["epoch"] == state["epoch"] == 3
    assert {k: metrics[k] for k in last if "@" in k} == {k: v for k, v in last.items() if "@" in k}
    # And the three evaluations differ (the model did change between them).
    assert len({h["ndcg@20"] for h in state["history"]}) == 3


def test_several_cutoffs_match_the_naive_reference(run):
    folder, _, train_pairs, test_pairs = run
    result = invoke("eval", "--checkpoint", folder / "out" / "last.pt", "--k", 10, "--k", 20,
                    "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert {f"{m}@{k}" for m in ("hit", "map", "mrr") for k in (10, 20)} <= set(metrics)
    expected, _ = naive_metrics(folder / "out" / "last.pt", train_pairs, test_pairs, [10, 20])
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-6), key
    assert metrics["precision@10"] != metrics["precision@20"]
    # The text output lists the same values.
    text = invoke("eval", "--checkpoint", folder / "out" / "last.pt", "--k", 10, "--k", 20)
    assert text.exit_code == 0, text.output
    assert (
        "30 users evaluated, 0 without test items skipped, 0 cold users (included)" in text.stdout
    )
    assert f"  recall@10     {metrics['recall@10']:.4f}" in text.stdout.splitlines()


def test_per_user_csv_has_raw_ids_and_the_json_means(run, tmp_path):
    folder, _, _, test_pairs = run
    path = tmp_path / "per_user.csv"
    result = invoke("eval", "--checkpoint", folder / "out" / "best.pt", "--k", 5, "--k", 20,
                    "--per-user", path, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)  # the log line about the file went to stderr
    frame = pd.read_csv(path)
    assert sorted(frame["user"]) == sorted({user for user, _ in test_pairs})
    assert "alice" in set(frame["user"])
    assert list(frame.columns[1:]) == [k for k in metrics if "@" in k]
    for key in frame.columns[1:]:
        assert frame[key].mean() == pytest.approx(metrics[key], abs=1e-12), key


def test_test_file_with_raw_ids(run, tmp_path):
    folder, _, train_pairs, test_pairs = run
    subset = [pair for pair in test_pairs if pair[0] in {"alice", "u03", "u17", "u29"}]
    path = tmp_path / "new_test.csv"
    pd.DataFrame(subset, columns=["uid", "iid"]).to_csv(path, index=False)
    result = invoke("eval", "--checkpoint", folder / "out" / "best.pt", "--test", path,
                    "--user-col", "uid", "--item-col", "iid", "--k", 3, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    expected, num_users = naive_metrics(folder / "out" / "best.pt", train_pairs, subset, [3])
    assert metrics["num_users"] == num_users == 4
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-6), key


def test_train_file_replaces_the_mask(run, tmp_path):
    folder, _, train_pairs, test_pairs = run
    mask = [pair for pair in train_pairs if pair[0] != "alice"]  # alice: nothing masked
    path = tmp_path / "mask.csv"
    pd.DataFrame(mask, columns=["user", "item"]).to_csv(path, index=False)
    result = invoke("eval", "--checkpoint", folder / "out" / "best.pt", "--train", path,
                    "--k", 10, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    expected, _ = naive_metrics(folder / "out" / "best.pt", mask, test_pairs, [10])
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-6), key


@pytest.mark.parametrize(
    "content, message",
    [
        ("user,item\nalice,i00\nzed,i01\n", "Error: Unknown user id 'zed' in '{path}'"),
        ("user,item\nalice,i99\n", "Error: Unknown item id 'i99' in '{path}'"),
        ("uid,item\nalice,i00\n", "Error: Column 'user' ('user_col') not found in '{path}'"),
        ("user,item\n", "Error: '{path}' holds no (user, item) pairs"),
    ],
)
def test_test_file_errors(run, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = invoke("eval", "--checkpoint", run[0] / "out" / "best.pt", "--test", path)
    assert result.exit_code == 1
    assert result.output.startswith(message.format(path=path))
    assert len(result.output.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def popular(tmp_path_factory):
    """Item degrees a:5 b:4 c:3 d:2 e:1 g:0 are all distinct, so the ranking has no ties."""
    folder = tmp_path_factory.mktemp("pop")
    items = "abcde"
    train = [(f"u{u}", items[j]) for u in range(1, 6) for j in range(6 - u)]
    test = [("u1", "g"), ("u2", "e"), ("u2", "g"), ("u3", "g"), ("u3", "d"), ("u4", "e"),
            ("u5", "b"), ("u5", "g")]  # fmt: skip
    pd.DataFrame(train, columns=["user", "item"]).to_csv(folder / "train.csv", index=False)
    pd.DataFrame(test, columns=["user", "item"]).to_csv(folder / "test.csv", index=False)
    result = invoke("train", "--train", folder / "train.csv", "--test", folder / "test.csv",
                    "--out", folder / "out", "--epochs", 1, "--batch-size", 4, "--dim", 4, "--k", 3,
                    "--no-progress", "--no-tensorboard", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    return folder / "out" / "best.pt"


def test_popularity_baseline(popular):
    result = invoke("eval", "--checkpoint", popular, "--popularity", "--k", 1, "--k", 3, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    # Unseen items by popularity:   u1: g | u2: e g | u3: d e g | u4: c d e g | u5: b c d e g
    # Hits at ranks:                u1: 1 | u2: 1 2 | u3: 1 3   | u4: 3       | u5: 1 5
    assert metrics["num_users"] == 5
    assert metrics["recall@1"] == pytest.approx((1 + 1 / 2 + 1 / 2 + 0 + 1 / 2) / 5)
    assert metrics["recall@3"] == pytest.approx((1 + 1 + 1 + 1 + 1 / 2) / 5)
    assert metrics["precision@3"] == pytest.approx((1 + 2 + 2 + 1 + 1) / 3 / 5)
    assert metrics["mrr@3"] == pytest.approx((1 + 1 + 1 + 1 / 3 + 1) / 5)
    ndcg_u3 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg_u4 = (1 / math.log2(4)) / 1
    ndcg_u5 = 1 / (1 + 1 / math.log2(3))
    assert metrics["ndcg@3"] == pytest.approx((1 + 1 + ndcg_u3 + ndcg_u4 + ndcg_u5) / 5)
    # Without --k: the K the model was trained with (--k 3), not 20 > the 6 items.
    text = invoke("eval", "--checkpoint", popular, "--popularity")
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines()[0] == (
        "popularity baseline: 5 users evaluated, 0 without test items skipped, "
        "0 cold users (included)"
    )
    assert f"  recall@3      {metrics['recall@3']:.4f}" in text.stdout.splitlines()


def test_validation_split_needs_one(run):
    result = invoke("eval", "--checkpoint", run[0] / "out" / "best.pt", "--split", "val")
    assert result.exit_code == 2
    assert "Invalid value for --split: the checkpoint's data has no validation split" in (
        result.output
    )


class Evil:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def bad_checkpoints(folder, good):
    data = good.read_bytes()
    (folder / "truncated.pt").write_bytes(data[: len(data) // 2])
    (folder / "garbage.pt").write_bytes(b"\x00garbage\xff" * 50)
    (folder / "empty.pt").write_bytes(b"")
    (folder / "folder.pt").mkdir()
    torch.save({"weights": torch.ones(2)}, folder / "other.pt")
    state = torch.load(good, weights_only=True)
    state["version"] = 99
    torch.save(state, folder / "future.pt")
    torch.save(
        {"format": "lightgcn_pyg.checkpoint", "x": Evil(folder / "pwned")}, folder / "evil.pt"
    )
    (folder / "pickle.pt").write_bytes(pickle.dumps({"a": 1}))
    state = torch.load(good, weights_only=True)
    del state["model"]["user_embedding.weight"]
    torch.save(state, folder / "nomodel.pt")
    return {
        "truncated.pt": "is truncated, damaged or not a checkpoint",
        "garbage.pt": "is truncated, damaged or not a checkpoint",
        "empty.pt": "is truncated, damaged or not a checkpoint",
        "missing.pt": "does not exist",
        "other.pt": "is not a lightgcn_pyg checkpoint",
        "future.pt": "has format version 99; this lightgcn_pyg reads version 1",
        "evil.pt": "cannot be loaded safely (weights_only): Trying to load unsupported GLOBAL "
        "posix.system",
        "pickle.pt": "pickle.pt'",
        "nomodel.pt": "does not fit the model",
    }


@pytest.mark.parametrize("command", ["eval", "recommend", "export"])
def test_bad_checkpoints_give_one_line_naming_the_file(run, tmp_path, command):
    cases = bad_checkpoints(tmp_path, run[0] / "out" / "best.pt")
    extra = {"eval": [], "recommend": ["--user", "alice"], "export": ["--out", tmp_path / "x"]}
    for name, message in cases.items():
        result = invoke(command, "--checkpoint", tmp_path / name, *extra[command])
        assert result.exit_code == 1, (name, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output, (name, result.output)
        assert lines[0].startswith("Error: ") and str(tmp_path / name) in lines[0], lines[0]
        assert message in lines[0], (name, lines[0])
        assert "False" not in lines[0]  # never torch's advice to retry with weights_only=False
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "pwned").exists()  # the pickle in evil.pt never ran
    # Click itself refuses a folder (a usage error).
    result = invoke(command, "--checkpoint", tmp_path / "folder.pt", *extra[command])
    assert result.exit_code == 2
    assert f"Invalid value for '--checkpoint': File '{tmp_path / 'folder.pt'}' is a directory" in (
        result.output
    )


def test_help_lists_every_option():
    output = assert_help_lists_every_option("eval", evaluate)
    flat = " ".join(output.split())
    assert "--k INTEGER RANGE" in flat and "[default: the K values the model was trained" in flat


def test_per_user_rows_are_the_naive_per_user_values(run, tmp_path):
    folder, _, train_pairs, test_pairs = run
    path = tmp_path / "pu.csv"
    result = invoke(
        "eval", "--checkpoint", folder / "out" / "best.pt", "--k", 4, "--per-user", path
    )
    assert result.exit_code == 0, result.output
    with open(path, newline="") as f:
        rows = {row["user"]: row for row in csv.DictReader(f)}
    for user in ("alice", "u07"):
        expected, _ = naive_metrics(
            folder / "out" / "best.pt",
            train_pairs,
            [pair for pair in test_pairs if pair[0] == user],
            [4],
        )
        for key, value in expected.items():
            assert float(rows[user][key]) == pytest.approx(value, abs=1e-6), (user, key)


def test_cold_users_policy(tiny_txt, tmp_path):
    # conftest's tiny split: user 3 has a test item but no training item.
    result = invoke("train", "--train", tiny_txt[0], "--test", tiny_txt[1], "--out", tmp_path,
                    "--epochs", 1, "--k", 2, "--dim", 4, "--no-progress", "--no-tensorboard",
                    "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    per_policy = {}
    for policy in ("include", "exclude"):
        result = invoke("eval", "--checkpoint", tmp_path / "best.pt", "--cold-users", policy,
                        "--per-user", tmp_path / f"{policy}.csv", "--json")  # fmt: skip
        assert result.exit_code == 0, result.output
        per_policy[policy] = json.loads(result.stdout)
    assert (per_policy["include"]["num_users"], per_policy["exclude"]["num_users"]) == (4, 3)
    assert per_policy["include"]["num_cold_users"] == per_policy["exclude"]["num_cold_users"] == 1
    assert pd.read_csv(tmp_path / "include.csv")["user"].tolist() == [0, 1, 2, 3]
    assert pd.read_csv(tmp_path / "exclude.csv")["user"].tolist() == [0, 1, 2]


def test_validation_split_of_the_best_checkpoint(run, tmp_path):
    folder = run[0]
    result = invoke("train", "--train", folder / "train.csv", "--test", folder / "test.csv",
                    "--val-ratio", "0.3", "--out", tmp_path, "--epochs", 3, "--json", *SMALL)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "model selection on the validation split" in result.stderr
    best = load_checkpoint(tmp_path / "best.pt")
    val = invoke("eval", "--checkpoint", tmp_path / "best.pt", "--split", "val", "--json")
    assert val.exit_code == 0, val.output
    # The model selection numbers stored with best.pt are this model's validation metrics.
    metrics = json.loads(val.stdout)
    assert {k: metrics[k] for k in best["best_metrics"]} == best["best_metrics"]
    test = invoke("eval", "--checkpoint", tmp_path / "best.pt", "--json")
    assert json.loads(test.stdout) == json.loads(result.stdout)
    assert metrics["num_users"] <= json.loads(test.stdout)["num_users"]


def test_unwritable_per_user_file_is_one_line(run, tmp_path):
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "pu.csv"
    result = invoke("eval", "--checkpoint", run[0] / "out" / "best.pt", "--per-user", path)
    assert result.exit_code == 1
    assert result.output == f"Error: [Errno 20] Not a directory: '{path}'\n"
