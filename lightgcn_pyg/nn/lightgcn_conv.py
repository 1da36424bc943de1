from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.typing import Adj, OptPairTensor, OptTensor, PairTensor, SparseTensor
from torch_geometric.utils import is_torch_sparse_tensor, scatter, spmm, to_torch_csr_tensor

from lightgcn_pyg.nn.propagation import ptr_to_index

__all__ = ["LightGCNConv", "lightgcn_norm"]


def _inv_sqrt(deg: Tensor) -> Tensor:
    # Zero (not inf / NaN) for nodes without edges or with total weight zero.
    return torch.where(deg > 0, deg.rsqrt(), torch.zeros_like(deg))


def _normalized_value(
    row: Tensor,
    col: Tensor,
    value: Tensor,
    size: Tuple[int, int],
    bipartite: bool,
    target: int,
) -> Tensor:
    # `row` indexes the first, `col` the second dimension of `size`;
    # `target` (0 or 1) says which of the two receives the messages.
    if bipartite:
        deg_row = scatter(value, row, 0, dim_size=size[0], reduce="sum")
        deg_col = scatter(value, col, 0, dim_size=size[1], reduce="sum")
        return _inv_sqrt(deg_row)[row] * value * _inv_sqrt(deg_col)[col]
    # Homogeneous: in-degree on both ends, exactly as `gcn_norm` / `LGConv`.
    index = col if target == 1 else row
    deg_inv_sqrt = _inv_sqrt(scatter(value, index, 0, dim_size=size[target], reduce="sum"))
    return deg_inv_sqrt[row] * value * deg_inv_sqrt[col]


def lightgcn_norm(
    edge_index: Adj,
    edge_weight: OptTensor = None,
    size: Optional[Tuple[int, int]] = None,
    bipartite: bool = False,
    flow: str = "source_to_target",
    dtype: Optional[torch.dtype] = None,
) -> Union[Tuple[Tensor, Tensor], Tensor, SparseTensor]:
    r"""Symmetric LightGCN normalisation
    :math:`w_{j,i} / \sqrt{\deg(j) \deg(i)}`, without self-loops.

    Homogeneous graphs use the weighted in-degree for both ends, as
    :func:`~torch_geometric.nn.conv.gcn_conv.gcn_norm` does; bipartite graphs
    take the degree of each side from its own row of :obj:`edge_index` (for
    a sparse matrix: row sums for targets, column sums for sources). Nodes of
    degree zero get weight zero, never :obj:`inf` or :obj:`NaN`.

    Args:
        edge_index (torch.Tensor or SparseTensor): Edge indices
            :math:`[2, |\mathcal{E}|]`, or a transposed sparse adjacency
            :math:`[N_{dst}, N_{src}]` (:class:`torch.sparse.Tensor` in COO,
            CSR or CSC layout, or :class:`torch_sparse.SparseTensor`).
        edge_weight (torch.Tensor, optional): Edge weights
            :math:`[|\mathcal{E}|]` for an :obj:`edge_index` tensor; sparse
            matrices carry their weights as values. (default: :obj:`None`)
        size ((int, int), optional): Sizes of the node sets indexed by
            :obj:`edge_index[0]` and :obj:`edge_index[1]`; required for a
            bipartite :obj:`edge_index` tensor. (default: :obj:`None`)
        bipartite (bool, optional): Whether source and target nodes are
            distinct node sets. (default: :obj:`False`)
        flow (str, optional): The message passing flow of the layer.
            (default: :obj:`"source_to_target"`)
        dtype (torch.dtype, optional): The dtype of the weights.
            (default: :obj:`None`)

    Returns:
        :obj:`(edge_index, edge_weight)` for an :obj:`edge_index` tensor, a
        :obj:`torch.sparse_csr` tensor for a :class:`torch.sparse.Tensor`,
        and a :class:`torch_sparse.SparseTensor` for one.
    """
    if isinstance(edge_index, SparseTensor):
        row, col, value = edge_index.coo()
        if value is None:
            value = torch.ones(row.numel(), dtype=dtype, device=row.device)
        n, m = edge_index.sparse_sizes()
        value = _normalized_value(row, col, value.to(dtype), (n, m), bipartite, target=0)
        return edge_index.set_value(value, layout="coo")

    if is_torch_sparse_tensor(edge_index):
        adj_t = edge_index
        if adj_t.layout == torch.sparse_coo:
            adj_t = adj_t.coalesce()  # sums duplicates, sorts row-major
            row, col = adj_t.indices()
        else:
            if adj_t.layout != torch.sparse_csr:
                adj_t = adj_t.to_sparse_csr()
            ptr, col = adj_t.crow_indices(), adj_t.col_indices()
            row = ptr_to_index(ptr, col.numel())
        n, m = adj_t.size(0), adj_t.size(1)
        value = _normalized_value(row, col, adj_t.values().to(dtype), (n, m), bipartite, target=0)
        return to_torch_csr_tensor(torch.stack([row, col]), value, size=(n, m), is_coalesced=True)

    if size is None:
        num_nodes = int(edge_index.max()) + 1 if edge_index.numel() > 0 else 0
        size = (num_nodes, num_nodes)
    _check_edge_index(edge_index, size)
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.size(1), dtype=dtype, device=edge_index.device)
    target = 1 if flow == "source_to_target" else 0
    value = _normalized_value(
        edge_index[0], edge_index[1], edge_weight.to(dtype), size, bipartite, target
    )
    return edge_index, value


