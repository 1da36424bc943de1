"""Random bipartite graphs and naive dense references shared by the nn tests."""

from typing import Callable, Optional, Tuple

import pytest
import torch
from torch import Tensor


def make_graph(
    num_users: int = 7,
    num_items: int = 9,
    num_edges: int = 20,
    seed: int = 0,
    weighted: bool = False,
    isolated: int = 2,
) -> Tuple[Tensor, Optional[Tensor]]:
    """Random de-duplicated bipartite edges; the last `isolated` users and
    items have no edges. Returns (edge_index, edge_weight or None)."""
    gen = torch.Generator().manual_seed(seed)
    user = torch.randint(0, num_users - isolated, (num_edges,), generator=gen)
    item = torch.randint(0, num_items - isolated, (num_edges,), generator=gen)
    edge_index = torch.stack([user, item]).unique(dim=1)
    edge_index = edge_index[:, torch.randperm(edge_index.size(1), generator=gen)]
    weight = None
    if weighted:
        weight = torch.rand(edge_index.size(1), generator=gen, dtype=torch.float64) + 0.1
        weight[0] = 0.0  # a zero weight must not create NaN
    return edge_index, weight


def dense_r(
    edge_index: Tensor,
    num_users: int,
    num_items: int,
    edge_weight: Optional[Tensor] = None,
) -> Tensor:
    """Naive dense D_u^-1/2 A D_i^-1/2 in float64."""
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.size(1), dtype=torch.float64)
    a = torch.zeros(num_users, num_items, dtype=torch.float64)
    for (u, i), w in zip(edge_index.t().tolist(), edge_weight.tolist()):
        a[u, i] += w
    du, di = a.sum(1), a.sum(0)
    inv_u = torch.where(du > 0, du.rsqrt(), torch.zeros_like(du))
    inv_i = torch.where(di > 0, di.rsqrt(), torch.zeros_like(di))
    return inv_u[:, None] * a * inv_i[None, :]


@pytest.fixture
def graph() -> Callable[..., Tuple[Tensor, Optional[Tensor]]]:
    return make_graph


@pytest.fixture
def dense() -> Callable[..., Tensor]:
    return dense_r
