r"""The validated, id-mapped interaction set every later stage reads from."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from lightgcn_pyg.data.csr import to_csr
from lightgcn_pyg.data.report import LoadReport
from lightgcn_pyg.data.splits import carve_validation

__all__ = ["InteractionSet", "LoadReport", "USER", "ITEM", "EDGE_TYPE", "REV_EDGE_TYPE"]

#: Node and edge types of :meth:`InteractionSet.to_hetero_data`.
USER = "user"
ITEM = "item"
EDGE_TYPE = (USER, "interacts", ITEM)
REV_EDGE_TYPE = (ITEM, "rev_interacts", USER)

#: Version of the :meth:`InteractionSet.state_dict` layout.
STATE_VERSION = 1
_REQUIRED_KEYS = {
    "format_version", "num_users", "num_items", "train_edge_index", "test_edge_index",
    "user_ids", "item_ids", "user_ids_identity", "item_ids_identity", "report",
}  # fmt: skip
_OPTIONAL_KEYS = {"val_edge_index", "name"}
_SPLITS = ("train", "val", "test")


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(
            f"'{name}' must be a non-negative integer in 'InteractionSet' (got {value!r})"
        )
    return int(value)


def _canonical_edges(edge_index: Any, name: str, num_users: int, num_items: int) -> Tensor:
    r"""Validates a bipartite edge index; returns it as a CPU long tensor of unique pairs sorted
    by :obj:`(user, item)`."""
    if not isinstance(edge_index, Tensor):
        raise ValueError(
            f"'{name}' must be a tensor in 'InteractionSet' (got {type(edge_index).__name__})"
        )
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(
            f"'{name}' must have shape [2, E] in 'InteractionSet' (got {list(edge_index.shape)})"
        )
    if edge_index.is_floating_point() or edge_index.is_complex() or edge_index.dtype == torch.bool:
        raise ValueError(
            f"'{name}' must hold integers in 'InteractionSet' (got {edge_index.dtype})"
        )
    edge_index = edge_index.detach().long().cpu()
    if edge_index.size(1) == 0:
        return edge_index.contiguous()
    user, item = edge_index.numpy()
    for index, bound, kind in ((user, num_users, "user"), (item, num_items, "item")):
        low, high = int(index.min()), int(index.max())
        if low < 0 or high >= bound:
            raise ValueError(
                f"{kind} indices of '{name}' must lie in [0, {bound}) in 'InteractionSet' "
                f"(got {low if low < 0 else high})"
            )
    increasing = (user[1:] > user[:-1]) | ((user[1:] == user[:-1]) & (item[1:] > item[:-1]))
    if increasing.all():
        return edge_index.contiguous()
    order = np.lexsort((item, user))
    user, item = user[order], item[order]
    keep = np.ones(user.shape[0], dtype=bool)
    keep[1:] = (user[1:] != user[:-1]) | (item[1:] != item[:-1])
    return torch.from_numpy(np.stack([user[keep], item[keep]]))


def _check_ids(ids: Any, num: int, name: str) -> Optional[np.ndarray]:
    r"""Validates an index -> raw id map; returns :obj:`None` for the identity map."""
    if ids is None:
        return None
    array = np.asarray(ids)
    if array.ndim != 1 or array.shape[0] != num:
        raise ValueError(
            f"'{name}' must hold one raw id per index ({num}) in 'InteractionSet' "
            f"(got shape {list(array.shape)})"
        )
    if array.dtype.kind in "iu":
        array = array.astype(np.int64)
        if np.array_equal(array, np.arange(num)):
            return None
    else:
        array = np.asarray(ids, dtype=object)
        kind = pd.api.types.infer_dtype(array, skipna=False)
        if kind not in ("string", "empty"):
            raise ValueError(
                f"'{name}' must hold only integers or only strings in 'InteractionSet' "
                f"(got {kind} values)"
            )
    if not pd.Index(array).is_unique:
        dup = array[pd.Index(array).duplicated()].tolist()[0]
        raise ValueError(
            f"'{name}' must hold unique raw ids in 'InteractionSet' (got {dup!r} twice)"
        )
    return array


class InteractionSet:
    r"""A validated user-item interaction set of the LightGCN pipeline (He et al., SIGIR 2020,
    `arXiv:2002.02126 <https://arxiv.org/abs/2002.02126>`_): contiguous user and item indices,
    the raw id maps, and train / optional validation / test splits.

    Every split is a bipartite edge index: a :obj:`torch.long` tensor of shape :obj:`[2, E]`
    with user indices in row 0 and item indices in row 1, unique pairs sorted by
    :obj:`(user, item)`, kept on the CPU (move it with :obj:`.to(device)` where needed).
    Construction validates the inputs and sorts and de-duplicates the pairs; the readers in
    :mod:`lightgcn_pyg.data.readers` build instances from files and count what they cleaned in
    :attr:`report`.

    Args:
        num_users (int): Number of users; user indices are :obj:`0..num_users - 1`.
        num_items (int): Number of items; item indices are :obj:`0..num_items - 1`.
        train_edge_index (torch.Tensor): Training pairs, shape :obj:`[2, E_train]`.
        test_edge_index (torch.Tensor, optional): Test pairs, shape :obj:`[2, E_test]`; empty if
            :obj:`None`. (default: :obj:`None`)
        val_edge_index (torch.Tensor, optional): Validation pairs, shape :obj:`[2, E_val]`.
            (default: :obj:`None`)
        user_ids (sequence, optional): Raw id of each user index, all integers or all strings,
            unique. :obj:`None` means raw id == index (the LightGCN text format), stored without
            materialising the map. (default: :obj:`None`)
        item_ids (sequence, optional): Raw id of each item index, as :obj:`user_ids`.
            (default: :obj:`None`)
        report (LoadReport, optional): What loading did. (default: :obj:`None`, all zeros)
        name (str, optional): Dataset name, e.g. :obj:`"gowalla"`. (default: :obj:`None`)
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        train_edge_index: Tensor,
        test_edge_index: Optional[Tensor] = None,
        val_edge_index: Optional[Tensor] = None,
        *,
        user_ids: Optional[Sequence[Union[int, str]]] = None,
        item_ids: Optional[Sequence[Union[int, str]]] = None,
        report: Optional[LoadReport] = None,
        name: Optional[str] = None,
    ) -> None:
        self.num_users = _check_count(num_users, "num_users")
        self.num_items = _check_count(num_items, "num_items")
        if test_edge_index is None:
            test_edge_index = torch.empty(2, 0, dtype=torch.long)
        args = (self.num_users, self.num_items)
        self.train_edge_index = _canonical_edges(train_edge_index, "train_edge_index", *args)
        self.test_edge_index = _canonical_edges(test_edge_index, "test_edge_index", *args)
        self.val_edge_index = (
            None
            if val_edge_index is None
            else _canonical_edges(val_edge_index, "val_edge_index", *args)
        )
        self._user_ids = _check_ids(user_ids, self.num_users, "user_ids")
        self._item_ids = _check_ids(item_ids, self.num_items, "item_ids")
        self._user_lookup: Optional[pd.Index] = None
        self._item_lookup: Optional[pd.Index] = None
        if report is not None and not isinstance(report, LoadReport):
            raise ValueError(
                f"'report' must be a 'LoadReport' in 'InteractionSet' (got {type(report).__name__})"
            )
        self.report = report if report is not None else LoadReport()
        if name is not None and not isinstance(name, str):
            raise ValueError(f"'name' must be a string in 'InteractionSet' (got {name!r})")
        self.name = name

    # Sizes ------------------------------------------------------------------------------------
    @property
    def num_train(self) -> int:
        r"""Number of training pairs."""
        return self.train_edge_index.size(1)

    @property
    def num_test(self) -> int:
        r"""Number of test pairs."""
        return self.test_edge_index.size(1)

    @property
    def num_val(self) -> int:
        r"""Number of validation pairs (:obj:`0` without a validation split)."""
        return 0 if self.val_edge_index is None else self.val_edge_index.size(1)

    @property
    def density(self) -> float:
        r"""All pairs (train + validation + test) over :obj:`num_users * num_items`."""
        cells = self.num_users * self.num_items
        return (self.num_train + self.num_val + self.num_test) / cells if cells else 0.0

    # Id maps ----------------------------------------------------------------------------------
    @property
    def user_ids(self) -> np.ndarray:
        r"""Raw id of each user index (:obj:`numpy.arange` for the identity map)."""
        return np.arange(self.num_users) if self._user_ids is None else self._user_ids

    @property
    def item_ids(self) -> np.ndarray:
        r"""Raw id of each item index (:obj:`numpy.arange` for the identity map)."""
        return np.arange(self.num_items) if self._item_ids is None else self._item_ids

    def user_index(
        self, raw_ids: Sequence[Union[int, str]], *, where: Optional[str] = None
    ) -> Tensor:
        r"""Maps raw user ids to user indices. An unknown id raises :class:`ValueError` naming it
        (and :obj:`where` it came from, e.g. a file name, if given)."""
        return self._lookup(raw_ids, "user", where)

    def item_index(
        self, raw_ids: Sequence[Union[int, str]], *, where: Optional[str] = None
    ) -> Tensor:
        r"""Maps raw item ids to item indices. An unknown id raises :class:`ValueError` naming it
        (and :obj:`where` it came from, if given)."""
        return self._lookup(raw_ids, "item", where)

    def _lookup(
        self, raw_ids: Sequence[Union[int, str]], kind: str, where: Optional[str]
    ) -> Tensor:
        ids = self._user_ids if kind == "user" else self._item_ids
        num = self.num_users if kind == "user" else self.num_items
        if isinstance(raw_ids, Tensor):
            raw_ids = raw_ids.detach().cpu().numpy()
        query = np.atleast_1d(np.asarray(raw_ids))
        if query.size == 0:
            return torch.empty(0, dtype=torch.long)
        if ids is None:
            if query.dtype.kind in "iu":
                index = query.astype(np.int64)
                bad = (index < 0) | (index >= num)
            else:
                index = np.zeros(query.shape, dtype=np.int64)
                bad = np.ones(query.shape, dtype=bool)
        else:
            if ids.dtype.kind not in "iu" and query.dtype.kind in "iu":
                query = query.astype(str)  # string ids read back as numbers from a table
            attr = f"_{kind}_lookup"
            if getattr(self, attr) is None:
                setattr(self, attr, pd.Index(ids))
            index = getattr(self, attr).get_indexer(query)
            bad = index < 0
        if bad.any():
            source = f"'InteractionSet.{kind}_index'" if where is None else where
            raise ValueError(
                f"Unknown {kind} id {query.tolist()[int(np.argmax(bad))]!r} in {source} "
                f"(not among the {num} {kind}s of the interaction set)"
            )
        return torch.from_numpy(np.asarray(index, dtype=np.int64))

    # Graph views ------------------------------------------------------------------------------
    def edge_index(self, split: str = "train") -> Tensor:
        r"""Returns the bipartite edge index of :obj:`split` (:obj:`"train"`, :obj:`"val"` or
        :obj:`"test"`)."""
        if split not in _SPLITS:
            raise ValueError(
                f"'split' must be one of {list(_SPLITS)} in 'InteractionSet' (got {split!r})"
            )
        if split == "val" and self.val_edge_index is None:
            raise ValueError(
                "'split' is 'val' but this 'InteractionSet' has no validation split "
                "(use 'with_validation(val_ratio)')"
            )
        return {"train": self.train_edge_index, "val": self.val_edge_index}.get(
            split, self.test_edge_index
        )

    def bipartite_edge_index(self, split: str = "train") -> Tensor:
        r"""Returns the bipartite edge index of :obj:`split`, shape :obj:`[2, E]`: user indices in
        row 0, item indices in row 1."""
        return self.edge_index(split)

    def homogeneous_edge_index(self, split: str = "train") -> Tensor:
        r"""Returns the edge index of :obj:`split` on one node set, items offset by
        :obj:`num_users`, with both directions: shape :obj:`[2, 2E]`, user -> item edges first,
        then the same edges reversed."""
        user, item = self.edge_index(split)
        item = item + self.num_users
        return torch.cat([torch.stack([user, item]), torch.stack([item, user])], dim=1)

    def csr(self, split: str = "train") -> Tuple[Tensor, Tensor]:
        r"""Returns :func:`~lightgcn_pyg.data.csr.to_csr` of :obj:`split`: :obj:`rowptr` of shape
        :obj:`[num_users + 1]` and :obj:`col` of shape :obj:`[E]`, items sorted per user."""
        return to_csr(self.edge_index(split), self.num_users)

    def to_hetero_data(self) -> HeteroData:
        r"""Converts to a :class:`~torch_geometric.data.HeteroData` graph of the training pairs.

        Node types :obj:`"user"` and :obj:`"item"` get :obj:`num_nodes`. The edge type
        :obj:`("user", "interacts", "item")` holds the training pairs as :obj:`edge_index` and
        :obj:`("item", "rev_interacts", "user")` their reverse. The held-out pairs are stored on
        :obj:`("user", "interacts", "item")` as :obj:`test_edge_label_index` (always) and
        :obj:`val_edge_label_index` (only with a validation split), bipartite like
        :obj:`edge_index`.
        """
        data = HeteroData()
        data[USER].num_nodes = self.num_users
        data[ITEM].num_nodes = self.num_items
        data[EDGE_TYPE].edge_index = self.train_edge_index
        data[REV_EDGE_TYPE].edge_index = self.train_edge_index.flip(0)
        data[EDGE_TYPE].test_edge_label_index = self.test_edge_index
        if self.val_edge_index is not None:
            data[EDGE_TYPE].val_edge_label_index = self.val_edge_index
        return data

    # Splits -----------------------------------------------------------------------------------
    def with_validation(self, val_ratio: float, seed: int = 0) -> InteractionSet:
        r"""Returns a copy whose validation split is a random :obj:`val_ratio` share of each
        user's training pairs (seeded; users keep at least one training pair), so that early
        stopping need not look at the test split.

        Args:
            val_ratio (float): Share of each user's training pairs to move, in :math:`(0, 1)`.
            seed (int, optional): Seed of the random choice. (default: :obj:`0`)
        """
        if self.val_edge_index is not None:
            raise ValueError("'InteractionSet' already has a validation split in 'with_validation'")
        train, val = carve_validation(self.train_edge_index, val_ratio, seed)
        report = copy.copy(self.report)
        report.val_carved = val.size(1)
        return InteractionSet(
            self.num_users, self.num_items, train, self.test_edge_index, val,
            user_ids=self._user_ids, item_ids=self._item_ids, report=report, name=self.name,
        )  # fmt: skip

    # Persistence ------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        r"""Returns the set as tensors, Python numbers, strings and lists / dicts of those, so it
        loads with :obj:`torch.load(..., weights_only=True)`."""
        state: Dict[str, Any] = {
            "format_version": STATE_VERSION,
            "num_users": self.num_users,
            "num_items": self.num_items,
            "train_edge_index": self.train_edge_index.clone(),
            "test_edge_index": self.test_edge_index.clone(),
            "user_ids_identity": self._user_ids is None,
            "item_ids_identity": self._item_ids is None,
            "user_ids": [] if self._user_ids is None else self._user_ids.tolist(),
            "item_ids": [] if self._item_ids is None else self._item_ids.tolist(),
            "report": self.report.to_dict(),
        }
        if self.val_edge_index is not None:
            state["val_edge_index"] = self.val_edge_index.clone()
        if self.name is not None:
            state["name"] = self.name
        return state

    @classmethod
    def from_state_dict(cls, state: Dict[str, Any]) -> InteractionSet:
        r"""Rebuilds a set from :meth:`state_dict`; missing, unknown or bad entries raise
        :class:`ValueError`."""
        if not isinstance(state, dict):
            raise ValueError(
                f"'state' must be a dict in 'InteractionSet.from_state_dict' "
                f"(got {type(state).__name__})"
            )
        missing = sorted(_REQUIRED_KEYS - set(state))
        unknown = sorted(set(state) - _REQUIRED_KEYS - _OPTIONAL_KEYS)
        if missing or unknown:
            raise ValueError(
                "Bad keys in 'InteractionSet.from_state_dict' "
                f"(missing {missing}, unknown {unknown})"
            )
        if state["format_version"] != STATE_VERSION:
            raise ValueError(
                f"'format_version' must be {STATE_VERSION} in 'InteractionSet.from_state_dict' "
                f"(got {state['format_version']!r})"
            )
        ids = {}
        for kind in ("user", "item"):
            identity, raw = state[f"{kind}_ids_identity"], state[f"{kind}_ids"]
            if not isinstance(identity, bool) or not isinstance(raw, list):
                raise ValueError(
                    f"'{kind}_ids_identity' must be a bool and '{kind}_ids' a list in "
                    f"'InteractionSet.from_state_dict' (got {identity!r}, {type(raw).__name__})"
                )
            if identity and raw:
                raise ValueError(
                    f"'{kind}_ids' must be empty when '{kind}_ids_identity' is set in "
                    f"'InteractionSet.from_state_dict' (got {len(raw)} ids)"
                )
            ids[kind] = None if identity else raw
        return cls(
            state["num_users"], state["num_items"], state["train_edge_index"],
            state["test_edge_index"], state.get("val_edge_index"),
            user_ids=ids["user"], item_ids=ids["item"],
            report=LoadReport.from_dict(state["report"]), name=state.get("name"),
        )  # fmt: skip

    def save(self, path: Union[str, os.PathLike]) -> None:
        r"""Saves :meth:`state_dict` to :obj:`path` with :func:`torch.save`."""
        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> InteractionSet:
        r"""Loads a set saved by :meth:`save` (with :obj:`weights_only=True`); a file that is not
        such a set raises :class:`ValueError` naming it."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as exc:  # torch raises several types for a corrupt file
            raise ValueError(f"Could not load an 'InteractionSet' from '{path}': {exc}") from exc
        try:
            return cls.from_state_dict(state)
        except ValueError as exc:
            raise ValueError(f"Bad 'InteractionSet' file '{path}': {exc}") from exc

    def fingerprint(self) -> str:
        r"""Returns a short, stable hash (16 hex digits) of :obj:`num_users`, :obj:`num_items` and
        the raw id maps. It ignores the splits, so carving a validation split keeps it; a
        checkpoint stores it to detect that it is being used with another dataset."""
        digest = hashlib.sha256(b"lightgcn_pyg.InteractionSet/1")
        digest.update(f"{self.num_users}:{self.num_items}".encode())
        for ids in (self._user_ids, self._item_ids):
            if ids is None:
                digest.update(b"|identity")
            elif ids.dtype.kind in "iu":
                digest.update(b"|int:" + ids.astype("<i8").tobytes())
            else:
                digest.update(b"|str:" + json.dumps(ids.tolist()).encode())
        return digest.hexdigest()[:16]

    def splits_fingerprint(self) -> str:
        r"""Returns a short, stable hash of the train / validation / test pairs (which
        :meth:`fingerprint` ignores): resuming a run with other pairs is refused with it."""
        digest = hashlib.sha256(b"lightgcn_pyg.splits/1")
        for edges in (self.train_edge_index, self.val_edge_index, self.test_edge_index):
            if edges is None:
                digest.update(b"|none")
            else:
                digest.update(f"|{tuple(edges.shape)}:".encode())
                digest.update(edges.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def summary(self) -> Dict[str, Union[int, float, str, None]]:
        r"""Returns sizes, density, the :class:`LoadReport` counts and the fingerprint as a flat
        dict: the object :obj:`lightgcn data info --json` prints."""
        return {
            "name": self.name,
            "num_users": self.num_users,
            "num_items": self.num_items,
            "num_train": self.num_train,
            "num_val": self.num_val,
            "num_test": self.num_test,
            "density": self.density,
            **self.report.to_dict(),
            "fingerprint": self.fingerprint(),
        }

    def __repr__(self) -> str:
        name = "" if self.name is None else f"name={self.name!r}, "
        return (
            f"{self.__class__.__name__}({name}num_users={self.num_users}, "
            f"num_items={self.num_items}, num_train={self.num_train}, num_val={self.num_val}, "
            f"num_test={self.num_test})"
        )
