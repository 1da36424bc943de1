import numpy as np
import pandas as pd
import pytest
import torch

from lightgcn_pyg.data import LoadReport, from_dataframe, map_interactions_file, read_table

RATINGS = (
    "userId,movieId,rating,ts\n"
    "u10,m5,4.0,100\n"
    "u2,m5,3.0,50\n"
    "u10,m7,5.0,200\n"
    "u2,m1,1.0,10\n"
    "u10,m5,4.5,300\n"  # (u10, m5) again, later
    "u3,m1,5.0,20\n"
)
COLUMNS = dict(user_col="userId", item_col="movieId")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def pairs(edge_index):
    return [tuple(p) for p in edge_index.t().tolist()]


def test_csv_leave_last_out_with_string_ids(tmp_path):
    path = write(tmp_path, "ratings.csv", RATINGS)
    data = read_table(path, **COLUMNS, time_col="ts", split="leave_last_out")
    # Sorted raw ids: users u10 < u2 < u3 (strings), items m1 < m5 < m7.
    assert data.user_ids.tolist() == ["u10", "u2", "u3"]
    assert data.item_ids.tolist() == ["m1", "m5", "m7"]
    # (u10, m5) is kept once, at time 300, so it is u10's latest; u3 has one pair: train.
    assert pairs(data.train_edge_index) == [(0, 2), (1, 0), (2, 0)]
    assert pairs(data.test_edge_index) == [(0, 1), (1, 1)]
    assert data.report == LoadReport(duplicates_dropped=1, test_only_items=1)  # m5
    assert data.user_index(["u3"]).tolist() == [2]


def test_csv_min_rating_and_given_split(tmp_path):
    train = write(tmp_path, "train.csv", RATINGS)
    test = write(tmp_path, "test.csv", "userId,movieId,rating,ts\nu10,m7,5,1\nu9,m9,5,1\n")
    data = read_table(train, test_path=test, **COLUMNS, rating_col="rating", min_rating=3.5)
    # Rows rated 3.0 and 1.0 go: u2 disappears; u9 and m9 exist only in test.
    assert data.user_ids.tolist() == ["u10", "u3", "u9"]
    assert data.item_ids.tolist() == ["m1", "m5", "m7", "m9"]
    assert pairs(data.train_edge_index) == [(0, 1), (0, 2), (1, 0)]
    assert pairs(data.test_edge_index) == [(2, 3)]  # (u10, m7) overlaps train: dropped
    assert data.report == LoadReport(
        rating_filtered=2, duplicates_dropped=1, overlap=1, overlap_dropped=1,
        test_only_users=1, test_only_items=1,
    )  # fmt: skip
    kept = read_table(train, test_path=test, **COLUMNS, drop_overlap=False)
    assert kept.num_test == 2 and kept.report.overlap == 1 and kept.report.overlap_dropped == 0


def test_integer_ids_are_mapped_in_numeric_order(tmp_path):
    path = write(tmp_path, "x.tsv", "user\titem\n100\t7\n7\t300\n42\t7\n100\t20\n")
    data = read_table(path, split="ratio", test_ratio=0.5, seed=0)
    assert data.user_ids.tolist() == [7, 42, 100]
    assert data.item_ids.tolist() == [7, 20, 300]
    everything = sorted(pairs(data.train_edge_index) + pairs(data.test_edge_index))
    assert everything == [(0, 2), (1, 0), (2, 0), (2, 1)]
    assert data.num_test == 1  # only user 100 has two pairs


def test_ratio_split_per_user(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"user": np.repeat(np.arange(10) * 3, 5), "item": rng.permutation(50)})
    data = from_dataframe(df, test_ratio=0.2, seed=5)
    assert np.bincount(data.test_edge_index[0].numpy(), minlength=10).tolist() == [1] * 10
    assert np.bincount(data.train_edge_index[0].numpy(), minlength=10).tolist() == [4] * 10
    again = from_dataframe(df, test_ratio=0.2, seed=5)
    assert pairs(again.test_edge_index) == pairs(data.test_edge_index)
    other = from_dataframe(df, test_ratio=0.2, seed=6)
    assert pairs(other.test_edge_index) != pairs(data.test_edge_index)
    with_val = from_dataframe(df, test_ratio=0.2, val_ratio=0.25, seed=5)
    assert (with_val.num_train, with_val.num_val, with_val.num_test) == (30, 10, 10)
    assert pairs(with_val.test_edge_index) == pairs(data.test_edge_index)


