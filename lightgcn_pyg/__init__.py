"""lightgcn_pyg: faithful, fast LightGCN recommenders on PyTorch Geometric.

LightGCN: He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020 (https://arxiv.org/abs/2002.02126).
"""

__version__ = "0.1.0"

from lightgcn_pyg.data import InteractionSet, load_dataset  # noqa: E402
from lightgcn_pyg.evaluation import EvalResult, Evaluator  # noqa: E402
from lightgcn_pyg.loss import bpr_loss, embedding_l2_loss  # noqa: E402
from lightgcn_pyg.nn import LightGCN, LightGCNConv  # noqa: E402
from lightgcn_pyg.sampling import BPRSampler, TripletBatch  # noqa: E402
from lightgcn_pyg.training import TrainConfig, Trainer, TrainResult  # noqa: E402

__all__ = [
    "__version__",
    "BPRSampler",
    "EvalResult",
    "Evaluator",
    "InteractionSet",
    "LightGCN",
    "LightGCNConv",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TripletBatch",
    "bpr_loss",
    "embedding_l2_loss",
    "load_dataset",
]
