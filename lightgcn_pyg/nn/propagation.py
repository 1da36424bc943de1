r"""Fast, exact LightGCN propagation over a normalised bipartite adjacency.

The symmetric LightGCN adjacency of a user-item graph is

.. math::
    \tilde{\mathbf{A}} = \begin{pmatrix} \mathbf{0} & \mathbf{R} \\
    \mathbf{R}^{\top} & \mathbf{0} \end{pmatrix}, \qquad
    \mathbf{R} = \mathbf{D}_u^{-1/2} \mathbf{A} \mathbf{D}_i^{-1/2},

so one layer is :math:`(\mathbf{U}', \mathbf{I}') = (\mathbf{R} \mathbf{I},
\mathbf{R}^{\top} \mathbf{U})`. :class:`BipartiteAdjacency` stores
:math:`\mathbf{R}` and :math:`\mathbf{R}^{\top}` once, both in CSR, and its
products use a custom autograd function whose backward multiplies with the
*stored* other matrix: nothing is transposed or re-normalised per step.
"""

import warnings
from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = ["BipartiteAdjacency", "gather_csr_rows", "ptr_to_index"]

_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_BACKENDS = ("auto", "csr", "coo")


def _check_index(index: Tensor, num: int, name: str, where: str) -> None:
    r"""Raises a :class:`ValueError` naming the first entry of :obj:`index`
    outside :math:`[0, \textrm{num})`. Costs one device synchronisation."""
    if not isinstance(index, Tensor) or index.dtype not in _INT_DTYPES:
        dtype = index.dtype if isinstance(index, Tensor) else type(index).__name__
        raise ValueError(f"'{name}' must be an integer tensor in '{where}' (got {dtype})")
    if index.dim() != 1:
        raise ValueError(
            f"'{name}' must be one-dimensional in '{where}' (got shape {tuple(index.shape)})"
        )
    if index.numel() == 0:
        return
    low, high = torch.stack([index.min(), index.max()]).tolist()
    if low < 0 or high >= num:
        bad = index[(index < 0) | (index >= num)][0].item()
        raise ValueError(
            f"'{name}' contains the index {bad}, which is out of range [0, {num}) in '{where}'"
        )


def gather_csr_rows(rowptr: Tensor, index: Tensor) -> Tuple[Tensor, Tensor]:
    r"""Vectorised gather of the entries of several CSR rows.

    Args:
        rowptr (torch.Tensor): The CSR row pointer :math:`[N + 1]`.
        index (torch.Tensor): The rows to gather :math:`[B]` (may repeat).

    Returns:
        :obj:`(entry, segment)`, both :math:`[\sum_b \deg(\textrm{index}_b)]`:
        the positions of the entries in the CSR arrays, and for each the
        position :math:`b` in :obj:`index` it belongs to.
    """
    start = rowptr[index]
    count = rowptr[index + 1] - start
    end = torch.cumsum(count, 0)
    total = int(end[-1]) if end.numel() > 0 else 0
    segment = ptr_to_index(torch.cat([end.new_zeros(1), end]), total)
    entry = torch.arange(total, device=rowptr.device) + (start - (end - count))[segment]
    return entry, segment


def ptr_to_index(ptr: Tensor, numel: Optional[int] = None) -> Tensor:
    r"""Expands a pointer vector :math:`[N + 1]` into the row of every entry.

    A scatter of row starts and a cumulative sum, :math:`\mathcal{O}(\textrm{numel})`,
    rather than :func:`torch.repeat_interleave`, whose CPU kernel splits even tiny
    inputs across threads and stalls for milliseconds when cores are busy.
    """
    if numel is None:
        numel = int(ptr[-1])
    # O(numel): +1 at every row start (empty rows stack up), then a running sum.
    marks = torch.zeros(numel + 1, dtype=ptr.dtype, device=ptr.device)
    marks.index_add_(0, ptr[1:-1], torch.ones_like(ptr[1:-1]))
    return torch.cumsum(marks[:numel], 0)


