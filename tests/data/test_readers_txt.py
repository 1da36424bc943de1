import pytest
import torch

from lightgcn_pyg.data import LoadReport, read_lightgcn_txt

MESSY_TRAIN = (
    b"0 0 1 2 1\r\n"  # CRLF, item 1 twice
    b"\r\n"  # blank
    b"1 2   \t\n"  # trailing whitespace
    b"   \n"  # whitespace only
    b"5\n"  # user without items
    b"2 0 3\n"
    b"2 3\n"  # user 2 again, (2, 3) twice
    b"\n"
)
MESSY_TEST = b"0 3 0\n1 6\n7 2\n3"  # (0, 0) also in train; item 6, user 7 only here; no final \n


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_clean_files(tiny_txt):
    data = read_lightgcn_txt(*tiny_txt, name="tiny")
    assert (data.num_users, data.num_items, data.name) == (4, 5, "tiny")
    assert data.train_edge_index.tolist() == [[0, 0, 0, 1, 1, 2, 2], [0, 1, 2, 1, 2, 0, 3]]
    assert data.test_edge_index.tolist() == [[0, 1, 2, 3], [3, 0, 4, 1]]
    assert data.report == LoadReport(test_only_users=1, test_only_items=1)
    assert data.user_ids.tolist() == [0, 1, 2, 3]
    assert data.state_dict()["user_ids_identity"] is True


@pytest.mark.parametrize("drop_overlap, num_test", [(True, 3), (False, 4)])
def test_messy_files_exact_counts(tmp_path, drop_overlap, num_test):
    train = write(tmp_path, "train.txt", MESSY_TRAIN)
    test = write(tmp_path, "test.txt", MESSY_TEST)
    data = read_lightgcn_txt(train, test, drop_overlap=drop_overlap)
    # Raw id == index: max user id 7 (test only), max item id 6 (test only).
    assert (data.num_users, data.num_items) == (8, 7)
    assert data.train_edge_index.tolist() == [[0, 0, 0, 1, 2, 2], [0, 1, 2, 2, 0, 3]]
    expected_test = [(0, 0), (0, 3), (1, 6), (7, 2)]
    if drop_overlap:
        expected_test.remove((0, 0))
    assert [tuple(p) for p in data.test_edge_index.t().tolist()] == expected_test
    assert data.num_test == num_test
    assert data.report == LoadReport(
        empty_lines=3,
        duplicates_dropped=2,
        users_without_items=2,
        test_only_users=1,
        test_only_items=1,
        overlap=1,
        overlap_dropped=1 if drop_overlap else 0,
        unused_users=4,  # users 3, 4, 5, 6
        unused_items=2,  # items 4, 5
    )
    degree = torch.bincount(data.train_edge_index[0], minlength=8)
    assert degree.tolist() == [3, 1, 2, 0, 0, 0, 0, 0]  # duplicates counted once


def test_remap_ids(tmp_path):
    train = write(tmp_path, "train.txt", MESSY_TRAIN)
    test = write(tmp_path, "test.txt", MESSY_TEST)
    data = read_lightgcn_txt(train, test, remap_ids=True)
    assert data.user_ids.tolist() == [0, 1, 2, 3, 5, 7]
    assert data.item_ids.tolist() == [0, 1, 2, 3, 6]
    assert data.report.unused_users == 2 and data.report.unused_items == 0
    assert data.user_index([7, 5]).tolist() == [5, 4]
    assert data.test_edge_index.tolist() == [[0, 1, 5], [3, 4, 2]]

    huge = write(tmp_path, "huge.txt", b"9000000000000000000 5 4000000000\n")
    data = read_lightgcn_txt(huge, remap_ids=True)
    assert data.user_ids.tolist() == [9000000000000000000]
    assert data.item_ids.tolist() == [5, 4000000000]


def test_line_endings_and_leading_zeros(tmp_path):
    data = read_lightgcn_txt(write(tmp_path, "a.txt", b"0 1\r1 2\r\r2 0000000000000000000000003"))
    assert data.train_edge_index.tolist() == [[0, 1, 2], [1, 2, 3]]
    assert data.report.empty_lines == 1
    data = read_lightgcn_txt(write(tmp_path, "b.txt", b"\x0c0\x0b1\t2 \n"))
    assert data.train_edge_index.tolist() == [[0, 0], [1, 2]]


def test_no_test_file_and_validation(tiny_txt):
    data = read_lightgcn_txt(tiny_txt[0], val_ratio=0.5, seed=0)
    assert data.num_test == 0 and (data.num_users, data.num_items) == (3, 4)
    # User 0 has 3 pairs: round(1.5) = 2 go; users 1 and 2 have 2 pairs: round(1.0) = 1 goes.
    assert data.num_val == 4 and data.num_train == 3
    assert data.report.val_carved == 4


@pytest.mark.parametrize(
    "content, message",
    [
        (b"0 1\n1 x\n", r"Invalid id 'x' in '.*train.txt' line 2: ids must be non-negative"),
        (b"0 1\n\n2 -3\n", r"Negative id '-3' in '.*train.txt' line 3"),
        (b"0 1.5\n", r"Invalid id '1.5' in '.*train.txt' line 1"),
        (b"0 1\r\n1 2 a\r\n", r"Invalid id 'a' in '.*train.txt' line 2"),
        (b"0 1\n1 \xff\xfe\n", r"Invalid id '\\\\xff\\\\xfe' in '.*train.txt' line 2"),
        ("0 1\n1 \u0663\n".encode(), r"Invalid id '\u0663' in '.*train.txt' line 2"),
        (b"0 +1\n", r"Invalid id '\+1' in '.*train.txt' line 1"),
        (b"0 1\n1 2147483647\n", r"Id '2147483647' in '.*train.txt' line 2 is too large"),
        (b"0 99999999999999999999\n", r"Id '99999999999999999999' in .* line 1 is too large"),
        (b"", r"No training interactions in '.*train.txt'"),
        (b"\n \n\r\n", r"No training interactions"),
        (b"1\n2\n", r"No training interactions"),
    ],
)
def test_bad_train_file(tmp_path, content, message):
    with pytest.raises(ValueError, match=message):
        read_lightgcn_txt(write(tmp_path, "train.txt", content))


def test_bad_test_file_is_named(tiny_txt, tmp_path):
    bad = write(tmp_path, "other.txt", b"0 1\n1 2\n2 3 x4\n")
    with pytest.raises(ValueError, match=r"Invalid id 'x4' in '.*other.txt' line 3"):
        read_lightgcn_txt(tiny_txt[0], bad)


def test_too_large_with_remap(tmp_path):
    path = write(tmp_path, "train.txt", b"0 9223372036854775807\n")
    with pytest.raises(ValueError, match=r"line 1 is too large \(at most 9223372036854775806\)"):
        read_lightgcn_txt(path, remap_ids=True)
    with pytest.raises(ValueError, match="pass remap_ids=True"):
        read_lightgcn_txt(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No such file for 'test_path': '.*nope.txt'"):
        read_lightgcn_txt(write(tmp_path, "t.txt", b"0 1\n"), tmp_path / "nope.txt")


def test_bad_val_ratio(tiny_txt):
    with pytest.raises(ValueError, match=r"'val_ratio' must be a number in \(0, 1\)"):
        read_lightgcn_txt(*tiny_txt, val_ratio=1.5)