def test_column_split_and_mixed_ids():
    df = pd.DataFrame(
        {
            "u": [1, "b", 1, "b", "a", 1],
            "i": ["x", "y", "y", "x", "x", "z"],
            "part": ["train", "train", "Test", "valid", "train", "TRAIN "],
        }
    )
    data = from_dataframe(df, user_col="u", item_col="i", split_col="part")
    assert data.user_ids.tolist() == ["1", "a", "b"]  # integers mixed with strings: strings
    assert pairs(data.train_edge_index) == [(0, 0), (0, 2), (1, 0), (2, 1)]
    assert pairs(data.val_edge_index) == [(2, 0)]
    assert pairs(data.test_edge_index) == [(0, 1)]


def test_parquet_and_datetimes(tmp_path):
    df = pd.DataFrame(
        {
            "user": [5, 5, 9, 9],
            "item": [1, 2, 1, 3],
            "when": pd.to_datetime(["2020-01-03", "2020-01-01", "2020-01-01", "2020-02-01"]),
        }
    )
    path = tmp_path / "x.parquet"
    df.to_parquet(path)
    data = read_table(path, time_col="when", split="leave_last_out")
    assert pairs(data.test_edge_index) == [(0, 0), (1, 2)]
    # Date strings in a CSV work too.
    csv = write(tmp_path, "d.csv", "user,item,when\n5,1,2020-01-03\n5,2,2020-01-01\n")
    assert pairs(read_table(csv, time_col="when", split="leave_last_out").test_edge_index) == [
        (0, 0)
    ]


def test_csv_blank_lines_are_counted_and_lines_kept(tmp_path):
    path = write(tmp_path, "b.csv", "user,item\r\n1,2\r\n\r\n3,4\r\n  \r\n5,6\r\n")
    data = read_table(path, split="ratio")
    assert data.report.empty_lines == 2 and data.num_train + data.num_test == 3
    assert data.user_ids.tolist() == [1, 3, 5]  # integers despite the whitespace line
    bad = write(tmp_path, "bad.csv", "user,item\n1,2\n\n3,4\n\n5,-1\n")
    with pytest.raises(ValueError, match=r"Negative id -1 in column 'item' of '.*bad.csv' line 6"):
        read_table(bad)


@pytest.mark.parametrize(
    "content, kwargs, message",
    [
        (RATINGS, {}, r"Column 'user' \('user_col'\) not found in '.*f.csv' \(available: "
                      r"'userId', 'movieId', 'rating', 'ts'\)"),
        (RATINGS, dict(COLUMNS, time_col="time"), r"Column 'time' \('time_col'\) not found"),
        ("user,item\n1,2\n3,\n", {}, r"Missing value in column 'item' of '.*f.csv' line 3"),
        ("user,item\n1,2.5\n", {}, r"Non-integer id 2.5 in column 'item' of '.*f.csv' line 2"),
        ("user,item\n1,2\n-4,3\n", {}, r"Negative id -4 in column 'user' of '.*f.csv' line 3"),
        ("user,item\n1,True\n", {}, r"Column 'item' of '.*f.csv' must hold integer or string"),
        (b"user,item\n1,2\n\xff\xfe,3\n", {}, r"Invalid UTF-8 in '.*f.csv' line 3"),
        ("user,item\n1,2\n3,4,5,6\n", {}, r"Could not read csv file '.*f.csv': .* line 3, saw 4"),
        ("", {}, r"No columns in '.*f.csv'"),
        ("user,item\n", {}, r"No training interactions in '.*f.csv'"),
        ("user,item,r\n1,2,1\n", dict(rating_col="r", min_rating=3),
         r"No training interactions"),
        ("user,item,t\n1,2,soon\n", dict(time_col="t"),
         r"Column 't' of '.*f.csv' must hold numbers or dates \(got 'soon' line 2\)"),
        ("user,item\n1,2\n", dict(split="leave_last_out"), r"no 'time_col' was given"),
        ("user,item\n1,2\n", dict(split="given"), r"'split' is 'given' but a test table"),
        ("user,item\n1,2\n", dict(split="column"), r"no 'split_col' was given"),
        ("user,item\n1,2\n", dict(split="random"), r"'split' must be one of"),
        ("user,item\n1,2\n", dict(test_ratio=0), r"'test_ratio' must be a number in \(0, 1\)"),
        ("user,item,s\n1,2,train\n1,3,dev\n", dict(split_col="s"),
         r"Unknown split 'dev' in column 's' of '.*f.csv' line 3"),
        ("user,item\n1,2\n", dict(file_format="xlsx"), r"'file_format' must be"),
    ],
)  # fmt: skip
def test_bad_tables(tmp_path, content, kwargs, message):
    with pytest.raises(ValueError, match=message):
        read_table(write(tmp_path, "f.csv", content), **kwargs)