class _CSR:
    r"""A CSR matrix held as plain tensors, with a lazily built
    :obj:`torch.sparse_csr` view and COO row index (device fallback)."""

    def __init__(self, rowptr: Tensor, col: Tensor, value: Tensor, size: Tuple[int, int]):
        if col.numel() < 2**31 - 1:
            # 32-bit indices: half the memory, and what MKL / cuSPARSE use natively (int64
            # indices would be converted at every product).
            rowptr, col = rowptr.int(), col.int()
        self.rowptr, self.col, self.value, self.size = rowptr, col, value, size
        self._row: Optional[Tensor] = None
        self._csr: Optional[Tensor] = None
        self.csr_ok: Optional[bool] = None  # unknown until the first product

    def __getstate__(self) -> dict:
        # torch.sparse_csr tensors cannot be deep-copied or pickled; rebuilt lazily.
        return {**self.__dict__, "_csr": None}

    @property
    def row(self) -> Tensor:
        if self._row is None:
            self._row = ptr_to_index(self.rowptr, self.col.numel())
        return self._row

    def sparse_csr(self) -> Tensor:
        if self._csr is None:
            rowptr, col = self.rowptr, self.col
            with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
                warnings.simplefilter("ignore", UserWarning)
                self._csr = torch.sparse_csr_tensor(
                    rowptr, col, self.value, self.size, check_invariants=False
                )
        return self._csr

    def _csr_matmul(self, x: Tensor) -> Tensor:
        csr = self.sparse_csr()
        recording = torch.is_grad_enabled() and (x.requires_grad or self.value.requires_grad)
        if self.value.device.type == "cpu" and x.dim() == 2 and not recording:
            # addmm into a fresh buffer with beta=0: no zero-fill and no result copy (about
            # 25% faster than torch.sparse.mm on CPU); beta=0 never reads the buffer.
            out = torch.empty(self.size[0], x.size(1), dtype=x.dtype, device=x.device)
            return torch.addmm(out, csr, x, beta=0, out=out)
        return torch.sparse.mm(csr, x)

    def matmul(self, x: Tensor, backend: str) -> Tensor:
        if backend != "coo" and self.csr_ok is not False:
            try:
                out = self._csr_matmul(x)
                self.csr_ok = True
                return out
            except torch.cuda.OutOfMemoryError:
                raise
            except (RuntimeError, NotImplementedError):
                if backend == "csr":
                    raise
                self.csr_ok = False  # e.g. MPS: use the gather + index_add_ path
        out = x.new_zeros(self.size[0], x.size(-1))
        return out.index_add_(0, self.row, x.index_select(0, self.col) * self.value.unsqueeze(-1))

    def masked(self, mask: Tensor, scale: float) -> "_CSR":
        r"""Keeps the entries where :obj:`mask` holds, with values scaled."""
        kept = torch.cat([mask.new_zeros(1, dtype=torch.long), mask.cumsum(0)])
        return _CSR(kept[self.rowptr], self.col[mask], self.value[mask] * scale, self.size)

    def to(self, device: Optional[torch.device], dtype: Optional[torch.dtype]) -> "_CSR":
        return _CSR(
            self.rowptr.to(device),
            self.col.to(device),
            self.value.to(device=device, dtype=dtype),
            self.size,
        )


class _Operator:
    r"""A sparse matrix paired with its stored transpose (used backward)."""

    def __init__(self, fwd: _CSR, bwd: _CSR, backend: str):
        self.fwd, self.bwd, self.backend = fwd, bwd, backend

    def t(self) -> "_Operator":
        return _Operator(self.bwd, self.fwd, self.backend)


class _SparseMatmul(torch.autograd.Function):
    r""":math:`\mathbf{Y} = \mathbf{M} \mathbf{X}`, backward
    :math:`\mathbf{M}^{\top} \mathbf{G}` with the stored transpose."""

    @staticmethod
    def forward(ctx, x: Tensor, op: _Operator) -> Tensor:  # type: ignore[override]
        ctx.op = op
        return op.fwd.matmul(x, op.backend)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> Tuple[Optional[Tensor], None]:  # type: ignore[override]
        if not ctx.needs_input_grad[0]:
            return None, None
        # Going through the function again keeps double backward exact.
        return _SparseMatmul.apply(grad_out.contiguous(), ctx.op.t()), None