def _check_edge_index(edge_index: Tensor, size: Tuple[int, int]) -> None:
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(
            f"'edge_index' must have shape [2, num_edges] in 'LightGCNConv' "
            f"(got {tuple(edge_index.shape)})"
        )
    if edge_index.numel() == 0:
        return
    low = edge_index.min(dim=1).values.tolist()
    high = edge_index.max(dim=1).values.tolist()
    for dim in range(2):
        if low[dim] < 0 or high[dim] >= size[dim]:
            bad = low[dim] if low[dim] < 0 else high[dim]
            raise ValueError(
                f"'edge_index[{dim}]' contains the index {bad}, which is out of range "
                f"[0, {size[dim]}) in 'LightGCNConv'"
            )


class LightGCNConv(MessagePassing):
    r"""The light graph convolution from the `"LightGCN: Simplifying and
    Powering Graph Convolution Network for Recommendation"
    <https://arxiv.org/abs/2002.02126>`_ paper.

    .. math::
        \mathbf{x}^{\prime}_i = \sum_{j \in \mathcal{N}(i)}
        \frac{w_{j,i}}{\sqrt{\deg(i)\deg(j)}} \mathbf{x}_j

    with :math:`\deg` the weighted degree (the sum of edge weights, one per
    edge by default), no self-loops and no learnable weights. On homogeneous
    input it equals :class:`~torch_geometric.nn.conv.LGConv`. On bipartite
    input :obj:`((x_src, x_dst), edge_index)`, :math:`\deg(j)` is counted on
    the source side (:obj:`edge_index[0]`) and :math:`\deg(i)` on the target
    side (:obj:`edge_index[1]`), so the layer can be used inside
    :class:`~torch_geometric.nn.conv.HeteroConv` or
    :func:`~torch_geometric.nn.to_hetero` on a user-item
    :class:`~torch_geometric.data.HeteroData` with edge types
    :obj:`("user", "interacts", "item")` and
    :obj:`("item", "rev_interacts", "user")`. Nodes without edges send and
    receive nothing. Duplicate edges count as often as they occur.

    Args:
        normalize (bool, optional): If set to :obj:`False`, messages are not
            normalised (plain weighted sum). (default: :obj:`True`)
        cached (bool, optional): If set to :obj:`True`, the normalised
            adjacency is computed on first execution and reused afterwards
            (transductive settings only). (default: :obj:`False`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F)` or
          :math:`((|\mathcal{V}_s|, F), (|\mathcal{V}_t|, F))` if bipartite,
          edge indices :math:`(2, |\mathcal{E}|)`, an
          :class:`~torch_geometric.EdgeIndex`, or a transposed sparse
          adjacency :math:`(|\mathcal{V}_t|, |\mathcal{V}_s|)`,
          edge weights :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, F)` or
          :math:`(|\mathcal{V}_t|, F)` if bipartite

    Example:
        Mixing the layer with other PyG operators, see also
        :obj:`examples/custom_pyg_model.py`:

        >>> class Model(torch.nn.Module):
        ...     def __init__(self, num_nodes: int, channels: int):
        ...         super().__init__()
        ...         self.emb = torch.nn.Embedding(num_nodes, channels)
        ...         self.conv = LightGCNConv(cached=True)
        ...         self.lin = torch.nn.Linear(channels, 1)
        ...
        ...     def forward(self, edge_index):
        ...         x = self.emb.weight
        ...         x = (x + self.conv(x, edge_index)) / 2
        ...         return self.lin(x)
    """

    _cached_edge_index: Optional[Tuple[Tensor, Tensor]]
    _cached_adj_t: Optional[Union[Tensor, SparseTensor]]

    def __init__(self, normalize: bool = True, cached: bool = False, **kwargs):
        kwargs.setdefault("aggr", "add")
        super().__init__(**kwargs)
        self.normalize = normalize
        self.cached = cached
        self._cached_edge_index = None
        self._cached_adj_t = None

    def reset_parameters(self) -> None:
        r"""Clears the cached normalised adjacency."""
        super().reset_parameters()
        self._cached_edge_index = None
        self._cached_adj_t = None

    def forward(
        self,
        x: Union[Tensor, OptPairTensor],
        edge_index: Adj,
        edge_weight: OptTensor = None,
        size: Optional[Tuple[int, int]] = None,
    ) -> Tensor:
        r"""Runs the forward pass of the module."""
        bipartite = isinstance(x, (tuple, list))
        if bipartite:
            pair: OptPairTensor = (x[0], x[1])
        else:
            pair = (x, x)
        sparse = isinstance(edge_index, SparseTensor) or is_torch_sparse_tensor(edge_index)
        if sparse and edge_weight is not None:
            raise ValueError(
                "'edge_weight' must be None when 'edge_index' is a sparse matrix "
                "(its values are the weights) in 'LightGCNConv'"
            )
        if size is None:
            size = self._infer_size(pair)
        dtype = pair[0].dtype if pair[0] is not None else pair[1].dtype

        if self.normalize and sparse:
            if self._cached_adj_t is None:
                adj_t = lightgcn_norm(edge_index, None, size, bipartite, self.flow, dtype)
                if self.cached:
                    self._cached_adj_t = adj_t
            else:
                adj_t = self._cached_adj_t
            edge_index = adj_t
        elif self.normalize:
            if self._cached_edge_index is None:
                edge_index, edge_weight = lightgcn_norm(
                    edge_index, edge_weight, size, bipartite, self.flow, dtype
                )
                if self.cached:
                    self._cached_edge_index = (edge_index, edge_weight)
            else:
                edge_index, edge_weight = self._cached_edge_index
        elif is_torch_sparse_tensor(edge_index) and edge_index.layout != torch.sparse_csr:
            edge_index = edge_index.to_sparse_csr()

        return self.propagate(edge_index, x=pair, edge_weight=edge_weight, size=size)

    def _infer_size(self, x: OptPairTensor) -> Tuple[int, int]:
        if x[0] is None or x[1] is None:
            raise ValueError(
                "'size' is required in 'LightGCNConv' when one side of the bipartite "
                "node features is None"
            )
        return x[0].size(self.node_dim), x[1].size(self.node_dim)

    def message(self, x_j: Tensor, edge_weight: OptTensor) -> Tensor:
        return x_j if edge_weight is None else edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(self, adj_t: Adj, x: PairTensor) -> Tensor:
        return spmm(adj_t, x[0], reduce=self.aggr)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(normalize={self.normalize}, cached={self.cached})"
