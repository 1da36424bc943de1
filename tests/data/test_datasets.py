import time
import urllib.request

import pytest
import torch

import lightgcn_pyg.data.datasets as datasets
from lightgcn_pyg.data import (
    DATASET_STATS,
    EDGE_TYPE,
    REV_EDGE_TYPE,
    DatasetDownloadError,
    load_dataset,
)

TINY = {"train.txt": "0 0 1\n1 1 2\n", "test.txt": "0 2\n1 0\n"}
TINY_STATS = datasets.DatasetStats(2, 3, 4, 2)


def put(folder, files=TINY):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def tiny_gowalla_stats(monkeypatch):
    monkeypatch.setitem(datasets.DATASET_STATS, "gowalla", TINY_STATS)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No env var and an empty working directory."""
    monkeypatch.delenv(datasets.DATA_ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_known_statistics():
    assert DATASET_STATS["gowalla"] == (29_858, 40_981, 810_128, 217_242)
    assert DATASET_STATS["yelp2018"] == (31_668, 38_048, 1_237_259, 324_147)
    assert DATASET_STATS["amazon-book"] == (52_643, 91_599, 2_380_730, 603_378)
    assert datasets.dataset_name("Amazon_Book") == "amazon-book"
    with pytest.raises(ValueError, match=r"Unknown dataset 'movielens' .*'gowalla'"):
        load_dataset("movielens")


def test_lookup_order(isolated, monkeypatch):
    root, env, cwd = isolated / "root", isolated / "env", isolated / "datasets"
    for base in (root, env, cwd):
        put(base / "yelp2018")
    monkeypatch.setenv(datasets.DATA_ROOT_ENV, str(env))
    assert datasets.dataset_dir("yelp2018", root) == root / "yelp2018"
    assert datasets.dataset_dir("yelp2018") == env / "yelp2018"
    (env / "yelp2018" / "test.txt").unlink()  # an incomplete copy is skipped
    assert datasets.dataset_dir("yelp2018") == cwd / "yelp2018"
    monkeypatch.delenv(datasets.DATA_ROOT_ENV)
    assert datasets.dataset_dir("yelp2018") == cwd / "yelp2018"
    # An explicit root is the only place looked at (and downloaded into).
    with pytest.raises(FileNotFoundError, match=r"looked in '.*root/yelp2018/yelp2018'"):
        datasets.dataset_dir("yelp2018", root / "yelp2018", download=False)


def test_load_local_copy(isolated, tiny_gowalla_stats):
    put(isolated / "datasets" / "gowalla")
    data = load_dataset("gowalla", val_ratio=0.5, seed=0)
    assert data.name == "gowalla" and data.num_users == 2 and data.num_items == 3
    assert (data.num_train, data.num_val, data.num_test) == (2, 2, 2)


def test_statistics_mismatch_is_an_error(isolated):
    put(isolated / "datasets" / "gowalla")
    with pytest.raises(ValueError, match=r"does not match the LightGCN split: num_users 2 "
                       r"\(expected 29858\), num_items 3 \(expected 40981\)"):  # fmt: skip
        load_dataset("gowalla")


def test_download_into_first_lookup_folder(isolated, monkeypatch, tiny_gowalla_stats):
    env = isolated / "env"
    monkeypatch.setenv(datasets.DATA_ROOT_ENV, str(env))
    put(env / "gowalla", {"train.txt": TINY["train.txt"]})  # test.txt missing
    fetched = []

    def fake_download(url, path, *, timeout):
        fetched.append(url)
        path.write_text(TINY[path.name])

    monkeypatch.setattr(datasets, "download_url", fake_download)
    data = load_dataset("gowalla")
    assert fetched == [
        "https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data/gowalla/test.txt"
    ]
    assert data.num_test == 2 and (env / "gowalla" / "test.txt").is_file()


def test_unreachable_url_fails_clearly(isolated, monkeypatch):
    monkeypatch.setattr(datasets, "DATASET_URL", "http://127.0.0.1:9/{name}/{file}")
    start = time.monotonic()
    with pytest.raises(DatasetDownloadError) as info:
        load_dataset("amazon-book", timeout=2.0)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "http://127.0.0.1:9/amazon-book/train.txt failed" in message
    assert str(isolated / "datasets" / "amazon-book") in message
    assert "LIGHTGCN_DATA_ROOT" in message
    assert not (isolated / "datasets").exists()  # nothing left behind


def test_no_download(isolated):
    with pytest.raises(
        FileNotFoundError, match=r"Dataset 'yelp2018' not found .*LIGHTGCN_DATA_ROOT"
    ):
        load_dataset("yelp2018", download=False)


def test_download_url_file_scheme_and_no_partial_file(tmp_path, monkeypatch):
    source = tmp_path / "source.txt"
    source.write_text("0 1 2\n")
    target = tmp_path / "out" / "train.txt"
    datasets.download_url(source.as_uri(), target, timeout=1.0)
    assert target.read_text() == "0 1 2\n"

    class Broken:
        def __init__(self):
            self.calls = 0

        def read(self, size=-1):
            self.calls += 1
            if self.calls > 1:
                raise ConnectionResetError("connection dropped")
            return b"0 1 2\n1 "

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Broken())
    half = tmp_path / "out" / "test.txt"
    with pytest.raises(ConnectionResetError):
        datasets.download_url("https://example.invalid/test.txt", half)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["train.txt"]


@pytest.mark.integration
def test_gowalla_integration(gowalla_data_root, monkeypatch):
    monkeypatch.setenv(datasets.DATA_ROOT_ENV, str(gowalla_data_root))
    start = time.perf_counter()
    data = load_dataset("gowalla", download=False)
    elapsed = time.perf_counter() - start
    assert elapsed < 10  # typically well under 1 s; a loose guard against per-token Python
    assert (data.num_users, data.num_items, data.num_train, data.num_test) == (
        29_858, 40_981, 810_128, 217_242,
    )  # fmt: skip
    assert data.report.overlap == 0 and data.report.duplicates_dropped == 0
    graph = data.to_hetero_data()
    graph.validate()
    assert graph["user"].num_nodes == 29_858 and graph["item"].num_nodes == 40_981
    assert graph[EDGE_TYPE].edge_index.shape == (2, 810_128)
    assert graph[REV_EDGE_TYPE].edge_index.shape == (2, 810_128)
    assert graph[EDGE_TYPE].test_edge_label_index.shape == (2, 217_242)
    assert data.homogeneous_edge_index().shape == (2, 2 * 810_128)
    rowptr, col = data.csr()
    assert rowptr.shape == (29_859,) and int(rowptr[-1]) == 810_128
    # The first line of train.txt is user 0's items: "0 0 1 2 ... 101 ...".
    assert col[rowptr[0] : rowptr[1]][:3].tolist() == [0, 1, 2]
    assert torch.equal(
        load_dataset("gowalla", gowalla_data_root).train_edge_index, data.train_edge_index
    )
