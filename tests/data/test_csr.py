import pytest
import torch

from lightgcn_pyg.data import to_csr


def reference_csr(edge_index, num_rows):
    rows = [sorted(edge_index[1, edge_index[0] == r].tolist()) for r in range(num_rows)]
    rowptr = [0]
    for cols in rows:
        rowptr.append(rowptr[-1] + len(cols))
    return rowptr, [c for cols in rows for c in cols]


@pytest.mark.parametrize("num_rows", [1, 7, 12])
@pytest.mark.parametrize("num_edges", [0, 1, 30])
def test_to_csr_matches_reference(num_rows, num_edges):
    gen = torch.Generator().manual_seed(num_rows * 100 + num_edges)
    edge_index = torch.stack(
        [
            torch.randint(0, num_rows, (num_edges,), generator=gen),
            torch.randint(0, 9, (num_edges,), generator=gen),
        ]
    )
    rowptr, col = to_csr(edge_index, num_rows)
    ref_rowptr, ref_col = reference_csr(edge_index, num_rows)
    assert rowptr.dtype == col.dtype == torch.long
    assert rowptr.tolist() == ref_rowptr
    assert col.tolist() == ref_col


def test_to_csr_sorts_columns_and_keeps_duplicates():
    edge_index = torch.tensor([[2, 0, 2, 2, 0], [5, 3, 1, 5, 0]])
    rowptr, col = to_csr(edge_index, 4)
    assert rowptr.tolist() == [0, 2, 2, 5, 5]
    assert col.tolist() == [0, 3, 1, 5, 5]


def test_to_csr_int32_input_and_overflow_fallback():
    rowptr, col = to_csr(torch.tensor([[1, 0], [4, 2]], dtype=torch.int32), 2)
    assert rowptr.tolist() == [0, 1, 2] and col.tolist() == [2, 4]
    # Columns so large that row * num_cols + col overflows int64: the two-sort path.
    big = 2**62
    edge_index = torch.tensor([[1, 0, 1, 0], [big, 5, 3, big + 1]])
    rowptr, col = to_csr(edge_index, 2)
    assert rowptr.tolist() == [0, 2, 4]
    assert col.tolist() == [5, big + 1, 3, big]


@pytest.mark.parametrize(
    "edge_index, num_rows, match",
    [
        (torch.zeros(3, 2, dtype=torch.long), 2, r"shape \[2, E\].*got \[3, 2\]"),
        (torch.zeros(2, 2), 2, "must hold integers"),
        (torch.tensor([[0, 3], [0, 0]]), 3, r"\[0, 3\).*got 3"),
        (torch.tensor([[-1], [0]]), 3, r"got -1"),
        (torch.tensor([[0], [-2]]), 3, r"non-negative.*got -2"),
        (torch.tensor([[0], [0]]), -1, "'num_rows'.*got -1"),
        ([[0], [0]], 1, "must be a tensor"),
    ],
)
def test_to_csr_errors(edge_index, num_rows, match):
    with pytest.raises(ValueError, match=match):
        to_csr(edge_index, num_rows)
