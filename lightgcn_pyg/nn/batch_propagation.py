r"""The exact LightGCN training forward/backward, restricted to a batch's rows.

A BPR step needs the final embeddings of the batch's users and items only. With
:math:`K` layers the forward computes layers :math:`1..K-1` in full and layer
:math:`K` only at the batch rows (sub-rows of :math:`\mathbf{R}` and
:math:`\mathbf{R}^{\top}`). Propagation is linear, so the backward needs none of
the intermediate layers: with :math:`\mathbf{S}` the batch gradient scattered to
all rows, the gradient of the layer-0 embeddings is

.. math::
    \mathbf{H}_K = \alpha_K \mathbf{S}, \qquad
    \mathbf{H}_k = \alpha_k \mathbf{S} + \tilde{\mathbf{A}}^{\top} \mathbf{H}_{k+1},
    \qquad \nabla \mathbf{E}^{(0)} = \mathbf{H}_0,

where the first product :math:`\tilde{\mathbf{A}}^{\top} \mathbf{H}_K` only
touches the batch's columns (the transposed sub-rows of the forward). A step thus
costs :math:`K - 1` full layers forward and :math:`K - 1` backward, instead of
:math:`K` and :math:`K`, and allocates no per-layer activations.
"""

from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from lightgcn_pyg.nn.propagation import _CSR, BipartiteAdjacency, ptr_to_index

__all__ = ["batch_propagate", "unique_rows"]


def unique_rows(index: Tensor, num: int) -> Tuple[Tensor, Tensor]:
    r"""Same as :obj:`torch.unique(index, return_inverse=True)` for indices in
    :math:`[0, \textrm{num})`, through a membership mask (:math:`\mathcal{O}(\textrm{num})`,
    no sort; about 2x faster on CPU for a batch)."""
    member = torch.zeros(num, dtype=torch.bool, device=index.device)
    member[index] = True
    unique = member.nonzero().view(-1)
    position = torch.empty(num, dtype=torch.long, device=index.device)
    position[unique] = torch.arange(unique.numel(), device=index.device)
    return unique, position.index_select(0, index)


def _sub_rows(m: _CSR, index: Tensor) -> _CSR:
    """Rows ``index`` (unique) of ``m`` as a ``[len(index), m.size[1]]`` CSR matrix."""
    start = m.rowptr.index_select(0, index)
    count = m.rowptr.index_select(0, index + 1) - start
    rowptr = torch.cat([count.new_zeros(1), torch.cumsum(count, 0, dtype=count.dtype)])
    row = ptr_to_index(rowptr)  # kept: the transpose in the backward needs it
    entry = torch.arange(row.numel(), device=row.device) + (start - rowptr[:-1])[row]
    sub = _CSR(
        rowptr,
        m.col.index_select(0, entry),
        m.value.index_select(0, entry),
        (index.numel(), m.size[1]),
    )
    sub._row = row
    return sub


def _transpose(m: _CSR) -> _CSR:
    """The transpose of a (small) CSR matrix: one sort of its column indices."""
    col, perm = torch.sort(m.col, stable=True)
    counts = torch.bincount(col, minlength=m.size[1])
    rowptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
    return _CSR(
        rowptr, m.row.index_select(0, perm), m.value.index_select(0, perm), (m.size[1], m.size[0])
    )


class _Seeds:
    r"""The batch rows' gradient terms of layer :math:`k`: :math:`\alpha_k \mathbf{S}`, plus
    the layer-0 rows' own gradient at :math:`k = 0`."""

    def __init__(self, grad: Tensor, coef: Sequence[float], grad_ego: Optional[Tensor]):
        self.grad, self.coef, self.grad_ego = grad, coef, grad_ego
        self._cache: dict = {}

    def scaled(self, k: int) -> Tensor:
        c = self.coef[k]
        if c not in self._cache:
            self._cache[c] = self.grad * c
        return self._cache[c]

    def __getitem__(self, k: int) -> Tensor:
        if k == 0 and self.grad_ego is not None:
            return self.scaled(0) + self.grad_ego
        return self.scaled(k)


