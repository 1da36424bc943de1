"""TensorBoard tags, spelled once."""

TRAIN_LOSS = "train/loss"
TRAIN_BPR_LOSS = "train/bpr_loss"
TRAIN_REG_LOSS = "train/reg_loss"
EPOCH_TIME = "time/epoch_s"
SAMPLING_TIME = "time/sampling_s"
EVAL_TIME = "time/eval_s"


def metric_tag(split: str, key: str) -> str:
    """Tag of one evaluation metric, e.g. ``metric_tag("test", "recall@20") == "test/recall@20"``."""
    return f"{split}/{key}"
