r"""Turns raw-id interaction arrays into an :class:`InteractionSet`: id mapping, de-duplication,
train / held-out overlap handling and the counts of the :class:`LoadReport`. Shared by every
reader, vectorised with NumPy and pandas."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
import pandas as pd
import torch

from lightgcn_pyg.data.interactions import InteractionSet
from lightgcn_pyg.data.report import LoadReport
from lightgcn_pyg.data.splits import check_ratio

#: Raw user and item ids of one split; int64 arrays or object arrays of strings.
RawPairs = Tuple[np.ndarray, np.ndarray]


def unify_id_kinds(*arrays: np.ndarray) -> Tuple[np.ndarray, ...]:
    r"""If some id arrays hold strings, converts the integer ones to strings too."""
    if all(array.dtype.kind in "iu" for array in arrays):
        return tuple(array.astype(np.int64) for array in arrays)
    return tuple(
        array.astype(str).astype(object) if array.dtype.kind in "iu" else array for array in arrays
    )


def _map_ids(
    arrays: Tuple[np.ndarray, ...], identity: bool
) -> Tuple[Tuple[np.ndarray, ...], int, Optional[np.ndarray]]:
    r"""Maps raw ids to indices: the ids themselves (:obj:`identity`), else their rank in the
    sorted unique raw ids. Returns the index arrays, their number and the raw ids (or
    :obj:`None` for identity)."""
    sizes = [array.shape[0] for array in arrays]
    if identity:
        num = max((int(array.max()) + 1 for array in arrays if array.size), default=0)
        return arrays, num, None
    codes, uniques = pd.factorize(np.concatenate(unify_id_kinds(*arrays)), sort=True)
    uniques = np.asarray(uniques)
    parts = np.split(codes.astype(np.int64), np.cumsum(sizes)[:-1])
    return tuple(parts), uniques.shape[0], uniques


def sorted_unique(values: np.ndarray) -> np.ndarray:
    r"""Sorted unique values; sort + neighbour compare, faster than :func:`numpy.unique`'s
    hashing for large integer arrays."""
    values = np.sort(values)
    if values.size == 0:
        return values
    keep = np.empty(values.shape[0], dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _count_missing(values: np.ndarray, present: np.ndarray) -> int:
    r"""Number of unique :obj:`values` not in :obj:`present` (both sorted unique)."""
    return int((~np.isin(values, present, assume_unique=True)).sum())


def assemble_interactions(
    splits: Dict[str, RawPairs],
    *,
    identity: bool,
    report: LoadReport,
    train_source: str,
    extra_users: Optional[np.ndarray] = None,
    drop_overlap: bool = True,
    val_ratio: Optional[float] = None,
    seed: int = 0,
    name: Optional[str] = None,
) -> InteractionSet:
    r"""Builds an :class:`InteractionSet` from raw ids and fills in :obj:`report`.

    Args:
        splits (dict): :obj:`"train"` and optionally :obj:`"test"` and :obj:`"val"`, each a pair
            of raw user and raw item id arrays of equal length.
        identity (bool): Keep raw id == index (ids must be non-negative integers); else map ids
            to their rank among the sorted unique raw ids.
        report (LoadReport): Counts so far; updated in place and attached to the result.
        train_source (str): How to name the training input in errors, e.g. :obj:`"'train.txt'"`.
        extra_users (numpy.ndarray, optional): Raw ids of users seen without any item; they get
            an index too. (default: :obj:`None`)
        drop_overlap (bool, optional): Remove held-out pairs that are also training pairs.
            (default: :obj:`True`)
        val_ratio (float, optional): Carve a validation split of this share of each user's
            training pairs. (default: :obj:`None`)
        seed (int, optional): Seed of the validation carving. (default: :obj:`0`)
        name (str, optional): Dataset name. (default: :obj:`None`)
    """
    if val_ratio:  # None and 0 both mean "no validation split"
        check_ratio(val_ratio, "val_ratio", "assemble_interactions")
        if "val" in splits:
            raise ValueError(
                "'val_ratio' must not be given when the input already has a validation split "
                f"in 'assemble_interactions' (got {val_ratio})"
            )
    names = [key for key in ("train", "val", "test") if key in splits]
    if splits["train"][0].size == 0:
        raise ValueError(f"No training interactions in {train_source}")
    extra = extra_users if extra_users is not None else np.empty(0, dtype=np.int64)

    user_parts, num_users, user_ids = _map_ids(
        tuple(splits[key][0] for key in names) + (extra,), identity
    )
    item_parts, num_items, item_ids = _map_ids(tuple(splits[key][1] for key in names), identity)

    keys = {}
    for key, user, item in zip(names, user_parts, item_parts):
        keys[key] = sorted_unique(user * max(num_items, 1) + item)
        report.duplicates_dropped += user.shape[0] - keys[key].shape[0]
    for key in ("val", "test"):
        if key in keys:
            in_train = np.isin(keys[key], keys["train"], assume_unique=True)
            report.overlap += int(in_train.sum())
            if drop_overlap:
                report.overlap_dropped += int(in_train.sum())
                keys[key] = keys[key][~in_train]

    stride = max(num_items, 1)
    edge_index = {
        key: torch.from_numpy(np.stack([value // stride, value % stride]))
        for key, value in keys.items()
    }
    for row, kind, num in ((0, "users", num_users), (1, "items", num_items)):
        present = {key: sorted_unique(value[row].numpy()) for key, value in edge_index.items()}
        if "test" in present:
            missing = _count_missing(present["test"], present["train"])
            setattr(report, f"test_only_{kind}", missing)
        used = sorted_unique(np.concatenate(list(present.values())))
        setattr(report, f"unused_{kind}", num - used.shape[0])

    interactions = InteractionSet(
        num_users, num_items, edge_index["train"], edge_index.get("test"), edge_index.get("val"),
        user_ids=user_ids, item_ids=item_ids, report=report, name=name,
    )  # fmt: skip
    if val_ratio:
        interactions = interactions.with_validation(val_ratio, seed)
    return interactions
