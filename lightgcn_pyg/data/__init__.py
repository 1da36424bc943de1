r"""Interaction data: readers, the validated :class:`InteractionSet`, splits and datasets."""

from lightgcn_pyg.data.csr import to_csr
from lightgcn_pyg.data.datasets import (
    DATA_ROOT_ENV,
    DATASET_STATS,
    DatasetDownloadError,
    DatasetStats,
    load_dataset,
)
from lightgcn_pyg.data.interactions import EDGE_TYPE, ITEM, REV_EDGE_TYPE, USER, InteractionSet
from lightgcn_pyg.data.readers import (
    from_dataframe,
    map_interactions_file,
    read_lightgcn_txt,
    read_table,
)
from lightgcn_pyg.data.report import LoadReport

__all__ = [
    "InteractionSet",
    "LoadReport",
    "read_lightgcn_txt",
    "read_table",
    "from_dataframe",
    "load_dataset",
    "to_csr",
    "map_interactions_file",
    "DATASET_STATS",
    "DatasetStats",
    "DatasetDownloadError",
    "DATA_ROOT_ENV",
    "USER",
    "ITEM",
    "EDGE_TYPE",
    "REV_EDGE_TYPE",
]