class BipartiteAdjacency:
    r"""The normalised user-item matrix :math:`\mathbf{R} =
    \mathbf{D}_u^{-1/2} \mathbf{A} \mathbf{D}_i^{-1/2}` of LightGCN
    (`"LightGCN: Simplifying and Powering Graph Convolution Network for
    Recommendation" <https://arxiv.org/abs/2002.02126>`_), together with
    :math:`\mathbf{R}^{\top}`, both in CSR and built once in
    :math:`\mathcal{O}(|\mathcal{E}|)` memory.

    .. math::
        R_{u,i} = \frac{w_{u,i}}{\sqrt{d_u d_i}}, \qquad
        d_u = \sum_i w_{u,i}, \quad d_i = \sum_u w_{u,i}

    Users or items without edges (or with total weight zero) get a zero row
    and column, never :obj:`NaN`. Duplicate edges are summed into one entry
    whose weight is the sum of theirs (exactly what message passing over the
    duplicated :obj:`edge_index` computes); the data layer de-duplicates.

    The products (:meth:`user_update`, :meth:`item_update`, :meth:`propagate`)
    are differentiable with respect to the dense input; their backward uses
    the stored other matrix. Where :obj:`torch.sparse.mm` on CSR is not
    supported (*e.g.*, on MPS), a gather + :meth:`~torch.Tensor.index_add_`
    path with identical results is used.

    Args:
        edge_index (torch.Tensor): Bipartite edges :math:`[2, |\mathcal{E}|]`,
            row 0 user indices, row 1 item indices.
        num_users (int): The number of users :math:`U`.
        num_items (int): The number of items :math:`I`.
        edge_weight (torch.Tensor, optional): Non-negative edge weights
            :math:`[|\mathcal{E}|]`. (default: :obj:`None`, all ones)
        backend (str, optional): :obj:`"csr"` (:obj:`torch.sparse.mm`),
            :obj:`"coo"` (gather + :obj:`index_add_`), or :obj:`"auto"`
            (CSR, falling back to COO where unsupported; COO on MPS).
            (default: :obj:`"auto"`)
        dtype (torch.dtype, optional): The dtype of the normalised values (they are computed in
            float64, then cast once). (default: :obj:`None`: the floating dtype of
            :obj:`edge_weight`, else :func:`torch.get_default_dtype`)

    Example:
        >>> edge_index = torch.tensor([[0, 0, 1], [0, 2, 1]])
        >>> adj = BipartiteAdjacency(edge_index, num_users=2, num_items=3)
        >>> x_user, x_item = torch.randn(2, 8), torch.randn(3, 8)
        >>> x_user, x_item = adj.propagate(x_user, x_item)  # one layer
    """

    def __init__(
        self,
        edge_index: Tensor,
        num_users: int,
        num_items: int,
        edge_weight: Optional[Tensor] = None,
        *,
        backend: str = "auto",
        dtype: Optional[torch.dtype] = None,
    ):
        name = "BipartiteAdjacency"
        for arg, num in (("num_users", num_users), ("num_items", num_items)):
            if isinstance(num, bool) or not isinstance(num, int) or num <= 0:
                raise ValueError(f"'{arg}' must be a positive integer in '{name}' (got {num!r})")
        if backend not in _BACKENDS:
            raise ValueError(f"'backend' must be one of {_BACKENDS} in '{name}' (got {backend!r})")
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ValueError(f"'dtype' must be a floating torch.dtype in '{name}' (got {dtype!r})")
        if not isinstance(edge_index, Tensor) or edge_index.dtype not in _INT_DTYPES:
            raise ValueError(f"'edge_index' must be an integer tensor in '{name}'")
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(
                f"'edge_index' must have shape [2, num_edges] in '{name}' "
                f"(got {tuple(edge_index.shape)})"
            )
        user, item = edge_index[0].long(), edge_index[1].long()
        _check_index(user, num_users, "edge_index[0]", name)
        _check_index(item, num_items, "edge_index[1]", name)
        target = edge_index.device
        # MPS lacks float64 and some integer kernels: build on the CPU, then move.
        device = torch.device("cpu") if target.type == "mps" else target
        user, item = user.to(device), item.to(device)
        work = torch.float64
        value_dtype = dtype if dtype is not None else torch.get_default_dtype()
        if edge_weight is None:
            weight = torch.ones(user.numel(), dtype=work, device=device)
        else:
            if not isinstance(edge_weight, Tensor) or edge_weight.shape != user.shape:
                shape = tuple(edge_weight.shape) if isinstance(edge_weight, Tensor) else None
                raise ValueError(
                    f"'edge_weight' must be a tensor of shape [{user.numel()}] in '{name}' "
                    f"(got {shape})"
                )
            if dtype is None and edge_weight.is_floating_point():
                value_dtype = edge_weight.dtype
            weight = edge_weight.to(device=device, dtype=work)
            bad = ~torch.isfinite(weight) | (weight < 0)
            if bool(bad.any()):
                raise ValueError(
                    f"'edge_weight' must be finite and non-negative in '{name}' "
                    f"(got {weight[bad][0].item()})"
                )

        deg_user = weight.new_zeros(num_users).index_add_(0, user, weight)
        deg_item = weight.new_zeros(num_items).index_add_(0, item, weight)
        value = _inv_sqrt(deg_user)[user] * weight * _inv_sqrt(deg_item)[item]

        # Coalesce (sums duplicates) and sort row-major: R in CSR.
        key, inverse = torch.unique(user * num_items + item, sorted=True, return_inverse=True)
        value = value.new_zeros(key.numel()).index_add_(0, inverse, value).to(value_dtype)
        user, item = key // num_items, key % num_items
        rowptr = _counts_to_ptr(torch.bincount(user, minlength=num_users))
        r = _CSR(rowptr, item, value, (num_users, num_items))
        # R^T in CSR: the same entries sorted by (item, user).
        t_to_r = torch.argsort(item * num_users + user)  # kept for edge dropout
        rowptr_t = _counts_to_ptr(torch.bincount(item, minlength=num_items))
        r_t = _CSR(rowptr_t, user[t_to_r], value[t_to_r], (num_items, num_users))
        if t_to_r.numel() < 2**31 - 1:
            t_to_r = t_to_r.int()
        if device != target:
            r, r_t, t_to_r = r.to(target, None), r_t.to(target, None), t_to_r.to(target)
        self._init((r, r_t), (r_t, r), t_to_r, num_users, num_items, backend)

    def _init(
        self,
        user_pair: Tuple[_CSR, _CSR],
        item_pair: Tuple[_CSR, _CSR],
        t_to_r: Optional[Tensor],
        num_users: int,
        num_items: int,
        backend: str,
    ) -> None:
        # `user_pair` maps items to users (R, its transpose used backward),
        # `item_pair` users to items; they differ only on dropped copies.
        self.num_users, self.num_items, self.backend = num_users, num_items, backend
        if backend == "auto" and user_pair[0].rowptr.device.type == "mps":
            backend = "coo"  # MPS lacks CSR @ dense
        self._user_op = _Operator(*user_pair, backend)
        self._item_op = _Operator(*item_pair, backend)
        self._t_to_r = t_to_r  # R^T entry -> R entry (None on dropped copies)
        self._r_to_t: Optional[Tensor] = None

    @classmethod
    def _from_parts(cls, *args) -> "BipartiteAdjacency":
        out = cls.__new__(cls)
        out._init(*args)
        return out

    @property
    def num_edges(self) -> int:
        r"""The number of stored (de-duplicated) entries of :math:`\mathbf{R}`."""
        return self._user_op.fwd.col.numel()

    @property
    def device(self) -> torch.device:
        r"""The device holding the matrices."""
        return self._user_op.fwd.value.device

    @property
    def dtype(self) -> torch.dtype:
        r"""The dtype of the normalised values (inputs must match it)."""
        return self._user_op.fwd.value.dtype

    @property
    def rowptr(self) -> Tensor:
        r"""CSR row pointer of :math:`\mathbf{R}` :math:`[U + 1]`."""
        return self._user_op.fwd.rowptr

    @property
    def col(self) -> Tensor:
        r"""Item index of each entry of :math:`\mathbf{R}`, sorted per user."""
        return self._user_op.fwd.col

    @property
    def value(self) -> Tensor:
        r"""Normalised value of each entry of :math:`\mathbf{R}`."""
        return self._user_op.fwd.value

    @property
    def adj(self) -> Tensor:
        r""":math:`\mathbf{R}` as a :obj:`torch.sparse_csr` tensor :math:`[U, I]`."""
        return self._user_op.fwd.sparse_csr()

    @property
    def adj_t(self) -> Tensor:
        r""":math:`\mathbf{R}^{\top}` as a :obj:`torch.sparse_csr` tensor :math:`[I, U]`."""
        return self._item_op.fwd.sparse_csr()

    def to_dense(self) -> Tensor:
        r"""Returns :math:`\mathbf{R}` as a dense :math:`[U, I]` matrix (tests, tiny graphs)."""
        r = self._user_op.fwd
        out = r.value.new_zeros(r.size)
        return out.index_put_((r.row, r.col), r.value, accumulate=True)

    def to(
        self, device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None
    ) -> "BipartiteAdjacency":
        r"""Returns a copy on :obj:`device` with values of :obj:`dtype`."""
        moved = {}  # keeps shared matrices shared

        def move(m: _CSR) -> _CSR:
            if id(m) not in moved:
                moved[id(m)] = m.to(device, dtype)
            return moved[id(m)]

        user_pair = (move(self._user_op.fwd), move(self._user_op.bwd))
        item_pair = (move(self._item_op.fwd), move(self._item_op.bwd))
        t_to_r = None if self._t_to_r is None else self._t_to_r.to(device)
        return self._from_parts(
            user_pair, item_pair, t_to_r, self.num_users, self.num_items, self.backend
        )

    def _check_dense(self, x: Tensor, num: int, name: str) -> None:
        if x.dim() != 2 or x.size(0) != num:
            raise ValueError(
                f"'{name}' must have shape [{num}, channels] in 'BipartiteAdjacency' "
                f"(got {tuple(x.shape)})"
            )
        if x.dtype != self.dtype or x.device != self.device:
            raise ValueError(
                f"'{name}' ({x.dtype}, {x.device}) does not match the adjacency "
                f"({self.dtype}, {self.device}) in 'BipartiteAdjacency'; use '.to()'"
            )

    def user_update(self, x_item: Tensor) -> Tensor:
        r"""Returns :math:`\mathbf{R} \mathbf{X}_{item}` :math:`[U, F]`."""
        self._check_dense(x_item, self.num_items, "x_item")
        return _SparseMatmul.apply(x_item, self._user_op)

    def item_update(self, x_user: Tensor) -> Tensor:
        r"""Returns :math:`\mathbf{R}^{\top} \mathbf{X}_{user}` :math:`[I, F]`."""
        self._check_dense(x_user, self.num_users, "x_user")
        return _SparseMatmul.apply(x_user, self._item_op)

    def propagate(self, x_user: Tensor, x_item: Tensor) -> Tuple[Tensor, Tensor]:
        r"""One LightGCN layer: :math:`(\mathbf{R} \mathbf{X}_{item},
        \mathbf{R}^{\top} \mathbf{X}_{user})`."""
        return self.user_update(x_item), self.item_update(x_user)

    def user_items(self, user_index: Tensor) -> Tuple[Tensor, Tensor]:
        r"""The items of the given users, as :obj:`(position, item)` pairs
        where :obj:`position` indexes :obj:`user_index`."""
        entry, segment = gather_csr_rows(self.rowptr, user_index)
        return segment, self.col[entry]

    def dropout(
        self, keep_prob: float, generator: Optional[torch.Generator] = None
    ) -> "BipartiteAdjacency":
        r"""Edge dropout as in the official LightGCN port: every non-zero of
        the symmetric adjacency (so :math:`(u, i)` in :math:`\mathbf{R}` and
        :math:`(i, u)` in :math:`\mathbf{R}^{\top}` independently) is kept
        with probability :obj:`keep_prob` and divided by it. Returns a new
        adjacency whose products and gradients are exact for the sampled
        matrices (dropped entries are removed, not zeroed)."""
        if not 0.0 < keep_prob <= 1.0:
            raise ValueError(
                f"'keep_prob' must be in (0, 1] in 'BipartiteAdjacency.dropout' (got {keep_prob})"
            )
        if keep_prob == 1.0:
            return self
        if self._t_to_r is None:
            raise ValueError("'BipartiteAdjacency.dropout' cannot be applied to a dropped copy")
        if self._r_to_t is None:
            self._r_to_t = torch.empty_like(self._t_to_r)
            self._r_to_t[self._t_to_r] = torch.arange(
                self.num_edges, device=self.device, dtype=self._t_to_r.dtype
            )
        r, r_t, scale = self._user_op.fwd, self._user_op.bwd, 1.0 / keep_prob
        keep_r = torch.rand(self.num_edges, device=self.device, generator=generator) < keep_prob
        keep_t = torch.rand(self.num_edges, device=self.device, generator=generator) < keep_prob
        user_pair = (r.masked(keep_r, scale), r_t.masked(keep_r[self._t_to_r], scale))
        item_pair = (r_t.masked(keep_t, scale), r.masked(keep_t[self._r_to_t], scale))
        return self._from_parts(
            user_pair, item_pair, None, self.num_users, self.num_items, self.backend
        )

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_users={self.num_users}, num_items={self.num_items}, "
            f"num_edges={self.num_edges}, device={self.device}, dtype={self.dtype})"
        )


def _inv_sqrt(deg: Tensor) -> Tensor:
    return torch.where(deg > 0, deg.rsqrt(), torch.zeros_like(deg))


def _counts_to_ptr(count: Tensor) -> Tensor:
    return torch.cat([count.new_zeros(1), torch.cumsum(count, 0)])
