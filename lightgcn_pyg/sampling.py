r"""BPR triplet sampling for LightGCN training (`"LightGCN: Simplifying and
Powering Graph Convolution Network for Recommendation"
<https://arxiv.org/abs/2002.02126>`_).

:class:`BPRSampler` turns a bipartite training edge index into epochs of
``(user, positive item, negative item)`` triplets, shaped like the triplet
mode of PyG's :class:`~torch_geometric.loader.LinkNeighborLoader`. Sampling is
fully vectorised and every epoch is a pure function of ``(seed, epoch)``.
"""

from __future__ import annotations

import math
import warnings
from typing import Iterator, NamedTuple, Tuple

import torch
from torch import Tensor

__all__ = ["BPRSampler", "TripletBatch"]

SAMPLING_MODES = ("user", "interaction")

_MASK64 = (1 << 64) - 1


class TripletBatch(NamedTuple):
    r"""A batch of BPR triplets.

    Attributes:
        src_index (torch.Tensor): User indices, shape :obj:`[B]`.
        dst_pos_index (torch.Tensor): Positive (training) item indices,
            shape :obj:`[B]`.
        dst_neg_index (torch.Tensor): Negative item indices, shape :obj:`[B]`
            if :obj:`num_neg == 1`, else :obj:`[B, num_neg]`.
    """

    src_index: Tensor
    dst_pos_index: Tensor
    dst_neg_index: Tensor


def _epoch_seed(seed: int, epoch: int) -> int:
    # SplitMix64 finaliser over (seed, epoch): nearby (seed, epoch) pairs give
    # unrelated generator states and no two small pairs collide.
    z = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 1  # torch seeds must fit a signed 64-bit integer


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"'{name}' must be {what} in 'BPRSampler' (got {value!r})")
    return value


def _group_index(count: Tensor, total: int) -> Tensor:
    r"""Returns :obj:`torch.arange(count.numel()).repeat_interleave(count)`
    (with :obj:`total == count.sum()`) as a scatter plus a cumulative sum, which
    avoids the per-call thread start-up of :meth:`torch.repeat_interleave` on
    the CPU (milliseconds per call on busy machines)."""
    step = torch.zeros(total + 1, dtype=torch.long)
    step.index_add_(0, count.cumsum(0)[:-1], torch.ones(count.numel() - 1, dtype=torch.long))
    return step[:total].cumsum(0)


def _nth_non_positive(
    user_index: Tensor,
    rank: Tensor,
    gap_keys: Tensor,
    rowptr: Tensor,
    num_items: int,
) -> Tensor:
    r"""Maps :obj:`rank[i]` to the :obj:`rank[i]`-th item (0-based, ascending)
    that is *not* a training positive of :obj:`user_index[i]`.

    With the user's sorted positives :math:`p_0 < \dots < p_{d-1}`, the value
    :math:`q_j = p_j - j` counts the non-positives below :math:`p_j`, so the
    :math:`r`-th non-positive is :math:`r + |\{j : q_j \leq r\}|`.
    :obj:`gap_keys` holds :math:`u \cdot N + q_j` for every positive, sorted.
    """
    queries = user_index * num_items + rank
    num_below = torch.searchsorted(gap_keys, queries, right=True) - rowptr[user_index]
    return rank + num_below