def test_bad_dataframes(tmp_path):
    with pytest.raises(ValueError, match=r"Missing value in column 'item' of 'df' row 1"):
        from_dataframe(pd.DataFrame({"user": [1, 2], "item": [3, None]}))
    with pytest.raises(ValueError, match=r"Non-integer id inf in column 'user' of 'test_df' row 0"):
        from_dataframe(
            pd.DataFrame({"user": [1], "item": [3]}),
            test_df=pd.DataFrame({"user": [np.inf], "item": [3]}),
        )
    with pytest.raises(ValueError, match=r"Id 18446744073709551615 too large in column 'user'"):
        from_dataframe(pd.DataFrame({"user": np.array([2**64 - 1], np.uint64), "item": [3]}))
    with pytest.raises(ValueError, match="'df' must be a pandas DataFrame"):
        from_dataframe({"user": [1], "item": [2]})
    with pytest.raises(ValueError, match=r"Column 'item' of 'df' must hold integer or string"):
        from_dataframe(pd.DataFrame({"user": [1], "item": [(1, 2)]}))
    with pytest.raises(FileNotFoundError, match=r"No such file for 'path'"):
        read_table(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match=r"Could not read parquet file '.*n.parquet'"):
        read_table(write(tmp_path, "n.parquet", b"PAR1 not really"))


def test_map_interactions_file(tmp_path):
    train = write(tmp_path, "r.csv", RATINGS)
    data = read_table(train, **COLUMNS, split="ratio", test_ratio=0.5)
    new = write(tmp_path, "new.csv", "u,i\nu3,m7\nu10,m1\nu3,m7\n\n")
    edges = map_interactions_file(data, new, user_col="u", item_col="i")
    assert edges.tolist() == [[0, 2], [0, 2]]  # (u10, m1), (u3, m7); duplicate kept once
    parquet = tmp_path / "new.parquet"
    pd.DataFrame({"u": ["u2"], "i": ["m5"]}).to_parquet(parquet)
    assert map_interactions_file(data, parquet, user_col="u", item_col="i").tolist() == [[1], [1]]
    unknown = write(tmp_path, "unknown.csv", "u,i\nu3,m7\nu4,m7\n")
    with pytest.raises(ValueError, match=r"Unknown user id 'u4' in '.*unknown.csv' \(not among"):
        map_interactions_file(data, unknown, user_col="u", item_col="i")

    ints = from_dataframe(pd.DataFrame({"user": [7, 9, 9], "item": [3, 3, 4]}), split="ratio")
    txt = write(tmp_path, "t.txt", "9 4 3\n7 3\n")
    assert map_interactions_file(ints, txt).tolist() == [[0, 1, 1], [0, 0, 1]]
    with pytest.raises(ValueError, match=r"Unknown item id 5 in '.*bad.txt'"):
        map_interactions_file(ints, write(tmp_path, "bad.txt", "9 5\n"))


def test_map_interactions_file_excludes_known_pairs(tmp_path):
    ints = from_dataframe(pd.DataFrame({"user": [7, 9, 9], "item": [3, 3, 4]}), split="ratio")
    txt = write(tmp_path, "t.txt", "9 4 3\n7 3\n")  # pairs (1, 0), (1, 1), (0, 0)
    exclude = torch.tensor([[1, 0, 0], [1, 1, 0]])  # (1, 1) and (0, 0) are in the file
    report = LoadReport()
    kept = map_interactions_file(ints, txt, exclude=exclude, report=report)
    assert kept.tolist() == [[1], [0]]
    assert report.overlap == 2 and report.overlap_dropped == 2
    # Nothing to exclude: unchanged, nothing counted.
    report = LoadReport()
    none = torch.empty(2, 0, dtype=torch.long)
    assert map_interactions_file(ints, txt, exclude=none, report=report).tolist() == [
        [0, 1, 1],
        [0, 0, 1],
    ]
    assert report.overlap == 0


def test_map_interactions_file_exclude_keys_do_not_wrap(tmp_path):
    """int32 pairs to exclude: keys are built in int64, else (65539, 5) would match (3, 5)."""
    num_users, num_items = 65536 + 8, 65536
    users = np.arange(num_users)
    data = from_dataframe(pd.DataFrame({"user": users, "item": users % num_items}))
    txt = write(tmp_path, "t.txt", "3 5\n")  # raw ids are the indices here
    report = LoadReport()
    exclude = torch.tensor([[65536 + 3], [5]], dtype=torch.int32)
    kept = map_interactions_file(data, txt, exclude=exclude, report=report)
    assert kept.tolist() == [[3], [5]] and report.overlap_dropped == 0
