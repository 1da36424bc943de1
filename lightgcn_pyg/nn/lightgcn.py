import math
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Embedding, Parameter

from lightgcn_pyg.nn.batch_propagation import batch_propagate, unique_rows
from lightgcn_pyg.nn.propagation import BipartiteAdjacency, _check_index

__all__ = ["LightGCN"]

_INITS = ("xavier", "normal")


class LightGCN(torch.nn.Module):
    r"""The LightGCN recommender from the `"LightGCN: Simplifying and
    Powering Graph Convolution Network for Recommendation"
    <https://arxiv.org/abs/2002.02126>`_ paper.

    Layer-0 ("ego") embeddings :math:`\mathbf{E}^{(0)}` are propagated over
    the normalised user-item graph without transformations or
    non-linearities, and the final embeddings combine all layers:

    .. math::
        \mathbf{U}^{(k+1)} = \mathbf{R} \mathbf{I}^{(k)}, \quad
        \mathbf{I}^{(k+1)} = \mathbf{R}^{\top} \mathbf{U}^{(k)}, \quad
        \mathbf{E} = \sum_{k=0}^{K} \alpha_k \mathbf{E}^{(k)},

    with :math:`\mathbf{R} = \mathbf{D}_u^{-1/2} \mathbf{A}
    \mathbf{D}_i^{-1/2}` (see :class:`~lightgcn_pyg.nn.BipartiteAdjacency`), :math:`\alpha_k =
    1 / (K + 1)` by default and the score :math:`\hat{y}_{u,i} =
    \mathbf{e}_u^{\top} \mathbf{e}_i`.

    The normalised adjacency is built once from the training
    :obj:`edge_index` and rebuilt lazily when the model changes device or
    dtype; only :obj:`edge_index` (and :obj:`edge_weight`) are stored in the
    :meth:`state_dict`, so a checkpoint alone can rebuild the model.
    :meth:`forward` with index tensors computes the last layer only at the
    requested rows, which is exact and saves two full sparse products per
    step. :meth:`embeddings` caches the propagated embeddings until any
    parameter changes.

    Args:
        num_users (int): The number of users :math:`U`.
        num_items (int): The number of items :math:`I`.
        edge_index (torch.Tensor): Training interactions
            :math:`[2, |\mathcal{E}|]`, row 0 user indices, row 1 item indices.
        embedding_dim (int, optional): The embedding size :math:`d`.
            (default: :obj:`64`)
        num_layers (int, optional): The number of layers :math:`K`; :obj:`0`
            is plain matrix factorisation. (default: :obj:`3`)
        init (str, optional): :obj:`"xavier"` (uniform, as in the paper) or
            :obj:`"normal"` (:math:`\mathcal{N}(0, \textrm{init\_std}^2)`, as
            in the official PyTorch port). (default: :obj:`"xavier"`)
        init_std (float, optional): Standard deviation of the
            :obj:`"normal"` initialisation. (default: :obj:`0.1`)
        layer_weights (Sequence[float], optional): Fixed weights
            :math:`\alpha_0, \ldots, \alpha_K` (:math:`K + 1` values).
            (default: :obj:`None`, the mean)
        learnable_weights (bool, optional): If set to :obj:`True`,
            :math:`\alpha` is a :class:`~torch.nn.Parameter` initialised to
            :obj:`layer_weights` (or the mean). (default: :obj:`False`)
        keep_prob (float, optional): Edge dropout in training mode: each
            non-zero of the normalised adjacency is kept with this
            probability and divided by it, resampled on every
            :meth:`forward`, as in the official port. Never applied in
            evaluation mode nor in :meth:`embeddings`. (default: :obj:`1.0`)
        edge_weight (torch.Tensor, optional): Non-negative interaction
            weights :math:`[|\mathcal{E}|]`. (default: :obj:`None`)

    Example:
        >>> model = LightGCN(num_users, num_items, train_edge_index)
        >>> user_emb, item_emb = model(batch.user_index, batch.item_index)
        >>> model.eval()
        >>> scores, items = model.recommend(torch.arange(10), k=20)
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        edge_index: Tensor,
        embedding_dim: int = 64,
        num_layers: int = 3,
        init: str = "xavier",
        init_std: float = 0.1,
        layer_weights: Optional[Sequence[float]] = None,
        learnable_weights: bool = False,
        keep_prob: float = 1.0,
        edge_weight: Optional[Tensor] = None,
    ):
        super().__init__()
        for name, value, low in (
            ("num_users", num_users, 1),
            ("num_items", num_items, 1),
            ("embedding_dim", embedding_dim, 1),
            ("num_layers", num_layers, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                kind = "positive" if low else "non-negative"
                raise ValueError(f"'{name}' must be a {kind} integer in 'LightGCN' (got {value!r})")
        if init not in _INITS:
            raise ValueError(f"'init' must be one of {_INITS} in 'LightGCN' (got {init!r})")
        if not (isinstance(init_std, (int, float)) and init_std > 0 and math.isfinite(init_std)):
            raise ValueError(
                f"'init_std' must be a positive number in 'LightGCN' (got {init_std!r})"
            )
        if not (isinstance(keep_prob, (int, float)) and 0.0 < keep_prob <= 1.0):
            raise ValueError(f"'keep_prob' must be in (0, 1] in 'LightGCN' (got {keep_prob!r})")

        self.num_users, self.num_items = num_users, num_items
        self.embedding_dim, self.num_layers = embedding_dim, num_layers
        self.init, self.init_std, self.keep_prob = init, float(init_std), float(keep_prob)
        self.learnable_weights = learnable_weights

        if layer_weights is None:
            alpha = [1.0 / (num_layers + 1)] * (num_layers + 1)
        else:
            alpha = [float(a) for a in layer_weights]
            if len(alpha) != num_layers + 1 or not all(math.isfinite(a) for a in alpha):
                raise ValueError(
                    f"'layer_weights' must hold num_layers + 1 = {num_layers + 1} finite "
                    f"numbers in 'LightGCN' (got {list(layer_weights)})"
                )
        self._initial_alpha: Tuple[float, ...] = tuple(alpha)
        if learnable_weights:
            self.layer_weight: Optional[Parameter] = Parameter(torch.tensor(alpha))
        else:
            self.register_parameter("layer_weight", None)

        self.user_embedding = Embedding(num_users, embedding_dim)
        self.item_embedding = Embedding(num_items, embedding_dim)

        # Validates the graph; kept until the model changes device / dtype.
        adj = BipartiteAdjacency(edge_index, num_users, num_items, edge_weight)
        self.register_buffer("edge_index", edge_index.long())
        self.register_buffer("edge_weight", edge_weight)
        weight = self.user_embedding.weight
        self._adj: BipartiteAdjacency = adj.to(weight.device, weight.dtype)
        self._adj_key: Tuple[Any, ...] = self._adjacency_key()
        self._cache: Optional[Tuple[Tuple[Any, ...], Tuple[Tensor, Tensor]]] = None

        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Re-initialises the embeddings (and layer weights) and clears the cache."""
        for emb in (self.user_embedding, self.item_embedding):
            if self.init == "xavier":
                torch.nn.init.xavier_uniform_(emb.weight)
            else:
                torch.nn.init.normal_(emb.weight, mean=0.0, std=self.init_std)
        if self.layer_weight is not None:
            with torch.no_grad():
                self.layer_weight.copy_(torch.tensor(self._initial_alpha))
        self._cache = None

    # Graph ###################################################################

    def _adjacency_key(self) -> Tuple[Any, ...]:
        key: List[Any] = [self.user_embedding.weight.device, self.user_embedding.weight.dtype]
        for buf in (self.edge_index, self.edge_weight):
            key += [None, None] if buf is None else [buf.data_ptr(), buf._version]
        return tuple(key)

    def adjacency(self) -> BipartiteAdjacency:
        r"""The normalised training adjacency on the model's device and dtype
        (rebuilt from the :obj:`edge_index` buffer when either changed)."""
        key = self._adjacency_key()
        if key != self._adj_key:
            adj = BipartiteAdjacency(
                self.edge_index, self.num_users, self.num_items, self.edge_weight, dtype=key[1]
            )
            self._adj, self._adj_key = adj.to(key[0]), key
        return self._adj

    # Propagation #############################################################

    def _alpha(self) -> Union[Tensor, Tuple[float, ...]]:
        return self._initial_alpha if self.layer_weight is None else self.layer_weight

    @staticmethod
    def _accumulate(
        out: Tensor, x: Tensor, alpha: Union[Tensor, Tuple[float, ...]], k: int
    ) -> None:
        if isinstance(alpha, Tensor):
            out.addcmul_(x, alpha[k])
        else:
            out.add_(x, alpha=alpha[k])

    def _propagate(self, adj: BipartiteAdjacency) -> Tuple[Tensor, Tensor]:
        alpha = self._alpha()
        x_user, x_item = self.user_embedding.weight, self.item_embedding.weight
        out_user, out_item = x_user * alpha[0], x_item * alpha[0]
        for k in range(1, self.num_layers + 1):
            x_user, x_item = adj.propagate(x_user, x_item)
            self._accumulate(out_user, x_user, alpha, k)
            self._accumulate(out_item, x_item, alpha, k)
        return out_user, out_item

    def _propagate_at(
        self, adj: BipartiteAdjacency, user_index: Tensor, item_index: Tensor, return_ego: bool
    ) -> Tuple[Tensor, ...]:
        # Layers 1..K-1 in full, layer K only at the unique batch rows; the backward
        # is hand-written (see batch_propagation.py): K-1 full layers each way.
        users, user_inv = unique_rows(user_index, self.num_users)
        items, item_inv = unique_rows(item_index, self.num_items)
        out_user, out_item, ego_user, ego_item = batch_propagate(
            adj,
            self.user_embedding.weight,
            self.item_embedding.weight,
            self._alpha(),
            users,
            items,
            self.num_layers,
            user_inv,
            item_inv,
        )
        if return_ego:
            return out_user, out_item, ego_user, ego_item
        return out_user, out_item

    def _index(self, index: Tensor, num: int, name: str) -> Tensor:
        _check_index(index, num, name, "LightGCN")
        return index.to(self.user_embedding.weight.device, torch.long)

    def forward(
        self,
        user_index: Optional[Tensor] = None,
        item_index: Optional[Tensor] = None,
        return_ego: bool = False,
    ) -> Tuple[Tensor, ...]:
        r"""Final (layer-combined) embeddings, differentiable.

        Args:
            user_index (torch.Tensor, optional): User rows :math:`[B_u]`.
                (default: :obj:`None`)
            item_index (torch.Tensor, optional): Item rows :math:`[B_i]`,
                *e.g.* positive and negative items concatenated; duplicates
                are fine. (default: :obj:`None`)
            return_ego (bool, optional): With indices, also return the
                layer-0 embeddings of the rows (for the L2 term; cheaper than
                :meth:`ego_embeddings`). (default: :obj:`False`)

        Returns:
            :obj:`(user_emb, item_emb)`: :math:`([U, d], [I, d])` without
            indices, :math:`([B_u, d], [B_i, d])` with both, followed by
            :obj:`(user_ego, item_ego)` :math:`([B_u, d], [B_i, d])` if
            :obj:`return_ego`.
        """
        if (user_index is None) != (item_index is None):
            raise ValueError(
                "'user_index' and 'item_index' must be given together or not at all "
                "in 'LightGCN.forward'"
            )
        adj = self.adjacency()
        if self.training and self.keep_prob < 1.0:
            adj = adj.dropout(self.keep_prob)
        if user_index is None or item_index is None:
            return self._propagate(adj)
        user_index = self._index(user_index, self.num_users, "user_index")
        item_index = self._index(item_index, self.num_items, "item_index")
        return self._propagate_at(adj, user_index, item_index, return_ego)

    def ego_embeddings(self, user_index: Tensor, item_index: Tensor) -> Tuple[Tensor, Tensor]:
        r"""Layer-0 embeddings of the given rows :math:`([B_u, d], [B_i, d])`,
        *e.g.* for the L2 regularisation term."""
        user_index = self._index(user_index, self.num_users, "user_index")
        item_index = self._index(item_index, self.num_items, "item_index")
        return self.user_embedding(user_index), self.item_embedding(item_index)

    # Inference ###############################################################

    def _cache_key(self) -> Tuple[Any, ...]:
        key: List[Any] = [self.training, self._adjacency_key()]
        for p in self.parameters():
            # Fused optimizers (e.g. Adam(fused=True)) update parameters without bumping
            # their version counter, so a cheap float64 checksum of the values is part of
            # the key too (one pass over the tables, far cheaper than a propagation).
            checksum = torch.stack(
                [torch.sum(p, dtype=torch.float64), torch.sum(p * p, dtype=torch.float64)]
            )
            key.append((id(p), p.data_ptr(), p._version, p.device, p.dtype, *checksum.tolist()))
        return tuple(key)

    def clear_cache(self) -> None:
        r"""Drops the cached inference embeddings (they are recomputed on the next
        :meth:`embeddings` call). Only needed after editing parameters in ways that
        bypass both autograd's version counter and the values (never in practice)."""
        self._cache = None

    @torch.no_grad()
    def embeddings(self) -> Tuple[Tensor, Tensor]:
        r"""Final embeddings of all users and items :math:`([U, d], [I, d])`,
        without edge dropout, cached until any parameter is modified (the
        cache is keyed on every parameter's version counter, storage and a
        checksum of its values, so fused optimizers are caught too), the
        model is moved, or the training flag changes."""
        key = self._cache_key()
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._propagate(self.adjacency()))
        return self._cache[1]

    def score(self, user_index: Tensor, item_index: Tensor) -> Tensor:
        r"""Scores :math:`\mathbf{e}_u^{\top} \mathbf{e}_i` of the pairs
        :obj:`(user_index[b], item_index[b])` :math:`[B]`: differentiable via
        :meth:`forward` in training mode, from :meth:`embeddings` in
        evaluation mode."""
        if isinstance(user_index, Tensor) and isinstance(item_index, Tensor):
            if user_index.shape != item_index.shape:
                raise ValueError(
                    f"'user_index' and 'item_index' must have the same shape in "
                    f"'LightGCN.score' (got {tuple(user_index.shape)} and "
                    f"{tuple(item_index.shape)})"
                )
        if self.training:
            user_emb, item_emb = self(user_index, item_index)
        else:
            user_index = self._index(user_index, self.num_users, "user_index")
            item_index = self._index(item_index, self.num_items, "item_index")
            user_all, item_all = self.embeddings()
            user_emb, item_emb = user_all[user_index], item_all[item_index]
        return (user_emb * item_emb).sum(dim=-1)

    @torch.no_grad()
    def recommend(
        self, user_index: Tensor, k: int, exclude_seen: bool = True
    ) -> Tuple[Tensor, Tensor]:
        r"""Top-:obj:`k` items of the given users, best first.

        Args:
            user_index (torch.Tensor): Users :math:`[B]`.
            k (int): The number of items per user.
            exclude_seen (bool, optional): If set to :obj:`True`, training
                items of each user are never returned; :obj:`k` must then not
                exceed any requested user's number of unseen items (else a
                :class:`ValueError`). (default: :obj:`True`)

        Returns:
            :obj:`(scores, item_index)`, both :math:`[B, k]`.
        """
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.num_items:
            raise ValueError(
                f"'k' must be an integer in [1, {self.num_items}] in 'LightGCN.recommend' "
                f"(got {k!r})"
            )
        user_index = self._index(user_index, self.num_users, "user_index")
        user_emb, item_emb = self.embeddings()
        scores = user_emb[user_index] @ item_emb.t()
        if exclude_seen and user_index.numel() > 0:
            adj = self.adjacency()
            position, item = adj.user_items(user_index)
            scores[position, item] = float("-inf")
            num_seen = adj.rowptr[user_index + 1] - adj.rowptr[user_index]
            most = int(num_seen.argmax())
            if k > self.num_items - int(num_seen[most]):
                raise ValueError(
                    f"'k' must not exceed the number of unseen items of every user in "
                    f"'LightGCN.recommend' (got k={k}, but user {int(user_index[most])} "
                    f"has only {self.num_items - int(num_seen[most])} unseen items)"
                )
        top = scores.topk(k, dim=1)
        return top.values, top.indices

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.num_users}, {self.num_items}, "
            f"embedding_dim={self.embedding_dim}, num_layers={self.num_layers})"
        )
