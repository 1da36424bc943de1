"""Training: configuration, trainer, checkpoints, early stopping, TensorBoard logging."""
