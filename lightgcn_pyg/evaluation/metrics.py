r"""Vectorised top-:math:`K` ranking metrics computed from a hit matrix.

Every metric is computed for all users and all cut-offs at once from a single
boolean hit matrix :obj:`hits` of shape :obj:`[num_users, max_k]`, where
:obj:`hits[u, i]` tells whether the item ranked at position :obj:`i + 1` for
user :obj:`u` is relevant, and from the per-user number of relevant items.
Relevance is binary. With :math:`h_i` the hit at rank :math:`i`, :math:`R` the
number of relevant items of a user and :math:`m = \min(R, K)`:

.. math::
    \mathrm{Recall@K} &= \frac{1}{R} \sum_{i=1}^{K} h_i, \qquad
    \mathrm{Precision@K} = \frac{1}{K} \sum_{i=1}^{K} h_i, \qquad
    \mathrm{Hit@K} = \max_{i \le K} h_i,

    \mathrm{NDCG@K} &= \frac{\sum_{i=1}^{K} h_i / \log_2(i + 1)}
    {\sum_{i=1}^{m} 1 / \log_2(i + 1)},

    \mathrm{MAP@K} &= \frac{1}{m} \sum_{i=1}^{K} h_i \, \mathrm{P@}i, \qquad
    \mathrm{MRR@K} = \max_{i \le K} \frac{h_i}{i}.

These are the definitions of :mod:`torch_geometric.metrics` (:class:`LinkPredRecall`,
:class:`LinkPredNDCG`, ...) and of the LightGCN evaluation protocol (IDCG over
:math:`\min(R, K)` positions). Users with :math:`R = 0` get 0 for every metric.
"""

from __future__ import annotations

from typing import Dict, Sequence

import torch
from torch import Tensor

RECALL = "recall"
PRECISION = "precision"
NDCG = "ndcg"
HIT = "hit"
MAP = "map"
MRR = "mrr"

ALL_METRICS = (RECALL, PRECISION, NDCG, HIT, MAP, MRR)


def metric_key(name: str, k: int) -> str:
    r"""Returns the result key of metric :obj:`name` at cut-off :obj:`k`, *e.g.*
    :obj:`"recall@20"`.
    """
    return f"{name}@{k}"


def validate_ks(ks: Sequence[int], owner: str) -> tuple[int, ...]:
    r"""Checks that :obj:`ks` is a non-empty sequence of positive integers and
    returns it sorted and de-duplicated.

    Args:
        ks (Sequence[int]): The cut-offs.
        owner (str): The class or function named in the error message.
    """
    if isinstance(ks, (int, str)) or not isinstance(ks, Sequence) or len(ks) == 0:
        raise ValueError(
            f"'ks' must be a non-empty sequence of positive integers in '{owner}' (got {ks!r})"
        )
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValueError(f"'ks' must contain positive integers only in '{owner}' (got {k!r})")
    return tuple(sorted(set(ks)))


def validate_metrics(metrics: Sequence[str], owner: str) -> tuple[str, ...]:
    r"""Checks that :obj:`metrics` is a non-empty sequence of known metric names
    and returns it de-duplicated, in the order of :obj:`ALL_METRICS`.

    Args:
        metrics (Sequence[str]): The metric names.
        owner (str): The class or function named in the error message.
    """
    if isinstance(metrics, str) or not isinstance(metrics, Sequence) or len(metrics) == 0:
        raise ValueError(
            f"'metrics' must be a non-empty sequence of metric names in '{owner}' (got {metrics!r})"
        )
    for name in metrics:
        if name not in ALL_METRICS:
            raise ValueError(
                f"'metrics' contains an unknown metric in '{owner}' (got {name!r}; "
                f"known: {', '.join(ALL_METRICS)})"
            )
    return tuple(name for name in ALL_METRICS if name in metrics)