class _BatchPropagation(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        user_weight: Tensor,
        item_weight: Tensor,
        alpha: Tensor,
        users: Tensor,
        items: Tensor,
        user_inv: Tensor,
        item_inv: Tensor,
        adj: BipartiteAdjacency,
        num_layers: int,
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        backend = adj.backend
        user_op, item_op = adj._user_op, adj._item_op
        coef = alpha.tolist()
        keep_rows = ctx.needs_input_grad[2]  # learnable layer weights need each layer's rows
        # index_select, not x[index]: the advanced-indexing kernel is ~4x slower on CPU.
        rows_u, rows_i = [user_weight.index_select(0, users)], [item_weight.index_select(0, items)]
        out_u, out_i = rows_u[0] * coef[0], rows_i[0] * coef[0]
        x_u, x_i = user_weight, item_weight
        for k in range(1, num_layers):
            x_u, x_i = user_op.fwd.matmul(x_i, backend), item_op.fwd.matmul(x_u, backend)
            r_u, r_i = x_u.index_select(0, users), x_i.index_select(0, items)
            out_u.add_(r_u, alpha=coef[k])
            out_i.add_(r_i, alpha=coef[k])
            if keep_rows:
                rows_u.append(r_u)
                rows_i.append(r_i)
        sub_u = sub_i = None
        if num_layers > 0:
            sub_u, sub_i = _sub_rows(user_op.fwd, users), _sub_rows(item_op.fwd, items)
            r_u, r_i = sub_u.matmul(x_i, backend), sub_i.matmul(x_u, backend)
            out_u.add_(r_u, alpha=coef[num_layers])
            out_i.add_(r_i, alpha=coef[num_layers])
            if keep_rows:
                rows_u.append(r_u)
                rows_i.append(r_i)
        ctx.adj, ctx.num_layers, ctx.coef = adj, num_layers, coef
        ctx.sub = (sub_u, sub_i)
        ctx.rows = (rows_u, rows_i) if keep_rows else None
        ctx.sizes = (user_weight.size(0), item_weight.size(0))
        ctx.save_for_backward(users, items, user_inv, item_inv)
        # The layer-0 rows are outputs too (for the L2 term): their gradient joins the
        # propagated one here instead of through a separate full-size embedding backward.
        # Rows are expanded to the batch order here, so the backward reduces duplicates with
        # one index_add_ instead of separate autograd gather nodes.
        return (
            out_u.index_select(0, user_inv),
            out_i.index_select(0, item_inv),
            rows_u[0].index_select(0, user_inv),
            rows_i[0].index_select(0, item_inv),
        )

    @staticmethod
    def backward(  # type: ignore[override]
        ctx,
        grad_u: Optional[Tensor],
        grad_i: Optional[Tensor],
        grad_ego_u: Optional[Tensor],
        grad_ego_i: Optional[Tensor],
    ):
        if torch.is_grad_enabled():  # create_graph=True: this backward is not differentiable
            raise RuntimeError(
                "LightGCN's batch propagation (the model called with indices in training mode) "
                "has no second-order gradient; call the model without indices (full "
                "propagation) to differentiate twice"
            )
        users, items, user_inv, item_inv = ctx.saved_tensors
        adj: BipartiteAdjacency = ctx.adj
        backend, coef, num_layers = adj.backend, ctx.coef, ctx.num_layers
        num_users, num_items = ctx.sizes
        ref = next(g for g in (grad_u, grad_i, grad_ego_u, grad_ego_i) if g is not None)
        dim = ref.size(-1)

        def unique_rows(grad: Optional[Tensor], inv: Tensor, n: int) -> Optional[Tensor]:
            if grad is None:
                return None
            return grad.new_zeros(n, dim).index_add_(0, inv, grad)

        grad_u = unique_rows(grad_u, user_inv, users.numel())
        grad_i = unique_rows(grad_i, item_inv, items.numel())
        grad_ego_u = unique_rows(grad_ego_u, user_inv, users.numel())
        grad_ego_i = unique_rows(grad_ego_i, item_inv, items.numel())
        grad_u = (
            torch.zeros(users.numel(), dim, dtype=ref.dtype, device=ref.device)
            if grad_u is None
            else grad_u.contiguous()
        )
        grad_i = (
            torch.zeros(items.numel(), dim, dtype=ref.dtype, device=ref.device)
            if grad_i is None
            else grad_i.contiguous()
        )

        grad_alpha = None
        if ctx.rows is not None:
            rows_u, rows_i = ctx.rows
            grad_alpha = torch.stack(
                [(grad_u * ru).sum() + (grad_i * ri).sum() for ru, ri in zip(rows_u, rows_i)]
            )

        # The batch rows' own terms alpha_k * S, pre-scaled: index_add_ with alpha != 1 takes a
        # per-row path on CPU (~3x slower). Equal coefficients (the default) share one tensor.
        seed_u, seed_i = _Seeds(grad_u, coef, grad_ego_u), _Seeds(grad_i, coef, grad_ego_i)
        if num_layers == 0:
            h_u = grad_u.new_zeros(num_users, dim).index_add_(0, users, seed_u[0])
            h_i = grad_i.new_zeros(num_items, dim).index_add_(0, items, seed_i[0])
        else:
            # First product: only the batch's columns (transposed sub-rows of the forward).
            sub_u, sub_i = ctx.sub
            h_i = _transpose(sub_u).matmul(seed_u.scaled(num_layers), backend)  # [I, d]
            h_u = _transpose(sub_i).matmul(seed_i.scaled(num_layers), backend)  # [U, d]
            h_u.index_add_(0, users, seed_u[num_layers - 1])
            h_i.index_add_(0, items, seed_i[num_layers - 1])
            user_op, item_op = adj._user_op, adj._item_op
            for k in range(num_layers - 2, -1, -1):
                # Layer k+1 is (U', I') = (M_u I, M_i U): grads flow back through M^T.
                h_u, h_i = item_op.bwd.matmul(h_i, backend), user_op.bwd.matmul(h_u, backend)
                h_u.index_add_(0, users, seed_u[k])
                h_i.index_add_(0, items, seed_i[k])
        return h_u, h_i, grad_alpha, None, None, None, None, None, None


def batch_propagate(
    adj: BipartiteAdjacency,
    user_weight: Tensor,
    item_weight: Tensor,
    alpha: Union[Tensor, Sequence[float]],
    users: Tensor,
    items: Tensor,
    num_layers: int,
    user_inv: Optional[Tensor] = None,
    item_inv: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""Final embeddings :math:`\sum_k \alpha_k \mathbf{E}^{(k)}` at the rows
    :obj:`users` and :obj:`items` (each without duplicates), differentiable with
    respect to :obj:`user_weight`, :obj:`item_weight` and a tensor :obj:`alpha`.

    Args:
        adj (BipartiteAdjacency): The normalised training adjacency.
        user_weight (torch.Tensor): Layer-0 user embeddings :math:`[U, d]`.
        item_weight (torch.Tensor): Layer-0 item embeddings :math:`[I, d]`.
        alpha (torch.Tensor or Sequence[float]): Layer weights :math:`[K + 1]`.
        users (torch.Tensor): Unique user rows :math:`[B_u]`.
        items (torch.Tensor): Unique item rows :math:`[B_i]`.
        num_layers (int): :math:`K`.
        user_inv (torch.Tensor, optional): Batch order of the outputs as positions in
            :obj:`users` :math:`[B]` (e.g. from :func:`torch.unique`); default: :obj:`users`'
            own order. (default: :obj:`None`)
        item_inv (torch.Tensor, optional): The same for :obj:`items`. (default: :obj:`None`)

    Returns:
        :obj:`(user_out, item_out, user_ego, item_ego)`: the final and the layer-0 embeddings
        of the rows, in the order of :obj:`user_inv` / :obj:`item_inv` (:math:`[B, d]`).
    """
    if not isinstance(alpha, Tensor):
        alpha = torch.tensor(list(alpha), dtype=user_weight.dtype)
    if user_inv is None:
        user_inv = torch.arange(users.numel(), device=users.device)
    if item_inv is None:
        item_inv = torch.arange(items.numel(), device=items.device)
    return _BatchPropagation.apply(
        user_weight, item_weight, alpha, users, items, user_inv, item_inv, adj, num_layers
    )
