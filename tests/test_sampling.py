import math
import time
import warnings
from collections import Counter

import pytest
import torch

from lightgcn_pyg.sampling import BPRSampler, TripletBatch, _group_index, _nth_non_positive


def random_graph(num_users, num_items, num_edges, seed=0, empty_users=()):
    gen = torch.Generator().manual_seed(seed)
    user = torch.randint(num_users, (num_edges,), generator=gen)
    item = torch.randint(num_items, (num_edges,), generator=gen)
    keep = torch.ones(num_edges, dtype=torch.bool)
    for u in empty_users:
        keep &= user != u
    return torch.stack([user[keep], item[keep]])


def positives_of(edge_index):
    pos = {}
    for u, i in edge_index.t().tolist():
        pos.setdefault(u, set()).add(i)
    return pos


def chi2_critical(dof, z=3.29):
    # Wilson-Hilferty approximation of the chi-square quantile (z=3.29: ~0.9995).
    c = 2.0 / (9.0 * dof)
    return dof * (1.0 - c + z * math.sqrt(c)) ** 3


def chi2_stat(observed, expected):
    return sum((observed.get(k, 0) - e) ** 2 / e for k, e in expected.items())


def collect(sampler, epochs):
    src, pos, neg = zip(*(sampler.sample_epoch(e) for e in range(epochs)))
    return torch.cat(src), torch.cat(pos), torch.cat(neg)


def test_nth_non_positive_matches_naive_enumeration():
    num_users, num_items = 7, 12
    edge_index = random_graph(num_users, num_items, 40, seed=1)
    # User 6 holds every item but one, user 5 holds the first and last items.
    dense = torch.tensor([[6] * 11, [i for i in range(num_items) if i != 4]])
    edge_index = torch.cat(
        [edge_index[:, edge_index[0] < 5], dense, torch.tensor([[5, 5], [0, 11]])], 1
    )
    sampler = BPRSampler(edge_index, num_users, num_items)
    positives = positives_of(edge_index)
    users, ranks, expected = [], [], []
    for u in range(num_users):
        free = [i for i in range(num_items) if i not in positives.get(u, set())]
        for r, item in enumerate(free):
            users.append(u)
            ranks.append(r)
            expected.append(item)
    out = _nth_non_positive(
        torch.tensor(users),
        torch.tensor(ranks),
        sampler._gap_keys,
        sampler._rowptr,
        num_items,
    )
    assert out.tolist() == expected


@pytest.mark.parametrize("mode", ["user", "interaction"])
@pytest.mark.parametrize("num_neg", [1, 3])
def test_triplets_are_valid(mode, num_neg):
    num_users, num_items = 9, 15
    edge_index = random_graph(num_users, num_items, 70, seed=2, empty_users=(3,))
    positives = positives_of(edge_index)
    sampler = BPRSampler(edge_index, num_users, num_items, batch_size=8, mode=mode, num_neg=num_neg)
    for epoch in range(5):
        sampler.set_epoch(epoch)
        for batch in sampler:
            assert isinstance(batch, TripletBatch)
            assert batch.src_index.dtype == torch.long
            size = batch.src_index.numel()
            neg = batch.dst_neg_index
            assert neg.shape == ((size,) if num_neg == 1 else (size, num_neg))
            for u, i, js in zip(
                batch.src_index.tolist(),
                batch.dst_pos_index.tolist(),
                neg.view(size, -1).tolist(),
            ):
                assert i in positives[u]
                for j in js:
                    assert 0 <= j < num_items and j not in positives[u]


@pytest.mark.parametrize("num_neg", [1, 4])
def test_batch_shapes(num_neg):
    edge_index = random_graph(5, 8, 30, seed=3)
    sampler = BPRSampler(edge_index, 5, 8, batch_size=4, num_neg=num_neg)
    batch = next(iter(sampler))
    assert batch.src_index.shape == (4,)
    assert batch.dst_pos_index.shape == (4,)
    assert batch.dst_neg_index.shape == ((4,) if num_neg == 1 else (4, num_neg))


