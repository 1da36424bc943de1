"""Shared test fixtures: tiny interaction files and the real Gowalla copy (when present)."""

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# A tiny LightGCN-format split: 4 users (user 3 only in test), 5 items (item 4 only in test).
TINY_TRAIN = "0 0 1 2\n1 1 2\n2 0 3\n"
TINY_TEST = "0 3\n1 0\n2 4\n3 1\n"


@pytest.fixture(autouse=True)
def _single_thread():
    """Tests use tiny tensors: one thread avoids the thread start-up and contention costs
    that dominate tiny kernels on a shared 2-core machine (benchmarks set their own)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_txt(tmp_path: Path) -> tuple:
    """Paths of a clean tiny ``train.txt`` / ``test.txt`` pair (see ``TINY_TRAIN``)."""
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text(TINY_TRAIN)
    test.write_text(TINY_TEST)
    return train, test


def gowalla_root() -> Path:
    """Folder holding ``gowalla/``: ``$LIGHTGCN_DATA_ROOT``, else ``../shared/datasets``."""
    env = os.environ.get("LIGHTGCN_DATA_ROOT")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


@pytest.fixture
def gowalla_data_root() -> Path:
    """The real Gowalla copy's root; skips the test with the reason when it is absent."""
    root = gowalla_root()
    if not all((root / "gowalla" / name).is_file() for name in ("train.txt", "test.txt")):
        pytest.skip(f"no Gowalla copy under {root} (set LIGHTGCN_DATA_ROOT)")
    return root
