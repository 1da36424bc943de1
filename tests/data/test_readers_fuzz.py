"""Fuzzing: the readers parse correctly (against a naive reference) or raise ValueError."""

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightgcn_pyg.data import read_lightgcn_txt, read_table
from lightgcn_pyg.data.readers import MAX_TXT_INDEX


def reference_parse(data: bytes):
    """Line-by-line Python parse of the text format: a result dict, or ('error', line)."""
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    pairs, users, items, empty, only_user, total = set(), [], [], 0, 0, 0
    for number, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            empty += 1
            continue
        for token in tokens:
            if not all(48 <= byte <= 57 for byte in token) or int(token) > MAX_TXT_INDEX:
                return ("error", number)
        ids = [int(token) for token in tokens]
        users.append(ids[0])
        only_user += len(ids) == 1
        for item in ids[1:]:
            pairs.add((ids[0], item))
            items.append(item)
            total += 1
    if not pairs:
        return ("error", None)
    return {
        "pairs": sorted(pairs),
        "num_users": max(users) + 1,
        "num_items": max(items) + 1,
        "empty_lines": empty,
        "users_without_items": only_user,
        "duplicates_dropped": total - len(pairs),
    }


valid_token = st.one_of(
    st.integers(0, 30).map(lambda i: str(i).encode()),
    st.integers(0, 30).map(lambda i: f"00{i}".encode()),
)
rare_token = st.one_of(
    st.sampled_from([b"2147483646", b"2147483647", b"9223372036854775807", b"1" * 25]),
    st.sampled_from([b"-1", b"1.0", b"x", b"+3", b"1e3", "\u0663".encode(), "é".encode()]),
    st.binary(min_size=1, max_size=3),
)
# Mostly valid ids, so that about half of the files parse and half hit an error.
token = st.integers(0, 24).flatmap(lambda r: rare_token if r == 0 else valid_token)
separator = st.sampled_from([b" ", b"  ", b"\t", b" \t ", b"\x0b", b"\x0c"])
line_end = st.sampled_from([b"\n", b"\r\n", b"\r", b"  \n", b"\t\r\n"])


@st.composite
def lightgcn_bytes(draw):
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=60))  # pure noise
    out = b""
    for _ in range(draw(st.integers(0, 6))):
        tokens = draw(st.lists(token, max_size=5))
        parts = (
            [draw(separator) + t for t in tokens]
            if draw(st.booleans())
            else [b" " + t for t in tokens]
        )
        out += b"".join(parts).lstrip(b" ") + draw(line_end)
    return out if draw(st.booleans()) else out.rstrip(b"\n")


@settings(max_examples=100, deadline=None, derandomize=True)
@given(data=lightgcn_bytes())
def test_txt_reader_fuzz(data):
    expected = reference_parse(data)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.txt"
        path.write_bytes(data)
        try:
            result = read_lightgcn_txt(path)
        except ValueError as exc:
            assert isinstance(expected, tuple), (data, exc)
            assert "fuzz.txt" in str(exc)
            if expected[1] is not None:
                assert f"line {expected[1]}:" in str(exc) or f"line {expected[1]} " in str(exc)
            return
    assert isinstance(expected, dict), (data, expected)
    assert [tuple(p) for p in result.train_edge_index.t().tolist()] == expected["pairs"]
    assert result.num_users == expected["num_users"]
    assert result.num_items == expected["num_items"]
    for key in ("empty_lines", "users_without_items", "duplicates_dropped"):
        assert getattr(result.report, key) == expected[key], key


@settings(max_examples=40, deadline=None, derandomize=True)
@given(data=st.binary(max_size=80), suffix=st.sampled_from([".csv", ".tsv", ".parquet"]))
def test_table_reader_random_bytes_only_value_error(data, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"noise{suffix}"
        path.write_bytes(b"user,item\n" + data if suffix == ".csv" else data)
        try:
            result = read_table(path, split="ratio", test_ratio=0.5)
        except ValueError as exc:
            assert "noise" in str(exc)
            return
    assert result.num_train >= 1


def test_truncated_parquet_is_value_error(tmp_path):
    path = tmp_path / "x.parquet"
    pd.DataFrame({"user": [1], "item": [2]}).to_parquet(path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match=r"Could not read parquet file '.*x.parquet'"):
        read_table(path)
