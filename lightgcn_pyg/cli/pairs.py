"""Read a file of raw (user, item) pairs and map it through a trained model's id maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lightgcn_pyg.data import InteractionSet
from lightgcn_pyg.data.txt_parser import parse_lightgcn_txt, read_bytes


def read_raw_pairs(
    path: Path, user_col: str = "user", item_col: str = "item"
) -> tuple[np.ndarray, np.ndarray]:
    """Raw user and item ids of every pair in a LightGCN text, CSV or Parquet file."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq", ".csv", ".tsv", ".tab"):
        try:
            if suffix in (".parquet", ".pq"):
                frame = pd.read_parquet(path)
            else:
                frame = pd.read_csv(path, sep="," if suffix == ".csv" else "\t", dtype=str)
        except Exception as e:  # pandas raises many types for bad files
            raise ValueError(f"Cannot read '{path}': {e}") from None
        for column in (user_col, item_col):
            if column not in frame.columns:
                raise ValueError(
                    f"Column '{column}' is missing in '{path}' (columns: {list(frame.columns)})"
                )
        return frame[user_col].to_numpy(), frame[item_col].to_numpy()
    parsed = parse_lightgcn_txt(read_bytes(path, "--test"), path)
    return parsed.user, parsed.item


def map_pairs(data: InteractionSet, path: Path, user_col: str = "user", item_col: str = "item") -> Tensor:
    """The bipartite ``edge_index`` of a file's pairs, in the indices of ``data``.

    Ids the model does not know cannot be ranked: they are an error naming the file and the id.
    """
    users, items = read_raw_pairs(path, user_col, item_col)
    if len(users) == 0:
        raise ValueError(f"'{path}' holds no interactions")
    if data.user_ids is not None and len(data.user_ids) and isinstance(data.user_ids[0], str):
        users, items = users.astype(str), items.astype(str)
    try:
        user_index = data.user_index(users)
        item_index = data.item_index(items)
    except ValueError as e:
        raise ValueError(f"In '{path}': {e}") from None
    return torch.stack([user_index, item_index])
