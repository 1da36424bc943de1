r"""Per-user train / test / validation splits, vectorised with NumPy.

Every function works on flat arrays of interactions (one entry per :obj:`(user, item)` pair) and
returns a boolean *hold-out* mask: :obj:`True` marks pairs that leave the training split. No
function loops over users in Python, and none allocates anything of size ``num_users``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor


def check_ratio(value: Optional[float], name: str, where: str, *, allow_zero: bool = False) -> None:
    r"""Raises :class:`ValueError` unless :obj:`value` lies in :math:`(0, 1)` (or is :obj:`0`
    with :obj:`allow_zero`)."""
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (0.0 <= value < 1.0 if allow_zero else 0.0 < value < 1.0)
    )
    if not ok:
        bound = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"'{name}' must be a number in {bound} in '{where}' (got {value!r})")


def _group_ranks(sorted_user: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    r"""For users sorted in blocks, returns each entry's rank inside its block and the block
    size of each entry."""
    num = sorted_user.shape[0]
    is_start = np.ones(num, dtype=bool)
    is_start[1:] = sorted_user[1:] != sorted_user[:-1]
    starts = np.flatnonzero(is_start)
    sizes = np.diff(np.append(starts, num))
    rank = np.arange(num) - np.repeat(starts, sizes)
    return rank, np.repeat(sizes, sizes)


def ratio_holdout_mask(user: np.ndarray, ratio: float, seed: int = 0) -> np.ndarray:
    r"""Randomly holds out a :obj:`ratio` share of each user's interactions.

    A user with :math:`n` interactions keeps :math:`n - h` of them, where
    :math:`h = \min(\lfloor n \cdot \textrm{ratio} + 1/2 \rfloor, n - 1)`: the share is rounded
    to the nearest count, and every user keeps at least one interaction, so users with a single
    interaction are never held out. Which ones are held out is uniform at random and fixed by
    :obj:`seed` (NumPy's PCG64, stable across platforms).

    Args:
        user (numpy.ndarray): User index of each interaction, shape :obj:`[E]`.
        ratio (float): Share to hold out per user, in :math:`(0, 1)`.
        seed (int, optional): Seed of the random choice. (default: :obj:`0`)

    Returns:
        numpy.ndarray: Boolean hold-out mask of shape :obj:`[E]`.
    """
    check_ratio(ratio, "ratio", "ratio_holdout_mask")
    user = np.asarray(user)
    num = user.shape[0]
    key = np.random.default_rng(seed).random(num)
    order = np.lexsort((key, user))  # by user, then by random key
    rank, size = _group_ranks(user[order])
    num_held = np.minimum(np.floor(size * ratio + 0.5).astype(np.int64), size - 1)
    mask = np.empty(num, dtype=bool)
    mask[order] = rank < num_held
    return mask


def leave_last_out_mask(user: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
    r"""Holds out each user's latest interaction by :obj:`timestamp`.

    Users with a single interaction keep it for training. Ties between equal timestamps are broken
    by position: the later entry counts as more recent, so the result is deterministic.

    Args:
        user (numpy.ndarray): User index of each interaction, shape :obj:`[E]`.
        timestamp (numpy.ndarray): Sortable time of each interaction, shape :obj:`[E]`.

    Returns:
        numpy.ndarray: Boolean hold-out mask of shape :obj:`[E]`.
    """
    user, timestamp = np.asarray(user), np.asarray(timestamp)
    if user.shape != timestamp.shape:
        raise ValueError(
            f"'timestamp' must have the shape of 'user' in 'leave_last_out_mask' "
            f"(got {timestamp.shape} and {user.shape})"
        )
    num = user.shape[0]
    order = np.lexsort((np.arange(num), timestamp, user))
    rank, size = _group_ranks(user[order])
    mask = np.empty(num, dtype=bool)
    mask[order] = (rank == size - 1) & (size > 1)
    return mask


def carve_validation(edge_index: Tensor, val_ratio: float, seed: int = 0) -> Tuple[Tensor, Tensor]:
    r"""Moves a random :obj:`val_ratio` share of each user's training pairs to a validation split.

    Uses :func:`ratio_holdout_mask`, so every user keeps at least one training pair.

    Args:
        edge_index (torch.Tensor): Bipartite training edge index of shape :obj:`[2, E]`.
        val_ratio (float): Share per user to move, in :math:`(0, 1)`.
        seed (int, optional): Seed of the random choice. (default: :obj:`0`)

    Returns:
        (train_edge_index, val_edge_index): Both sub-sets of the columns of :obj:`edge_index`,
        in their original order.
    """
    check_ratio(val_ratio, "val_ratio", "carve_validation")
    user = edge_index[0].detach().cpu().numpy()
    held = torch.from_numpy(ratio_holdout_mask(user, val_ratio, seed)).to(edge_index.device)
    return edge_index[:, ~held], edge_index[:, held]
