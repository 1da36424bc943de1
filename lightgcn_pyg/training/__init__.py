"""Training: configuration, trainer, checkpoints, early stopping, TensorBoard logging."""

from lightgcn_pyg.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lightgcn_pyg.training.config import PAPER_RESULTS, TrainConfig, read_config_file
from lightgcn_pyg.training.early_stopping import EarlyStopping
from lightgcn_pyg.training.restore import RestoredRun, restore
from lightgcn_pyg.training.trainer import Trainer, TrainingDivergedError, TrainResult

__all__ = [
    "CheckpointError",
    "EarlyStopping",
    "PAPER_RESULTS",
    "RestoredRun",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDivergedError",
    "load_checkpoint",
    "read_config_file",
    "restore",
    "save_checkpoint",
]
