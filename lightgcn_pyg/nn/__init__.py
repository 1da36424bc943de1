"""LightGCN operators: the graph convolution, the normalised bipartite adjacency and the model."""

from lightgcn_pyg.nn.lightgcn import LightGCN
from lightgcn_pyg.nn.lightgcn_conv import LightGCNConv, lightgcn_norm
from lightgcn_pyg.nn.propagation import BipartiteAdjacency, gather_csr_rows

__all__ = [
    "LightGCNConv",
    "lightgcn_norm",
    "BipartiteAdjacency",
    "gather_csr_rows",
    "LightGCN",
]
