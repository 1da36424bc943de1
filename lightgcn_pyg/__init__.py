"""lightgcn_pyg: faithful, fast LightGCN recommenders on PyTorch Geometric."""

__version__ = "0.1.0"