def topk_metrics(
    hits: Tensor,
    num_relevant: Tensor,
    ks: Sequence[int],
    metrics: Sequence[str] = ALL_METRICS,
) -> Dict[str, Tensor]:
    r"""Computes per-user ranking metrics at several cut-offs from one top-:math:`K`
    hit matrix (see the module docstring for the definitions).

    Args:
        hits (torch.Tensor): Boolean (or 0/1) hit matrix of the ranked lists, column
            :obj:`i` holding rank :obj:`i + 1`.
        num_relevant (torch.Tensor): The number of relevant items of every user.
        ks (Sequence[int]): The cut-offs, each at most :obj:`hits.size(1)`.
        metrics (Sequence[str], optional): The metric names, a subset of
            :obj:`ALL_METRICS`. (default: :obj:`ALL_METRICS`)

    Returns:
        A dictionary from :obj:`f"{name}@{k}"` to per-user values of shape
        :obj:`[num_users]` (:obj:`float64`, :obj:`float32` on MPS), on the device of
        :obj:`hits`, ordered by metric name, then cut-off.

    Shapes:
        - **input:** hits :math:`(N, K_{max})`, num_relevant :math:`(N)`
        - **output:** dictionary of :math:`(N)` tensors
    """
    ks = validate_ks(ks, "topk_metrics")
    names = validate_metrics(metrics, "topk_metrics")
    if hits.dim() != 2:
        raise ValueError(
            f"'hits' must be a 2-dimensional [num_users, max_k] tensor in "
            f"'topk_metrics' (got shape {tuple(hits.shape)})"
        )
    if num_relevant.dim() != 1 or num_relevant.numel() != hits.size(0):
        raise ValueError(
            f"'num_relevant' must have shape [{hits.size(0)}] in 'topk_metrics' "
            f"(got {tuple(num_relevant.shape)})"
        )
    if ks[-1] > hits.size(1):
        raise ValueError(
            f"'ks' must not exceed the number of ranked columns "
            f"{hits.size(1)} of 'hits' in 'topk_metrics' (got {ks[-1]})"
        )
    return compute_topk_metrics(hits, num_relevant, ks, names)


def compute_topk_metrics(
    hits: Tensor,
    num_relevant: Tensor,
    ks: Sequence[int],
    metrics: Sequence[str],
) -> Dict[str, Tensor]:
    r"""Like :func:`topk_metrics` without input validation, for hot loops whose
    inputs are already checked (:obj:`ks` sorted ascending, :obj:`metrics` known).
    """
    names = metrics
    max_k = ks[-1]
    # float64 for exact means; MPS has no float64.
    dtype = torch.float32 if hits.device.type == "mps" else torch.float64
    device = hits.device
    hit = hits[:, :max_k].to(dtype)
    num_rel = num_relevant.to(device=device, dtype=dtype)
    rank = torch.arange(1, max_k + 1, device=device, dtype=dtype)
    has_rel = num_rel > 0
    cum_hits = hit.cumsum(dim=1)  # Number of hits within the first i ranks.

    cum_dcg = idcg = cum_ap = first_rr = None
    if NDCG in names:
        discount = (rank + 1).log2()
        cum_dcg = (hit / discount).cumsum(dim=1)
        idcg = (1.0 / discount).cumsum(dim=0)
    if MAP in names:
        cum_ap = (hit * cum_hits / rank).cumsum(dim=1)
    if MRR in names:
        # Reciprocal ranks decrease with rank, so the running maximum is the first hit.
        first_rr = (hit / rank).cummax(dim=1).values

    out: Dict[str, Tensor] = {}
    for name in names:
        for k in ks:
            num_hits = cum_hits[:, k - 1]
            # Positions an ideal ranking fills: min(|relevant|, k), at least 1.
            ideal = num_rel.clamp(min=1, max=k)
            if name == RECALL:
                value = num_hits / num_rel.clamp(min=1)
            elif name == PRECISION:
                value = num_hits / k
            elif name == HIT:
                value = (num_hits > 0).to(dtype)
            elif name == NDCG:
                value = cum_dcg[:, k - 1] / idcg[ideal.long() - 1]
            elif name == MAP:
                value = cum_ap[:, k - 1] / ideal
            else:  # MRR
                value = first_rr[:, k - 1]
            out[metric_key(name, k)] = torch.where(has_rel, value, value.new_zeros(()))
    return out
