"""Full-ranking evaluation: vectorised top-K metrics and the chunked evaluator."""

from lightgcn_pyg.evaluation.evaluator import (
    COLD_USER_POLICIES,
    EvalResult,
    Evaluator,
    popularity_embeddings,
    popularity_scores,
)
from lightgcn_pyg.evaluation.metrics import (
    ALL_METRICS,
    HIT,
    MAP,
    MRR,
    NDCG,
    PRECISION,
    RECALL,
    metric_key,
    topk_metrics,
)

__all__ = [
    "RECALL",
    "PRECISION",
    "NDCG",
    "HIT",
    "MAP",
    "MRR",
    "ALL_METRICS",
    "COLD_USER_POLICIES",
    "metric_key",
    "topk_metrics",
    "Evaluator",
    "EvalResult",
    "popularity_embeddings",
    "popularity_scores",
]