@pytest.mark.parametrize("mode", ["user", "interaction"])
@pytest.mark.parametrize("drop_last", [False, True])
def test_epoch_size_and_len(mode, drop_last):
    edge_index = random_graph(10, 20, 60, seed=4)
    num_edges = torch.unique(edge_index[0] * 20 + edge_index[1]).numel()
    sampler = BPRSampler(edge_index, 10, 20, batch_size=7, mode=mode, drop_last=drop_last)
    assert sampler.num_samples == num_edges
    sizes = [b.src_index.numel() for b in sampler]
    assert len(sizes) == len(sampler)
    if drop_last:
        assert sizes == [7] * (num_edges // 7)
    else:
        assert len(sizes) == math.ceil(num_edges / 7)
        assert sum(sizes) == num_edges
        assert sizes[:-1] == [7] * (len(sizes) - 1)
    src, pos, neg = sampler.sample_epoch(0)
    assert src.numel() == pos.numel() == neg.numel() == num_edges


def test_duplicate_interactions_count_once():
    edge_index = torch.tensor([[0, 0, 0, 1, 1], [1, 1, 2, 0, 0]])
    sampler = BPRSampler(edge_index, 2, 4, mode="interaction")
    assert sampler.num_samples == 3
    src, pos, _ = sampler.sample_epoch(0)
    assert sorted(zip(src.tolist(), pos.tolist())) == [(0, 1), (0, 2), (1, 0)]


def test_interaction_mode_visits_each_edge_once():
    edge_index = random_graph(12, 30, 100, seed=5)
    expected = sorted(set(map(tuple, edge_index.t().tolist())))
    sampler = BPRSampler(edge_index, 12, 30, mode="interaction")
    orders = []
    for epoch in range(3):
        src, pos, _ = sampler.sample_epoch(epoch)
        pairs = list(zip(src.tolist(), pos.tolist()))
        assert sorted(pairs) == expected
        orders.append(pairs)
    assert orders[0] != orders[1] != orders[2]


def test_user_mode_distribution():
    # Skewed degrees: user 0 holds 20 items, user 1 holds 1, user 4 none.
    rows = [(0, i) for i in range(20)] + [(1, 3), (2, 5), (2, 6), (3, 0), (3, 7), (3, 9)]
    edge_index = torch.tensor(rows).t()
    sampler = BPRSampler(edge_index, 5, 25, mode="user", seed=11)
    src, pos, _ = collect(sampler, 400)
    n = src.numel()
    assert n == 400 * len(rows)
    assert 4 not in src.tolist()

    user_counts = Counter(src.tolist())
    expected_users = {u: n / 4 for u in range(4)}
    assert chi2_stat(user_counts, expected_users) < chi2_critical(3)

    degree = Counter(u for u, _ in rows)
    pair_counts = Counter(zip(src.tolist(), pos.tolist()))
    expected_pairs = {(u, i): n / 4 / degree[u] for u, i in rows}
    assert set(pair_counts) == set(expected_pairs)
    assert chi2_stat(pair_counts, expected_pairs) < chi2_critical(len(rows) - 1)

    # Power check: interaction mode follows the degrees, far from uniform users.
    inter = BPRSampler(edge_index, 5, 25, mode="interaction", seed=11)
    src_inter, _, _ = collect(inter, 400)
    assert chi2_stat(Counter(src_inter.tolist()), expected_users) > 10 * chi2_critical(3)


@pytest.mark.parametrize("mode", ["user", "interaction"])
def test_negative_distribution_is_uniform_over_non_positives(mode):
    num_items = 12
    rows = [(0, i) for i in range(9)] + [(1, 0), (1, 11), (2, 5)]
    edge_index = torch.tensor(rows).t()
    positives = positives_of(edge_index)
    sampler = BPRSampler(edge_index, 3, num_items, mode=mode, num_neg=2, seed=5)
    src, _, neg = collect(sampler, 1500)
    user_counts = Counter(src.repeat_interleave(2).tolist())
    pair_counts = Counter(zip(src.repeat_interleave(2).tolist(), neg.view(-1).tolist()))
    expected = {}
    for u, count in user_counts.items():
        free = [j for j in range(num_items) if j not in positives[u]]
        for j in free:
            expected[(u, j)] = count / len(free)
    assert set(pair_counts) == set(expected)
    dof = len(expected) - len(user_counts)
    assert chi2_stat(pair_counts, expected) < chi2_critical(dof)


def test_determinism_and_set_epoch():
    edge_index = random_graph(20, 40, 150, seed=6)

    def epoch_batches(sampler, epoch):
        sampler.set_epoch(epoch)
        return [torch.cat([b.src_index, b.dst_pos_index, b.dst_neg_index]) for b in sampler]

    a = BPRSampler(edge_index, 20, 40, batch_size=16, seed=3)
    b = BPRSampler(edge_index, 20, 40, batch_size=16, seed=3)
    c = BPRSampler(edge_index, 20, 40, batch_size=16, seed=4)
    rng_state = torch.get_rng_state()
    for epoch in (0, 1, 7):
        first, second = epoch_batches(a, epoch), epoch_batches(b, epoch)
        assert all(torch.equal(x, y) for x, y in zip(first, second))
        assert not all(torch.equal(x, y) for x, y in zip(first, epoch_batches(c, epoch)))
        # Iterating twice without set_epoch repeats the epoch (DistributedSampler semantics).
        assert all(torch.equal(x, y) for x, y in zip(first, epoch_batches(a, epoch)))
        whole = torch.cat([a.sample_epoch(epoch)[i] for i in range(3)])
        assert torch.equal(torch.cat([x.view(3, -1) for x in first], dim=1).view(-1), whole)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert not torch.equal(a.sample_epoch(0)[2], a.sample_epoch(1)[2])


def test_resume_reproduces_epoch():
    edge_index = random_graph(15, 25, 90, seed=7)
    run = BPRSampler(edge_index, 15, 25, batch_size=10, seed=9)
    epochs = []
    for epoch in range(4):
        run.set_epoch(epoch)
        epochs.append([b.dst_neg_index for b in run])
    resumed = BPRSampler(edge_index, 15, 25, batch_size=10, seed=9)
    resumed.set_epoch(3)
    assert all(torch.equal(x, y) for x, y in zip(epochs[3], [b.dst_neg_index for b in resumed]))


@pytest.mark.parametrize("mode", ["user", "interaction"])
@pytest.mark.parametrize("world_size", [2, 4])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("num_edges", [64, 61, 66])
def test_sharding_union_equals_single_process(mode, world_size, drop_last, num_edges):
    # 64 edges: 4 full batches; 61: the last batch (13) splits unevenly;
    # 66: the last batch (2) leaves some ranks of 4 empty.
    edge_index = torch.stack([torch.arange(num_edges) % 8, torch.arange(num_edges) // 8])
    kwargs = dict(batch_size=16, mode=mode, num_neg=2, seed=1, drop_last=drop_last)
    single = BPRSampler(edge_index, 8, 10, **kwargs)
    single.set_epoch(2)
    single_batches = list(single)
    shards = []
    for rank in range(world_size):
        sampler = BPRSampler(edge_index, 8, 10, rank=rank, world_size=world_size, **kwargs)
        sampler.set_epoch(2)
        shards.append(list(sampler))
        assert len(sampler) == len(single) == len(shards[-1])
    for i, full in enumerate(single_batches):
        parts = [shards[rank][i] for rank in range(world_size)]
        sizes = [p.src_index.numel() for p in parts]
        if full.src_index.numel() == 16:
            assert sizes == [16 // world_size] * world_size
        else:
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
        for field in range(3):
            assert torch.equal(torch.cat([p[field] for p in parts]), full[field])


def test_user_with_all_items_is_skipped_with_one_warning():
    num_items = 6
    edge_index = torch.tensor(
        [
            [0] * num_items + [1, 1, 2] + [3] * num_items,
            list(range(num_items)) + [0, 2, 5] + list(range(num_items)),
        ]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler = BPRSampler(edge_index, 4, num_items, batch_size=2)
        for epoch in range(3):
            sampler.set_epoch(epoch)
            batches = list(sampler)
    assert len(caught) == 1
    assert "2 user(s)" in str(caught[0].message)
    assert sampler.num_skipped_users == 2
    assert sampler.num_samples == 3
    src = torch.cat([b.src_index for b in batches])
    assert set(src.tolist()) == {1, 2}

    with pytest.warns(UserWarning, match="2 user"):
        inter = BPRSampler(edge_index, 4, num_items, mode="interaction")
    src, pos, _ = inter.sample_epoch(0)
    assert sorted(zip(src.tolist(), pos.tolist())) == [(1, 0), (1, 2), (2, 5)]


def test_only_full_users_raises():
    edge_index = torch.tensor([[0, 0, 1, 1], [0, 1, 0, 1]])
    with (
        pytest.warns(UserWarning),
        pytest.raises(ValueError, match="no user with a valid negative"),
    ):
        BPRSampler(edge_index, 2, 2)


def test_dense_users_terminate_quickly():
    num_items = 2000
    missing = 1234
    dense_items = torch.tensor([i for i in range(num_items) if i != missing])
    # User 0 misses one item, user 1 holds 99% of the items, user 2 holds one.
    near = torch.arange(num_items - 20)
    edge_index = torch.cat(
        [
            torch.stack([torch.zeros_like(dense_items), dense_items]),
            torch.stack([torch.ones_like(near), near]),
            torch.tensor([[2], [7]]),
        ],
        dim=1,
    )
    sampler = BPRSampler(edge_index, 3, num_items, mode="user", num_neg=3, seed=2)
    start = time.perf_counter()
    src, _, neg = collect(sampler, 5)
    assert time.perf_counter() - start < 5.0
    neg_user0 = neg[src == 0]
    assert neg_user0.numel() > 0 and bool((neg_user0 == missing).all())
    neg_user1 = neg[src == 1]
    assert bool((neg_user1 >= num_items - 20).all())
    assert set(neg_user1.view(-1).tolist()) == set(range(num_items - 20, num_items))


def test_cpu_output_from_any_integer_dtype():
    edge_index = torch.tensor([[0, 1, 1], [2, 0, 1]], dtype=torch.int32)
    sampler = BPRSampler(edge_index, 2, 3)
    src, pos, neg = sampler.sample_epoch(0)
    assert src.dtype == pos.dtype == neg.dtype == torch.long
    assert src.device.type == "cpu"
    assert "BPRSampler(num_users=2" in repr(sampler)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(batch_size=0), "'batch_size' must be a positive integer.*got 0"),
        (dict(batch_size=-3), "'batch_size'.*got -3"),
        (dict(mode="item"), "'mode' must be one of.*got 'item'"),
        (dict(num_neg=0), "'num_neg'.*got 0"),
        (dict(world_size=0), "'world_size'.*got 0"),
        (dict(rank=2, world_size=2, batch_size=4), "'rank' must be smaller.*got 2"),
        (dict(rank=-1), "'rank'.*got -1"),
        (dict(batch_size=10, world_size=4), "'batch_size' must be divisible.*got 10"),
        (dict(num_users=0), "'num_users'.*got 0"),
        (dict(num_items=2.5), "'num_items'.*got 2.5"),
        (dict(num_users=2), "user indices outside \\[0, 2\\).*got 2"),
        (dict(num_items=3), "item indices outside \\[0, 3\\).*got 3"),
        (dict(edge_index=torch.tensor([[0, -1], [0, 1]])), "user indices.*got -1"),
        (dict(edge_index=torch.tensor([[0.0, 1.0], [0.0, 1.0]])), "integer tensor"),
        (dict(edge_index=torch.tensor([0, 1, 2])), "shape \\[2, E\\].*got \\(3,\\)"),
        (dict(edge_index=torch.empty(2, 0, dtype=torch.long)), "at least one edge"),
    ],
)
def test_invalid_arguments(kwargs, match):
    args = dict(edge_index=torch.tensor([[0, 1, 2], [0, 3, 1]]), num_users=3, num_items=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        BPRSampler(**args)


def test_invalid_epoch():
    sampler = BPRSampler(torch.tensor([[0], [0]]), 1, 2)
    with pytest.raises(ValueError, match="'epoch'.*got -1"):
        sampler.set_epoch(-1)
    with pytest.raises(ValueError, match="'epoch'.*got 1.5"):
        sampler.sample_epoch(1.5)


def test_group_index_matches_repeat_interleave():
    count = torch.tensor([0, 3, 0, 0, 1, 2, 0])
    expected = torch.arange(7).repeat_interleave(count)
    assert torch.equal(_group_index(count, 6), expected)
    assert torch.equal(_group_index(torch.tensor([4]), 4), torch.zeros(4, dtype=torch.long))