class BPRSampler:
    r"""Samples epochs of BPR triplets ``(user, positive item, negative item)``
    from a bipartite training edge index, following the official LightGCN
    protocol (`"LightGCN: Simplifying and Powering Graph Convolution Network
    for Recommendation" <https://arxiv.org/abs/2002.02126>`_).

    One epoch holds as many triplets as there are (unique) training
    interactions :math:`E`. Positives are drawn according to :obj:`mode`:

    * :obj:`"user"` (official LightGCN): a user uniformly among users with at
      least one training item, then one of its training items uniformly, i.e.

      .. math::
          P(u, i) = \frac{1}{|\mathcal{U}^+|} \cdot \frac{1}{|\mathcal{N}_u|}.

    * :obj:`"interaction"`: every training interaction exactly once, in a
      random order.

    Negatives are uniform over the items the user has *not* interacted with
    in training. Instead of rejection sampling they are drawn exactly: a rank
    :math:`r \sim \mathcal{U}\{0, \dots, N - |\mathcal{N}_u| - 1\}` is mapped to
    the :math:`r`-th non-positive item with one :meth:`torch.searchsorted`
    over the sorted positives, which is the same distribution as rejection
    sampling but terminates in one pass even for users with nearly all items.
    A user who interacted with *every* item has no valid negative: such users
    (and their interactions) are skipped with a single warning.

    Every epoch is a pure function of :obj:`(seed, epoch)` computed with a
    private :class:`torch.Generator` (the global RNG is never touched), so
    resuming at epoch :math:`e` via :meth:`set_epoch` reproduces the same
    batches. As with :class:`torch.utils.data.DistributedSampler`, iteration
    does **not** advance the epoch: call :meth:`set_epoch` before each epoch.

    For distributed training all ranks draw the same global epoch; global
    batch :math:`i` (of :obj:`batch_size` triplets) is cut into
    :obj:`world_size` contiguous parts of :obj:`batch_size // world_size` and
    rank :math:`r` receives part :math:`r`, so the union over ranks is exactly
    the single-process epoch. A final partial global batch of :math:`L`
    triplets is dropped if :obj:`drop_last=True`, else split as evenly as
    possible (the first :math:`L \bmod` :obj:`world_size` ranks get one
    triplet more); if :math:`L <` :obj:`world_size`, some ranks receive an
    empty final batch. All ranks yield the same number of batches.

    Batches are CPU :obj:`torch.long` tensors (sampling runs on the CPU for
    device-independent reproducibility); move them with :obj:`.to(device)`.

    Args:
        edge_index (torch.Tensor): Bipartite training edge index of shape
            :obj:`[2, E]`, row 0 user indices in :obj:`[0, num_users)`, row 1
            item indices in :obj:`[0, num_items)`. Duplicate interactions are
            counted once.
        num_users (int): The number of users.
        num_items (int): The number of items.
        batch_size (int, optional): Global number of triplets per batch.
            (default: :obj:`2048`)
        mode (str, optional): Positive sampling mode, :obj:`"user"` or
            :obj:`"interaction"`. (default: :obj:`"user"`)
        num_neg (int, optional): Negatives per triplet. (default: :obj:`1`)
        seed (int, optional): Base random seed. (default: :obj:`0`)
        drop_last (bool, optional): If set to :obj:`True`, drops the final
            partial batch. (default: :obj:`False`)
        rank (int, optional): This process' rank. (default: :obj:`0`)
        world_size (int, optional): Number of processes; must divide
            :obj:`batch_size`. (default: :obj:`1`)

    Shapes:
        - **input:** edge index :math:`(2, E)`
        - **output:** :class:`TripletBatch` with user and positive indices
          :math:`(B)` and negative indices :math:`(B)` or
          :math:`(B, \text{num\_neg})`, where :math:`B \le`
          :obj:`batch_size // world_size`
    """

    def __init__(
        self,
        edge_index: Tensor,
        num_users: int,
        num_items: int,
        batch_size: int = 2048,
        mode: str = "user",
        num_neg: int = 1,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.num_users = _check_int(num_users, "num_users", 1)
        self.num_items = _check_int(num_items, "num_items", 1)
        self.batch_size = _check_int(batch_size, "batch_size", 1)
        self.num_neg = _check_int(num_neg, "num_neg", 1)
        self.seed = _check_int(seed, "seed", 0)
        self.world_size = _check_int(world_size, "world_size", 1)
        self.rank = _check_int(rank, "rank", 0)
        if mode not in SAMPLING_MODES:
            raise ValueError(
                f"'mode' must be one of {SAMPLING_MODES} in 'BPRSampler' (got {mode!r})"
            )
        if self.rank >= self.world_size:
            raise ValueError(
                f"'rank' must be smaller than 'world_size' ({self.world_size}) in "
                f"'BPRSampler' (got {rank})"
            )
        if self.batch_size % self.world_size != 0:
            raise ValueError(
                f"'batch_size' must be divisible by 'world_size' ({self.world_size}) in "
                f"'BPRSampler' (got {batch_size})"
            )
        self.mode = mode
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self._build_index(edge_index)

    def _build_index(self, edge_index: Tensor) -> None:
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index)
            raise ValueError(f"'edge_index' must have shape [2, E] in 'BPRSampler' (got {shape})")
        if (
            edge_index.is_floating_point()
            or edge_index.is_complex()
            or edge_index.dtype == torch.bool
        ):
            raise ValueError(
                f"'edge_index' must be an integer tensor in 'BPRSampler' (got {edge_index.dtype})"
            )
        if edge_index.size(1) == 0:
            raise ValueError("'edge_index' must contain at least one edge in 'BPRSampler' (got 0)")
        edge_index = edge_index.detach().to("cpu", torch.long)
        for row, name, bound in ((0, "user", self.num_users), (1, "item", self.num_items)):
            lo, hi = int(edge_index[row].min()), int(edge_index[row].max())
            if lo < 0 or hi >= bound:
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"'edge_index' contains {name} indices outside [0, {bound}) in "
                    f"'BPRSampler' (got {bad})"
                )

        # Sorted unique keys user * num_items + item give CSR order with the
        # columns of each row sorted, and drop duplicate interactions.
        keys = torch.unique(edge_index[0] * self.num_items + edge_index[1])
        user, item = keys // self.num_items, keys % self.num_items
        deg = torch.bincount(user, minlength=self.num_users)

        full = deg >= self.num_items
        self.num_skipped_users = int(full.sum())
        if self.num_skipped_users > 0:
            warnings.warn(
                f"{self.num_skipped_users} user(s) interacted with all {self.num_items} items "
                f"and have no valid negative item; 'BPRSampler' skips them",
                stacklevel=3,
            )
            keep = ~full[user]
            user, item = user[keep], item[keep]
            deg = deg.masked_fill(full, 0)
            if user.numel() == 0:
                raise ValueError(
                    "'edge_index' has no user with a valid negative item in 'BPRSampler' "
                    f"(each of the {self.num_skipped_users} users with interactions holds "
                    f"all {self.num_items} items)"
                )

        rowptr = torch.zeros(self.num_users + 1, dtype=torch.long)
        torch.cumsum(deg, dim=0, out=rowptr[1:])
        position = torch.arange(user.numel()) - rowptr[user]
        self._user = user
        self._item = item
        self._deg = deg
        self._rowptr = rowptr
        self._active_users = deg.nonzero().view(-1)
        self._gap_keys = user * self.num_items + (item - position)

    @property
    def num_samples(self) -> int:
        r"""Number of triplets in one global epoch (training interactions of
        the users that are not skipped)."""
        return self._user.numel()

    def set_epoch(self, epoch: int) -> None:
        r"""Sets the epoch whose triplets the next iteration yields.

        Args:
            epoch (int): The epoch number.
        """
        self.epoch = _check_int(epoch, "epoch", 0)

    def sample_epoch(self, epoch: int) -> Tuple[Tensor, Tensor, Tensor]:
        r"""Samples the whole global epoch :obj:`epoch` (identical on all ranks).

        Args:
            epoch (int): The epoch number.

        Returns:
            (torch.Tensor, torch.Tensor, torch.Tensor): User indices
            :obj:`[E]`, positive item indices :obj:`[E]` and negative item
            indices :obj:`[E]` (or :obj:`[E, num_neg]`).
        """
        epoch = _check_int(epoch, "epoch", 0)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(_epoch_seed(self.seed, epoch))
        num_samples = self.num_samples

        # Triplets are drawn grouped by user (so the negative search below walks
        # the sorted positives almost sequentially, several times faster than
        # random queries) and shuffled at the end. Given the user multiset, the
        # shuffled sequence has the same law as drawing every row independently.
        if self.mode == "user":
            pick = torch.randint(self._active_users.numel(), (num_samples,), generator=gen)
            count = torch.bincount(pick, minlength=self._active_users.numel())
            user_index = self._active_users[_group_index(count, num_samples)]
            deg = self._deg[user_index]
            offset = (torch.rand(num_samples, generator=gen, dtype=torch.float64) * deg).long()
            offset = torch.minimum(offset, deg - 1)
            pos_item_index = self._item[self._rowptr[user_index] + offset]
        else:
            user_index, pos_item_index = self._user, self._item

        neg_user = user_index
        if self.num_neg > 1:
            neg_user = user_index.view(-1, 1).expand(-1, self.num_neg).reshape(-1)
        num_free = self.num_items - self._deg[neg_user]
        uniform = torch.rand(neg_user.numel(), generator=gen, dtype=torch.float64)
        neg_rank = torch.minimum((uniform * num_free).long(), num_free - 1)
        neg_item_index = _nth_non_positive(
            neg_user, neg_rank, self._gap_keys, self._rowptr, self.num_items
        )
        if self.num_neg > 1:
            neg_item_index = neg_item_index.view(-1, self.num_neg)

        perm = torch.randperm(num_samples, generator=gen)
        user_index, pos_item_index = user_index[perm], pos_item_index[perm]
        neg_item_index = neg_item_index[perm]
        return user_index, pos_item_index, neg_item_index

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def _rank_slice(self, batch: int) -> Tuple[int, int]:
        start = batch * self.batch_size
        size = min(self.batch_size, self.num_samples - start)
        part, extra = divmod(size, self.world_size)
        begin = start + self.rank * part + min(self.rank, extra)
        return begin, begin + part + int(self.rank < extra)

    def __iter__(self) -> Iterator[TripletBatch]:
        user_index, pos_item_index, neg_item_index = self.sample_epoch(self.epoch)
        for batch in range(len(self)):
            begin, end = self._rank_slice(batch)
            yield TripletBatch(
                user_index[begin:end], pos_item_index[begin:end], neg_item_index[begin:end]
            )

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_users={self.num_users}, "
            f"num_items={self.num_items}, num_samples={self.num_samples}, "
            f"batch_size={self.batch_size}, mode={self.mode!r}, num_neg={self.num_neg}, "
            f"rank={self.rank}, world_size={self.world_size})"
        )
