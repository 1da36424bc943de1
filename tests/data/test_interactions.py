import numpy as np
import pytest
import torch

from lightgcn_pyg.data import EDGE_TYPE, REV_EDGE_TYPE, InteractionSet, LoadReport


def make_set(**kwargs):
    train = torch.tensor([[2, 0, 0, 1, 0, 2], [1, 2, 0, 2, 2, 3]])  # unsorted, one duplicate
    test = torch.tensor([[0, 1, 3], [3, 0, 4]])
    return InteractionSet(4, 5, train, test, **kwargs)


def dense(edge_index, num_users, num_items):
    matrix = torch.zeros(num_users, num_items, dtype=torch.long)
    matrix[edge_index[0], edge_index[1]] = 1
    return matrix


def test_construction_sorts_and_dedupes():
    data = make_set()
    assert data.train_edge_index.tolist() == [[0, 0, 1, 2, 2], [0, 2, 2, 1, 3]]
    assert data.test_edge_index.tolist() == [[0, 1, 3], [3, 0, 4]]
    assert data.val_edge_index is None
    assert (data.num_users, data.num_items) == (4, 5)
    assert (data.num_train, data.num_test, data.num_val) == (5, 3, 0)
    assert data.density == pytest.approx(8 / 20)
    assert data.train_edge_index.dtype == torch.long
    assert repr(data) == (
        "InteractionSet(num_users=4, num_items=5, num_train=5, num_val=0, num_test=3)"
    )


def test_graph_views_match_dense_reference():
    data = make_set()
    adj = dense(data.train_edge_index, 4, 5)
    assert torch.equal(data.bipartite_edge_index(), data.train_edge_index)
    assert torch.equal(data.bipartite_edge_index("test"), data.test_edge_index)

    homo = data.homogeneous_edge_index()
    assert homo.shape == (2, 10)
    full = torch.zeros(9, 9, dtype=torch.long)
    full[homo[0], homo[1]] = 1
    expected = torch.zeros(9, 9, dtype=torch.long)
    expected[:4, 4:] = adj
    expected[4:, :4] = adj.t()
    assert torch.equal(full, expected)
    assert homo[:, :5].tolist() == [[0, 0, 1, 2, 2], [4, 6, 6, 5, 7]]  # user -> item first

    rowptr, col = data.csr()
    assert rowptr.tolist() == [0, 2, 3, 5, 5]
    for user in range(4):
        assert (
            col[rowptr[user] : rowptr[user + 1]].tolist() == adj[user].nonzero().view(-1).tolist()
        )
    assert data.csr("test")[0].tolist() == [0, 1, 2, 2, 3]


def test_to_hetero_data():
    data = make_set().with_validation(0.5, seed=0)
    graph = data.to_hetero_data()
    graph.validate()
    assert graph["user"].num_nodes == 4 and graph["item"].num_nodes == 5
    assert set(graph.edge_types) == {EDGE_TYPE, REV_EDGE_TYPE}
    assert torch.equal(graph[EDGE_TYPE].edge_index, data.train_edge_index)
    assert torch.equal(graph[REV_EDGE_TYPE].edge_index, data.train_edge_index.flip(0))
    assert torch.equal(graph[EDGE_TYPE].test_edge_label_index, data.test_edge_index)
    assert torch.equal(graph[EDGE_TYPE].val_edge_label_index, data.val_edge_index)
    assert "val_edge_label_index" not in make_set().to_hetero_data()[EDGE_TYPE]


def test_with_validation():
    data = make_set(name="tiny")
    carved = data.with_validation(0.5, seed=0)
    # Users 0 (2 pairs) and 2 (2 pairs) give one pair each; user 1 (1 pair) keeps it.
    assert carved.num_val == 2 and carved.num_train == 3
    both = torch.cat([carved.train_edge_index, carved.val_edge_index], dim=1)
    assert torch.equal(dense(both, 4, 5), dense(data.train_edge_index, 4, 5))
    assert carved.report.val_carved == 2 and data.report.val_carved == 0
    assert carved.name == "tiny" and torch.equal(carved.test_edge_index, data.test_edge_index)
    assert carved.fingerprint() == data.fingerprint()
    assert torch.equal(carved.edge_index("val"), carved.val_edge_index)
    with pytest.raises(ValueError, match="already has a validation split"):
        carved.with_validation(0.5)
    with pytest.raises(ValueError, match="has no validation split"):
        data.csr("val")
    with pytest.raises(ValueError, match=r"'split' must be one of .*got 'valid'"):
        data.csr("valid")


def test_id_maps_and_lookup():
    data = make_set(user_ids=["d", "a", "c", "b"], item_ids=[10, 30, 20, 50, 40])
    assert data.user_index(["a", "b", "d"]).tolist() == [1, 3, 0]
    assert data.item_index(np.array([40, 10])).tolist() == [4, 0]
    assert data.item_index([]).tolist() == []
    assert data.user_ids.tolist() == ["d", "a", "c", "b"]
    with pytest.raises(ValueError, match=r"Unknown user id 'z' in 'InteractionSet.user_index'"):
        data.user_index(["a", "z"])
    with pytest.raises(ValueError, match=r"Unknown item id 11"):
        data.item_index([11])

    identity = make_set()
    assert identity.user_ids.tolist() == [0, 1, 2, 3]
    assert identity.user_index(torch.tensor([3, 0])).tolist() == [3, 0]
    with pytest.raises(ValueError, match=r"Unknown item id 5"):
        identity.item_index([5])
    with pytest.raises(ValueError, match=r"Unknown user id 'x'"):
        identity.user_index(["x"])
    # An explicit map equal to 0..n-1 is the identity map.
    assert make_set(user_ids=[0, 1, 2, 3]).fingerprint() == identity.fingerprint()


