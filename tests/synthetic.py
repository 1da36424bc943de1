"""A small clustered interaction dataset written in the LightGCN text format (shared by tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import torch


def write_clustered_txt(
    folder: Path, num_users: int = 60, num_items: int = 40, clusters: int = 4, seed: int = 0
) -> Tuple[Path, Path]:
    """Users of cluster c mostly like items of cluster c: a model that learns beats random.

    Every user gets 6 train and 2 test items from its cluster (plus one random train item), so
    Recall@k of a trained model is far above chance.
    """
    gen = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    items_per_cluster = num_items // clusters
    train_lines, test_lines = [], []
    for user in range(num_users):
        c = user % clusters
        pool = torch.randperm(items_per_cluster, generator=gen)[:8] + c * items_per_cluster
        noise = int(torch.randint(num_items, (1,), generator=gen))
        train = sorted(set(pool[:6].tolist()) | {noise})
        test = sorted(set(pool[6:].tolist()) - set(train))
        train_lines.append(" ".join(map(str, [user, *train])))
        test_lines.append(" ".join(map(str, [user, *test])))
    train_path, test_path = folder / "train.txt", folder / "test.txt"
    train_path.write_text("\n".join(train_lines) + "\n")
    test_path.write_text("\n".join(test_lines) + "\n")
    return train_path, test_path
