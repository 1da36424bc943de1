r"""Compressed sparse row (CSR) form of a bipartite edge index."""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

_INT64_MAX = 2**63 - 1


def to_csr(edge_index: Tensor, num_rows: int) -> Tuple[Tensor, Tensor]:
    r"""Converts a bipartite edge index into CSR form, with the columns sorted inside each row.

    Runs in :math:`O(E \log E)` time and :math:`O(E + \textrm{num\_rows})` memory, on the
    device of :obj:`edge_index`.

    Args:
        edge_index (torch.Tensor): Integer edge index; row 0 holds row (user) indices in
            :obj:`[0, num_rows)`, row 1 column (item) indices :math:`\geq 0`.
        num_rows (int): Number of rows (users); rows without edges get an empty slice.

    Returns:
        (rowptr, col): :obj:`rowptr` of shape :obj:`[num_rows + 1]` with :obj:`rowptr[0] == 0`
        and :obj:`rowptr[-1] == E`, and :obj:`col` of shape :obj:`[E]`, so that the columns of
        row :obj:`r` are :obj:`col[rowptr[r]:rowptr[r + 1]]`, in increasing order. Both are
        :obj:`torch.long`.

    Shapes:
        - **input:** edge_index :math:`(2, E)`
        - **output:** rowptr :math:`(\textrm{num\_rows} + 1)`, col :math:`(E)`
    """
    if isinstance(num_rows, bool) or not isinstance(num_rows, int) or num_rows < 0:
        raise ValueError(
            f"'num_rows' must be a non-negative integer in 'to_csr' (got {num_rows!r})"
        )
    if not isinstance(edge_index, Tensor):
        raise ValueError(
            f"'edge_index' must be a tensor in 'to_csr' (got {type(edge_index).__name__})"
        )
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(
            f"'edge_index' must have shape [2, E] in 'to_csr' (got {list(edge_index.shape)})"
        )
    if edge_index.is_floating_point() or edge_index.is_complex() or edge_index.dtype == torch.bool:
        raise ValueError(
            f"'edge_index' must hold integers in 'to_csr' (got dtype {edge_index.dtype})"
        )
    edge_index = edge_index.long()
    row, col = edge_index[0], edge_index[1]
    device = edge_index.device
    if row.numel() == 0:
        return torch.zeros(num_rows + 1, dtype=torch.long, device=device), col.clone()

    row_min, row_max = int(row.min()), int(row.max())
    if row_min < 0 or row_max >= num_rows:
        bad = row_min if row_min < 0 else row_max
        raise ValueError(
            f"'edge_index' row indices must lie in [0, {num_rows}) in 'to_csr' (got {bad})"
        )
    col_min, num_cols = int(col.min()), int(col.max()) + 1
    if col_min < 0:
        raise ValueError(
            f"'edge_index' column indices must be non-negative in 'to_csr' (got {col_min})"
        )

    if num_rows <= _INT64_MAX // max(num_cols, 1):
        # One sort on a combined (row, col) key.
        perm = torch.argsort(row * num_cols + col)
    else:  # The key would overflow: two stable sorts instead.
        perm = torch.argsort(col, stable=True)
        perm = perm[torch.argsort(row[perm], stable=True)]

    counts = torch.bincount(row, minlength=num_rows)
    rowptr = torch.zeros(num_rows + 1, dtype=torch.long, device=device)
    torch.cumsum(counts, dim=0, out=rowptr[1:])
    return rowptr, col[perm]
