r"""The BPR objective of LightGCN (`"LightGCN: Simplifying and Powering Graph
Convolution Network for Recommendation" <https://arxiv.org/abs/2002.02126>`_).

The full per-batch loss of the official implementation is

.. math::
    \mathcal{L} = \frac{1}{B} \sum_{b=1}^{B}
    \operatorname{softplus}(\hat{y}_{u_b j_b} - \hat{y}_{u_b i_b})
    + \lambda \cdot \frac{1}{2B} \left( \|\mathbf{E}^{(0)}_{u}\|^2
    + \|\mathbf{E}^{(0)}_{i}\|^2 + \|\mathbf{E}^{(0)}_{j}\|^2 \right),

i.e. :obj:`bpr_loss(pos, neg) + reg * embedding_l2_loss(e_u, e_pos, e_neg,
batch_size=B)`, where :math:`\mathbf{E}^{(0)}` are the layer-0 ("ego")
embeddings of the batch rows only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BPRLoss", "bpr_loss", "embedding_l2_loss"]


def bpr_loss(pos_scores: Tensor, neg_scores: Tensor) -> Tensor:
    r"""The mean Bayesian Personalized Ranking loss

    .. math::
        \frac{1}{B \cdot M} \sum_{b=1}^{B} \sum_{m=1}^{M}
        \operatorname{softplus}(\hat{y}_{b,m}^{-} - \hat{y}_{b}^{+})
        = -\frac{1}{B \cdot M} \sum_{b, m}
        \ln \sigma(\hat{y}_{b}^{+} - \hat{y}_{b,m}^{-}),

    computed with :meth:`~torch.nn.functional.softplus`, so it stays finite
    for any score gap (a gap :math:`\hat{y}^{+} - \hat{y}^{-} = -100` gives
    about :math:`100`). An empty batch gives a zero loss that is still
    connected to the inputs (useful for a distributed rank whose final batch
    is empty).

    Args:
        pos_scores (torch.Tensor): Scores of the positive pairs, shape
            :obj:`[B]`.
        neg_scores (torch.Tensor): Scores of the negative pairs, shape
            :obj:`[B]` or :obj:`[B, M]` (:obj:`pos_scores` is broadcast over
            the :obj:`M` negatives).

    Returns:
        torch.Tensor: A scalar.
    """
    if pos_scores.dim() != 1:
        raise ValueError(
            f"'pos_scores' must be one-dimensional in 'bpr_loss' (got shape "
            f"{tuple(pos_scores.shape)})"
        )
    if neg_scores.dim() not in (1, 2) or neg_scores.size(0) != pos_scores.size(0):
        raise ValueError(
            f"'neg_scores' must have shape [{pos_scores.size(0)}] or [{pos_scores.size(0)}, M] "
            f"in 'bpr_loss' (got shape {tuple(neg_scores.shape)})"
        )
    if neg_scores.dim() == 2:
        pos_scores = pos_scores.unsqueeze(-1)
    loss = F.softplus(neg_scores - pos_scores)
    if loss.numel() == 0:
        return loss.sum()
    return loss.mean()


def embedding_l2_loss(*ego_embeddings: Tensor, batch_size: float) -> Tensor:
    r"""The L2 regularisation term of LightGCN without its coefficient

    .. math::
        \frac{1}{2B} \sum_{t} \|\mathbf{E}_t\|_F^2,

    over the given layer-0 ("ego") embeddings of the batch rows, e.g. users,
    positive and negative items. The trainer multiplies it by the
    regularisation coefficient :math:`\lambda`, giving the official
    :math:`\lambda \cdot \frac{1}{2}(\|\mathbf{e}^{(0)}_u\|^2 +
    \|\mathbf{e}^{(0)}_i\|^2 + \|\mathbf{e}^{(0)}_j\|^2) / B`.

    Args:
        *ego_embeddings (torch.Tensor): Layer-0 embeddings of the batch rows,
            any shape (e.g. :obj:`[B, D]` or :obj:`[B, M, D]`).
        batch_size (int or float): The number of triplets :math:`B` in the
            batch (a float is accepted, e.g. a distributed global
            denominator). May be :obj:`0` only if every tensor is empty (gives
            a zero loss).

    Returns:
        torch.Tensor: A scalar.
    """
    if len(ego_embeddings) == 0:
        raise ValueError("'ego_embeddings' must hold at least one tensor in 'embedding_l2_loss'")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, float))
        or not math.isfinite(batch_size)
        or batch_size < 0
    ):
        raise ValueError(
            f"'batch_size' must be a finite non-negative number in 'embedding_l2_loss' "
            f"(got {batch_size!r})"
        )
    squared = torch.stack([emb.pow(2).sum() for emb in ego_embeddings]).sum()
    if batch_size == 0:
        if any(emb.numel() > 0 for emb in ego_embeddings):
            raise ValueError(
                "'batch_size' must be positive for non-empty embeddings in "
                f"'embedding_l2_loss' (got {batch_size!r})"
            )
        return squared
    return 0.5 * squared / batch_size


class BPRLoss(torch.nn.Module):
    r"""The complete LightGCN training objective: :func:`bpr_loss` plus
    :obj:`reg` times :func:`embedding_l2_loss` over the layer-0 embeddings,

    .. math::
        \mathcal{L} = \operatorname{mean}\,\operatorname{softplus}
        (\hat{y}^{-} - \hat{y}^{+}) + \lambda \cdot \frac{1}{2B}
        \sum_t \|\mathbf{E}^{(0)}_t\|_F^2.

    Args:
        reg (float, optional): The L2 regularisation coefficient
            :math:`\lambda`. (default: :obj:`1e-4`)

    Shapes:
        - **input:** positive scores :math:`(B)`, negative scores :math:`(B)`
          or :math:`(B, M)`, ego embeddings of any shape
        - **output:** scalar
    """

    def __init__(self, reg: float = 1e-4) -> None:
        super().__init__()
        if isinstance(reg, bool) or not isinstance(reg, (int, float)) or not reg >= 0:
            raise ValueError(f"'reg' must be a non-negative number in 'BPRLoss' (got {reg!r})")
        if not math.isfinite(reg):
            raise ValueError(f"'reg' must be finite in 'BPRLoss' (got {reg!r})")
        self.reg = float(reg)

    def forward(self, pos_scores: Tensor, neg_scores: Tensor, *ego_embeddings: Tensor) -> Tensor:
        r"""Computes the loss of one batch.

        Args:
            pos_scores (torch.Tensor): Positive-pair scores :obj:`[B]`.
            neg_scores (torch.Tensor): Negative-pair scores :obj:`[B]` or
                :obj:`[B, M]`.
            *ego_embeddings (torch.Tensor): Layer-0 embeddings of the batch
                rows; may be omitted if :obj:`reg` is :obj:`0`.
        """
        loss = bpr_loss(pos_scores, neg_scores)
        if self.reg == 0.0 and len(ego_embeddings) == 0:
            return loss
        if len(ego_embeddings) == 0:
            raise ValueError(
                f"'ego_embeddings' must be given when 'reg' is non-zero in 'BPRLoss' "
                f"(got reg={self.reg})"
            )
        batch_size = pos_scores.size(0)
        return loss + self.reg * embedding_l2_loss(*ego_embeddings, batch_size=batch_size)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(reg={self.reg})"
