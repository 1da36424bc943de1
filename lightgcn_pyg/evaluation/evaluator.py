r"""Full-ranking evaluation of recommenders from user and item embeddings."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from tqdm import tqdm

from lightgcn_pyg.evaluation.metrics import (
    ALL_METRICS,
    compute_topk_metrics,
    validate_ks,
    validate_metrics,
)

COLD_USER_POLICIES = ("include", "exclude")
NUM_USERS = "num_users"
NUM_USERS_WITHOUT_TEST = "num_users_without_test"
NUM_COLD_USERS = "num_cold_users"
USER = "user"


@dataclass
class EvalResult:
    r"""The outcome of :meth:`Evaluator.evaluate`.

    Args:
        metrics (Dict[str, float]): Metric key (*e.g.* :obj:`"recall@20"`) to its mean
            over the evaluated users.
        num_users (int): The number of evaluated users.
        num_users_without_test (int): The number of users without any test item
            (never evaluated).
        num_cold_users (int): The number of users with test items but no training
            item, whatever the policy.
        cold_user_policy (str): How cold users were handled (:obj:`"include"` or
            :obj:`"exclude"`).
        per_user (Dict[str, torch.Tensor], optional): :obj:`"user"` to the evaluated
            user indices :obj:`[num_users]` (CPU, :obj:`int64`) plus every metric key
            to the per-user values :obj:`[num_users]` (CPU, :obj:`float64`), in the
            same order. (default: :obj:`None`)
    """

    metrics: Dict[str, float]
    num_users: int
    num_users_without_test: int
    num_cold_users: int
    cold_user_policy: str
    per_user: Optional[Dict[str, Tensor]] = field(default=None, repr=False)

    def to_dict(self) -> Dict[str, Union[float, int]]:
        r"""Returns the mean metrics plus :obj:`"num_users"`,
        :obj:`"num_users_without_test"` and :obj:`"num_cold_users"` as plain Python
        numbers (JSON-ready).
        """
        out: Dict[str, Union[float, int]] = {k: float(v) for k, v in self.metrics.items()}
        out[NUM_USERS] = int(self.num_users)
        out[NUM_USERS_WITHOUT_TEST] = int(self.num_users_without_test)
        out[NUM_COLD_USERS] = int(self.num_cold_users)
        return out

    def __getitem__(self, key: str) -> float:
        values = self.to_dict()
        if key not in values:
            raise KeyError(f"Unknown key {key!r} in 'EvalResult' (available: {', '.join(values)})")
        return values[key]

    def save_per_user(
        self,
        path: Union[str, os.PathLike],
        user_ids: Optional[Sequence] = None,
    ) -> None:
        r"""Writes the per-user metrics to a CSV file with columns
        :obj:`user,<metric keys...>`, one row per evaluated user, *e.g.* for paired
        significance tests.

        Args:
            path (str or os.PathLike): The CSV file to write.
            user_ids (Sequence, optional): Raw user ids indexed by user index; if
                given, the :obj:`user` column holds :obj:`user_ids[index]` instead of
                the index. (default: :obj:`None`)
        """
        if self.per_user is None:
            raise ValueError(
                "'per_user' is not available in 'EvalResult'; call "
                "'Evaluator.evaluate(..., per_user=True)' first"
            )
        users = self.per_user[USER].tolist()
        if user_ids is not None and users and len(user_ids) <= max(users):
            raise ValueError(
                f"'user_ids' must cover every evaluated user index in "
                f"'EvalResult.save_per_user' (got {len(user_ids)} ids, "
                f"largest user index {max(users)})"
            )
        keys = list(self.metrics)
        columns = [self.per_user[key].tolist() for key in keys]
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([USER, *keys])
            for row, user in enumerate(users):
                uid = user if user_ids is None else user_ids[user]
                writer.writerow([uid, *(column[row] for column in columns)])


def _check_edge_index(
    edge_index: Tensor,
    num_users: Optional[int],
    num_items: int,
    name: str,
    owner: str,
) -> None:
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index)
        raise ValueError(f"'{name}' must be a [2, num_edges] tensor in '{owner}' (got {shape})")
    if edge_index.dtype.is_floating_point or edge_index.dtype == torch.bool:
        raise ValueError(
            f"'{name}' must hold integer indices in '{owner}' (got {edge_index.dtype})"
        )
    for row, kind, size in ((0, "user", num_users), (1, "item", num_items)):
        if size is None:  # Only the lower bound is known.
            size = torch.iinfo(torch.long).max
        index = edge_index[row]
        bad = (index < 0) | (index >= size)
        if bool(bad.any()):
            value = int(index[bad][0])
            raise ValueError(
                f"'{name}' contains {kind} index {value} outside [0, {size}) in '{owner}'"
            )


def _check_count(value: int, name: str, owner: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"'{name}' must be a positive integer in '{owner}' (got {value!r})")


def _unique_keys(edge_index: Tensor, num_items: int) -> Tensor:
    # Sorted, de-duplicated flat keys user * num_items + item (CPU, int64).
    edge_index = edge_index.detach().to("cpu", torch.long)
    return torch.unique(edge_index[0] * num_items + edge_index[1], sorted=True)


def _contains(sorted_keys: Tensor, query: Tensor) -> Tensor:
    # Membership of every query in a non-empty sorted key tensor, by binary search.
    found = torch.searchsorted(sorted_keys, query).clamp_(max=sorted_keys.numel() - 1)
    return sorted_keys[found] == query


def popularity_scores(train_edge_index: Tensor, num_items: int) -> Tensor:
    r"""Returns the training degree of every item (the number of distinct users that
    interacted with it), the score of the popularity baseline.

    Args:
        train_edge_index (torch.Tensor): The bipartite training edge index.
        num_items (int): The number of items.

    Shapes:
        - **input:** :math:`(2, E)`
        - **output:** :math:`(|\mathcal{I}|)`, :obj:`float32`, on CPU
    """
    _check_count(num_items, "num_items", "popularity_scores")
    _check_edge_index(train_edge_index, None, num_items, "train_edge_index", "popularity_scores")
    keys = _unique_keys(train_edge_index, num_items)
    return torch.bincount(keys % num_items, minlength=num_items).to(torch.float32)


def popularity_embeddings(
    train_edge_index: Tensor,
    num_users: int,
    num_items: int,
) -> Tuple[Tensor, Tensor]:
    r"""Returns embeddings whose dot products rank items by training popularity, so
    that :meth:`Evaluator.evaluate` evaluates the popularity baseline: user
    embeddings are ones, item embeddings the item training degrees.

    Args:
        train_edge_index (torch.Tensor): The bipartite training edge index.
        num_users (int): The number of users.
        num_items (int): The number of items.

    Shapes:
        - **input:** :math:`(2, E)`
        - **output:** :math:`(|\mathcal{U}|, 1)`, :math:`(|\mathcal{I}|, 1)`
    """
    _check_count(num_users, "num_users", "popularity_embeddings")
    _check_count(num_items, "num_items", "popularity_embeddings")
    _check_edge_index(
        train_edge_index, num_users, num_items, "train_edge_index", "popularity_embeddings"
    )
    degree = popularity_scores(train_edge_index, num_items)
    return torch.ones(num_users, 1), degree.view(-1, 1)


@dataclass
class _DeviceState:
    eval_users: Tensor  # [n] evaluated users, ascending.
    num_relevant: Tensor  # [n] number of test items of every evaluated user.
    test_keys: Tensor  # Sorted user * num_items + item of all test pairs.
    mask_keys: Tensor  # Sorted position * num_items + item of the training items to mask.


class Evaluator:
    r"""Full-ranking top-:math:`K` evaluator of the LightGCN protocol
    (`"LightGCN: Simplifying and Powering Graph Convolution Network for
    Recommendation" <https://arxiv.org/abs/2002.02126>`_).

    Every user with at least one test item is scored against all items by the dot
    product of its embedding with every item embedding; the user's training items
    are set to :math:`-\infty` (test items never are, even if a pair is in both
    sets), the top-:math:`\max K` items are taken once and every metric of
    :mod:`lightgcn_pyg.evaluation.metrics` is computed at every :math:`K` from them.
    Users are scored in chunks so that at most :obj:`memory_budget_mb` of scores are
    held at once; the chunk size does not change the result.

    Ties in scores are broken by :func:`torch.topk`, which is deterministic for a
    given device and input but does not promise any particular order among equal
    scores (*e.g.* the lower item index first).

    .. note::
        Users without test items are excluded and counted. *Cold* users (test items
        but no training items) are counted and, with :obj:`cold_users="include"`,
        ranked by their embedding like every other user; with
        :obj:`cold_users="exclude"` they are dropped.

    Args:
        train_edge_index (torch.Tensor): The bipartite training edge index (row 0
            users, row 1 items); its pairs are masked out of the rankings.
        test_edge_index (torch.Tensor): The bipartite test (or validation) edge
            index, the relevant items.
        num_users (int): The number of users.
        num_items (int): The number of items.
        ks (Sequence[int], optional): The cut-offs. (default: :obj:`(20,)`)
        metrics (Sequence[str], optional): The metric names, a subset of
            :obj:`ALL_METRICS`. (default: :obj:`ALL_METRICS`)
        memory_budget_mb (float, optional): The most MiB of scores held at once;
            the chunk is :obj:`budget_bytes // (num_items * element_size)` users, at
            least one. (default: :obj:`256.0`)
        chunk_size (int, optional): If given, the number of users scored at once,
            overriding :obj:`memory_budget_mb`. (default: :obj:`None`)
        cold_users (str, optional): The policy for users with test items but no
            training item, :obj:`"include"` or :obj:`"exclude"`.
            (default: :obj:`"include"`)

    Shapes:
        - **input:** train_edge_index :math:`(2, E_{train})`, test_edge_index
          :math:`(2, E_{test})`; :meth:`evaluate` takes user embeddings
          :math:`(|\mathcal{U}|, d)` and item embeddings :math:`(|\mathcal{I}|, d)`
    """

    def __init__(
        self,
        train_edge_index: Tensor,
        test_edge_index: Tensor,
        num_users: int,
        num_items: int,
        ks: Sequence[int] = (20,),
        metrics: Sequence[str] = ALL_METRICS,
        memory_budget_mb: float = 256.0,
        chunk_size: Optional[int] = None,
        cold_users: str = "include",
    ) -> None:
        owner = "Evaluator"
        _check_count(num_users, "num_users", owner)
        _check_count(num_items, "num_items", owner)
        self.num_users = num_users
        self.num_items = num_items
        self.ks = validate_ks(ks, owner)
        if self.ks[-1] > num_items:
            raise ValueError(
                f"'ks' must not exceed 'num_items' ({num_items}) in '{owner}' (got {self.ks[-1]})"
            )
        self.metrics = validate_metrics(metrics, owner)
        if (
            isinstance(memory_budget_mb, bool)
            or not isinstance(memory_budget_mb, (int, float))
            or not memory_budget_mb > 0
        ):
            raise ValueError(
                f"'memory_budget_mb' must be a positive number in '{owner}' "
                f"(got {memory_budget_mb!r})"
            )
        self.memory_budget_mb = float(memory_budget_mb)
        if chunk_size is not None:
            _check_count(chunk_size, "chunk_size", owner)
        self.chunk_size = chunk_size
        if cold_users not in COLD_USER_POLICIES:
            raise ValueError(
                f"'cold_users' must be one of {COLD_USER_POLICIES} in '{owner}' "
                f"(got {cold_users!r})"
            )
        self.cold_users = cold_users

        _check_edge_index(train_edge_index, num_users, num_items, "train_edge_index", owner)
        _check_edge_index(test_edge_index, num_users, num_items, "test_edge_index", owner)
        if test_edge_index.size(1) == 0:
            raise ValueError(
                f"'test_edge_index' must not be empty in '{owner}' (got shape "
                f"{tuple(test_edge_index.shape)})"
            )

        train_keys = _unique_keys(train_edge_index, num_items)
        test_keys = _unique_keys(test_edge_index, num_items)
        train_user = train_keys // num_items
        train_count = torch.bincount(train_user, minlength=num_users)
        test_count = torch.bincount(test_keys // num_items, minlength=num_users)
        has_test = test_count > 0
        cold = has_test & (train_count == 0)
        self._num_users_without_test = int((~has_test).sum())
        self._num_cold_users = int(cold.sum())
        evaluated = has_test & ~cold if cold_users == "exclude" else has_test
        eval_users = evaluated.nonzero().view(-1)
        if eval_users.numel() == 0:
            raise ValueError(
                f"No user left to evaluate in '{owner}' ({self._num_cold_users} "
                f"cold users with cold_users={cold_users!r})"
            )

        # Position of every user in the evaluation order (-1: not evaluated).
        position = torch.full((num_users,), -1, dtype=torch.long)
        position[eval_users] = torch.arange(eval_users.numel())
        train_pos = position[train_user]
        # Mask training pairs of evaluated users, except pairs that are also test pairs.
        keep = (train_pos >= 0) & ~_contains(test_keys, train_keys)
        mask_pos = train_pos[keep]
        # Sorted because train keys are sorted by user and positions follow user order.
        mask_keys = mask_pos * num_items + train_keys[keep] % num_items
        mask_count = torch.bincount(mask_pos, minlength=eval_users.numel())
        self._mask_ptr = torch.cat([mask_count.new_zeros(1), mask_count.cumsum(0)])
        self._item_degree = torch.bincount(train_keys % num_items, minlength=num_items)

        self._cpu_state = _DeviceState(
            eval_users=eval_users,
            num_relevant=test_count[eval_users],
            test_keys=test_keys,
            mask_keys=mask_keys,
        )
        self._states: Dict[torch.device, _DeviceState] = {}

    @property
    def num_eval_users(self) -> int:
        r"""The number of users evaluated."""
        return int(self._cpu_state.eval_users.numel())

    @property
    def num_users_without_test(self) -> int:
        r"""The number of users without any test item (never evaluated)."""
        return self._num_users_without_test

    @property
    def num_cold_users(self) -> int:
        r"""The number of users with test items but no training item."""
        return self._num_cold_users

    @property
    def eval_users(self) -> Tensor:
        r"""The indices of the evaluated users, ascending (CPU)."""
        return self._cpu_state.eval_users

    def chunk_size_for(self, element_size: int = 4) -> int:
        r"""Returns the number of users scored at once for scores of
        :obj:`element_size` bytes.

        Args:
            element_size (int, optional): Bytes per score. (default: :obj:`4`)
        """
        if self.chunk_size is not None:
            return self.chunk_size
        budget_bytes = int(self.memory_budget_mb * 2**20)
        return max(1, budget_bytes // (self.num_items * element_size))

    def _state(self, device: torch.device) -> _DeviceState:
        # Masks and keys move to each device once and stay cached there.
        if device not in self._states:
            cpu = self._cpu_state
            self._states[device] = _DeviceState(
                eval_users=cpu.eval_users.to(device),
                num_relevant=cpu.num_relevant.to(device),
                test_keys=cpu.test_keys.to(device),
                mask_keys=cpu.mask_keys.to(device),
            )
        return self._states[device]

    def _check_embeddings(self, user_emb: Tensor, item_emb: Tensor) -> None:
        owner = "Evaluator"
        for name, emb, rows in (
            ("user_emb", user_emb, self.num_users),
            ("item_emb", item_emb, self.num_items),
        ):
            if not isinstance(emb, Tensor) or emb.dim() != 2 or emb.size(0) != rows:
                shape = tuple(emb.shape) if isinstance(emb, Tensor) else type(emb)
                raise ValueError(
                    f"'{name}' must have shape [{rows}, dim] in '{owner}' (got {shape})"
                )
            if not emb.dtype.is_floating_point:
                raise ValueError(f"'{name}' must be floating point in '{owner}' (got {emb.dtype})")
        if user_emb.size(1) != item_emb.size(1):
            raise ValueError(
                f"'user_emb' and 'item_emb' must have the same dimension in "
                f"'{owner}' (got {user_emb.size(1)} and {item_emb.size(1)})"
            )
        if user_emb.device != item_emb.device or user_emb.dtype != item_emb.dtype:
            raise ValueError(
                f"'user_emb' and 'item_emb' must share device and dtype in "
                f"'{owner}' (got {user_emb.device}/{user_emb.dtype} and "
                f"{item_emb.device}/{item_emb.dtype})"
            )

    @torch.no_grad()
    def evaluate(
        self,
        user_emb: Tensor,
        item_emb: Tensor,
        per_user: bool = False,
        progress: bool = False,
    ) -> EvalResult:
        r"""Ranks all items for every evaluated user by :obj:`user_emb @ item_emb.T`
        and computes the metrics, on the device of the embeddings.

        Args:
            user_emb (torch.Tensor): The user embeddings.
            item_emb (torch.Tensor): The item embeddings.
            per_user (bool, optional): If set to :obj:`True`, the result carries the
                per-user metrics. (default: :obj:`False`)
            progress (bool, optional): If set to :obj:`True`, shows a progress bar
                over the user chunks. (default: :obj:`False`)

        Shapes:
            - **input:** :math:`(|\mathcal{U}|, d)`, :math:`(|\mathcal{I}|, d)`
        """
        self._check_embeddings(user_emb, item_emb)
        user_emb, item_emb = user_emb.detach(), item_emb.detach()
        state = self._state(user_emb.device)
        num_items, max_k = self.num_items, self.ks[-1]
        num_eval = state.eval_users.numel()
        chunk = min(self.chunk_size_for(item_emb.element_size()), num_eval)
        buffer = torch.empty(chunk, num_items, dtype=item_emb.dtype, device=item_emb.device)
        item_emb_t = item_emb.t()

        parts: Dict[str, list] = {}
        for start in tqdm(
            range(0, num_eval, chunk),
            disable=None if progress else True,  # off on non-terminals
            desc="evaluate",
            unit="chunk",
            leave=False,
        ):
            end = min(start + chunk, num_eval)
            users = state.eval_users[start:end]
            scores = buffer[: end - start]
            torch.mm(user_emb.index_select(0, users), item_emb_t, out=scores)
            mask = state.mask_keys[int(self._mask_ptr[start]) : int(self._mask_ptr[end])]
            scores.view(-1).index_fill_(0, mask - start * num_items, float("-inf"))
            top_items = scores.topk(max_k, dim=1).indices

            query = users.view(-1, 1) * num_items + top_items
            hits = _contains(state.test_keys, query)

            values = compute_topk_metrics(
                hits, state.num_relevant[start:end], self.ks, self.metrics
            )
            for key, value in values.items():
                parts.setdefault(key, []).append(value)

        per_user_values = {key: torch.cat(chunks).cpu().double() for key, chunks in parts.items()}
        # Means in float64 over the concatenated users: independent of the chunking.
        means = {key: float(value.mean()) for key, value in per_user_values.items()}
        per_user_out = None
        if per_user:
            per_user_out = {USER: self._cpu_state.eval_users.clone(), **per_user_values}
        return EvalResult(
            metrics=means,
            num_users=num_eval,
            num_users_without_test=self._num_users_without_test,
            num_cold_users=self._num_cold_users,
            cold_user_policy=self.cold_users,
            per_user=per_user_out,
        )

    def evaluate_popularity(self, per_user: bool = False) -> EvalResult:
        r"""Evaluates the popularity baseline: items ranked by their number of
        training users, with the same masking (see :func:`popularity_embeddings`).

        Args:
            per_user (bool, optional): If set to :obj:`True`, the result carries the
                per-user metrics. (default: :obj:`False`)
        """
        user_emb = torch.ones(self.num_users, 1)
        item_emb = self._item_degree.to(torch.float32).view(-1, 1)
        return self.evaluate(user_emb, item_emb, per_user=per_user)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_users={self.num_users}, "
            f"num_items={self.num_items}, ks={list(self.ks)}, "
            f"num_eval_users={self.num_eval_users}, cold_users={self.cold_users!r})"
        )
