import math
from collections import defaultdict

import numpy as np
import pytest
import torch

from lightgcn_pyg.data.splits import (
    carve_validation,
    check_ratio,
    leave_last_out_mask,
    ratio_holdout_mask,
)


def random_users(seed, num=200, num_users=15):
    return np.random.default_rng(seed).integers(0, num_users, num)


@pytest.mark.parametrize("ratio", [0.1, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("seed", [0, 1])
def test_ratio_holdout_counts_match_per_user_loop(ratio, seed):
    user = random_users(seed)
    mask = ratio_holdout_mask(user, ratio, seed=seed)
    assert mask.dtype == bool and mask.shape == user.shape
    for u in np.unique(user):
        n = int((user == u).sum())
        expected = min(math.floor(n * ratio + 0.5), n - 1)
        assert int(mask[user == u].sum()) == expected, (u, n)


def test_ratio_holdout_is_seeded():
    user = random_users(3)
    a, b = ratio_holdout_mask(user, 0.3, seed=7), ratio_holdout_mask(user, 0.3, seed=7)
    c = ratio_holdout_mask(user, 0.3, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # PCG64 is platform-stable: default_rng(0).random(6) = [.637, .270, .041, .017, .813, .913],
    # so each user's rows with the smallest keys are held out.
    assert ratio_holdout_mask(np.array([0, 0, 0, 0, 1, 1]), 0.5, seed=0).tolist() == [
        False, False, True, True, True, False,
    ]  # fmt: skip


def test_single_interaction_users_are_never_held_out():
    user = np.array([0, 1, 1, 2, 3, 3, 3])
    mask = ratio_holdout_mask(user, 0.9, seed=0)
    assert not mask[0] and not mask[3]
    assert mask[1:3].sum() == 1 and mask[4:].sum() == 2


def test_leave_last_out_matches_reference():
    rng = np.random.default_rng(0)
    user = rng.integers(0, 6, 60)
    time = rng.integers(0, 5, 60)  # many ties
    mask = leave_last_out_mask(user, time)
    expected = np.zeros(60, dtype=bool)
    rows = defaultdict(list)
    for pos, (u, t) in enumerate(zip(user, time)):
        rows[u].append((t, pos))
    for entries in rows.values():
        if len(entries) > 1:
            expected[max(entries)[1]] = True  # latest time, ties: latest position
    assert np.array_equal(mask, expected)


def test_leave_last_out_single_and_shape_error():
    assert leave_last_out_mask(np.array([5]), np.array([1.0])).tolist() == [False]
    with pytest.raises(ValueError, match="'timestamp' must have the shape"):
        leave_last_out_mask(np.array([0, 1]), np.array([1]))


def test_carve_validation_partitions_per_user():
    user = torch.from_numpy(np.sort(random_users(1, num=120, num_users=10)))
    edge_index = torch.stack([user, torch.arange(120)])
    train, val = carve_validation(edge_index, 0.25, seed=3)
    assert train.size(1) + val.size(1) == 120
    assert set(train[1].tolist()).isdisjoint(val[1].tolist())
    for u in user.unique().tolist():
        n = int((user == u).sum())
        assert int((val[0] == u).sum()) == min(math.floor(n * 0.25 + 0.5), n - 1)
    again = carve_validation(edge_index, 0.25, seed=3)
    assert torch.equal(train, again[0]) and torch.equal(val, again[1])


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, None, True, "0.2"])
def test_check_ratio_rejects(value):
    with pytest.raises(ValueError, match=r"'val_ratio' must be a number in \(0, 1\) in 'f'"):
        check_ratio(value, "val_ratio", "f")


def test_check_ratio_allow_zero():
    check_ratio(0.0, "r", "f", allow_zero=True)
    check_ratio(0.5, "r", "f")