def test_state_dict_round_trip(tmp_path):
    report = LoadReport(empty_lines=2, duplicates_dropped=1)
    data = make_set(user_ids=["d", "a", "c", "b"], report=report, name="tiny")
    data = data.with_validation(0.5, seed=1)
    path = tmp_path / "set.pt"
    data.save(path)
    state = torch.load(path, weights_only=True)
    assert state["user_ids"] == ["d", "a", "c", "b"] and state["item_ids_identity"] is True
    loaded = InteractionSet.load(path)
    for split in ("train", "val", "test"):
        assert torch.equal(loaded.edge_index(split), data.edge_index(split))
    assert loaded.user_ids.tolist() == ["d", "a", "c", "b"]
    assert loaded.report == data.report and loaded.name == "tiny"
    assert loaded.fingerprint() == data.fingerprint()
    assert loaded.summary() == data.summary()
    plain = InteractionSet.from_state_dict(make_set().state_dict())
    assert plain.val_edge_index is None and plain.name is None


def test_from_state_dict_rejects_bad_states(tmp_path):
    good = make_set().state_dict()
    with pytest.raises(ValueError, match=r"missing \['num_items'\]"):
        InteractionSet.from_state_dict({k: v for k, v in good.items() if k != "num_items"})
    with pytest.raises(ValueError, match=r"unknown \['extra'\]"):
        InteractionSet.from_state_dict({**good, "extra": 1})
    with pytest.raises(ValueError, match="'format_version' must be 1"):
        InteractionSet.from_state_dict({**good, "format_version": 9})
    with pytest.raises(
        ValueError, match=r"user indices of 'train_edge_index' must lie in \[0, 2\)"
    ):
        InteractionSet.from_state_dict({**good, "num_users": 2})
    with pytest.raises(ValueError, match="'user_ids' must hold one raw id per index"):
        InteractionSet.from_state_dict({**good, "user_ids": ["a"], "user_ids_identity": False})
    with pytest.raises(ValueError, match="'item_ids' must be empty"):
        InteractionSet.from_state_dict({**good, "item_ids": [1]})
    with pytest.raises(ValueError, match="'empty_lines' must be a non-negative integer"):
        InteractionSet.from_state_dict({**good, "report": {"empty_lines": -1}})
    with pytest.raises(ValueError, match="must be a dict"):
        InteractionSet.from_state_dict([1, 2])
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="Could not load an 'InteractionSet' from '.*bad.pt'"):
        InteractionSet.load(bad)
    torch.save({"x": 1}, bad)
    with pytest.raises(ValueError, match="Bad 'InteractionSet' file"):
        InteractionSet.load(bad)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_users=-1), "'num_users' must be a non-negative integer.*got -1"),
        (dict(num_items=2.0), "'num_items' must be a non-negative integer.*got 2.0"),
        (dict(train_edge_index=torch.zeros(2, 2)), "'train_edge_index' must hold integers"),
        (dict(train_edge_index=torch.zeros(2, 2, 2, dtype=torch.long)), r"shape \[2, E\]"),
        (dict(test_edge_index=torch.tensor([[0], [5]])), r"item indices .*\[0, 5\).*got 5"),
        (dict(test_edge_index=[[0], [1]]), "'test_edge_index' must be a tensor"),
        (dict(user_ids=["a", "a", "b", "c"]), "unique raw ids.*'a' twice"),
        (dict(user_ids=["a", 1, "b", "c"]), "only integers or only strings"),
        (dict(item_ids=[1, 2]), r"one raw id per index \(5\)"),
        (dict(report={"empty_lines": 1}), "'report' must be a 'LoadReport'"),
        (dict(name=3), "'name' must be a string"),
    ],
)
def test_constructor_errors(kwargs, match):
    args = dict(num_users=4, num_items=5, train_edge_index=torch.tensor([[0, 1], [0, 1]]))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        InteractionSet(**args)


def test_fingerprint_is_stable_and_sensitive():
    base = make_set()
    # A fixed value: a change of the hash recipe would orphan every saved checkpoint.
    assert base.fingerprint() == "2fc050432763b0c7"
    assert len(base.fingerprint()) == 16
    assert make_set(user_ids=["d", "a", "c", "b"]).fingerprint() != base.fingerprint()
    assert make_set(user_ids=[0, 1, 2, 4]).fingerprint() != base.fingerprint()
    assert make_set(user_ids=["0", "1", "2", "3"]).fingerprint() != base.fingerprint()
    other = InteractionSet(5, 5, base.train_edge_index, base.test_edge_index)
    assert other.fingerprint() != base.fingerprint()


def test_summary_and_report():
    report = LoadReport(duplicates_dropped=3, overlap=2, overlap_dropped=2, test_only_items=1)
    summary = make_set(report=report).summary()
    for key in ("num_users", "num_items", "num_train", "num_test", "num_val", "duplicates_dropped",
                "empty_lines", "test_only_users", "test_only_items"):  # fmt: skip
        assert key in summary
    assert summary["duplicates_dropped"] == 3 and summary["num_val"] == 0
    assert report.messages() == [
        "dropped 3 duplicate (user, item) pair(s)",
        "0 user(s) and 1 item(s) appear only in the test split",
        "2 test pair(s) also in train were dropped from the test split",
    ]
    assert LoadReport.from_dict(report.to_dict()) == report
    with pytest.raises(ValueError, match=r"Unknown keys \['bogus'\]"):
        LoadReport.from_dict({"bogus": 1})
