"""Training configuration: the one place where hyperparameters and their defaults live."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Tuple

from lightgcn_pyg.evaluation.metrics import ALL_METRICS

#: Reference numbers of the paper (Recall@20, NDCG@20), Table 3 of arXiv 2002.02126.
PAPER_RESULTS: Dict[str, Dict[str, float]] = {
    "gowalla": {"recall@20": 0.1830, "ndcg@20": 0.1554},
    "yelp2018": {"recall@20": 0.0649, "ndcg@20": 0.0530},
    "amazon-book": {"recall@20": 0.0411, "ndcg@20": 0.0315},
}

INITS = ("xavier", "normal")
SAMPLING_MODES = ("user", "interaction")


@dataclass
class TrainConfig:
    r"""Hyperparameters of a LightGCN training run.

    Defaults follow the paper's protocol (see ``DESIGN.md``): embedding size 64, 3 layers, Adam with
    learning rate 1e-3, BPR batches of 2048 triplets, L2 coefficient 1e-4, up to 1000 epochs,
    official (user-uniform) triplet sampling, full-ranking Recall@20 for model selection.

    Args:
        embedding_dim (int): Embedding size. (default: :obj:`64`)
        num_layers (int): Propagation layers :math:`K`; 0 is matrix factorisation. (default: :obj:`3`)
        lr (float): Adam learning rate. (default: :obj:`1e-3`)
        batch_size (int): Global BPR batch size. (default: :obj:`2048`)
        reg (float): L2 coefficient on the batch's layer-0 embeddings. (default: :obj:`1e-4`)
        epochs (int): Maximum number of epochs. (default: :obj:`1000`)
        init (str): ``"xavier"`` (paper) or ``"normal"`` (official PyTorch port). (default: :obj:`"xavier"`)
        init_std (float): Standard deviation of the ``"normal"`` initialisation. (default: :obj:`0.1`)
        sampling (str): ``"user"`` (official) or ``"interaction"``. (default: :obj:`"user"`)
        num_neg (int): Negatives per positive. (default: :obj:`1`)
        keep_prob (float): Edge keep probability for edge dropout; 1 disables it. (default: :obj:`1.0`)
        learnable_weights (bool): Learn the layer-combination weights. (default: :obj:`False`)
        eval_every (int): Evaluate every this many epochs. (default: :obj:`10`)
        ks (tuple of int): Cut-offs reported at evaluation. (default: :obj:`(20,)`)
        metric (str): Metric driving early stopping and ``best.pt``. (default: :obj:`"recall@20"`)
        patience (int): Evaluations without improvement before stopping. (default: :obj:`10`)
        seed (int): Seed of initialisation and sampling. (default: :obj:`2020`)
        device (str): ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``. (default: :obj:`"auto"`)
        eval_memory_mb (float): Memory budget of one evaluation chunk. (default: :obj:`256.0`)
        progress (bool): Show tqdm progress bars. (default: :obj:`True`)
        tensorboard (bool): Write TensorBoard logs into ``<out>/tb``. (default: :obj:`True`)
    """

    embedding_dim: int = 64
    num_layers: int = 3
    lr: float = 1e-3
    batch_size: int = 2048
    reg: float = 1e-4
    epochs: int = 1000
    init: str = "xavier"
    init_std: float = 0.1
    sampling: str = "user"
    num_neg: int = 1
    keep_prob: float = 1.0
    learnable_weights: bool = False
    eval_every: int = 10
    ks: Tuple[int, ...] = (20,)
    metric: str = "recall@20"
    patience: int = 10
    seed: int = 2020
    device: str = "auto"
    eval_memory_mb: float = 256.0
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        self.ks = tuple(self.ks) if isinstance(self.ks, (list, tuple)) else (self.ks,)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ValueError` naming the first invalid field."""
        positive_ints = ("embedding_dim", "batch_size", "epochs", "num_neg", "eval_every")
        for name in positive_ints:
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ValueError(
                    f"'{name}' must be a positive integer in 'TrainConfig' (got {value!r})"
                )
        for name in ("num_layers", "patience", "seed"):
            value = getattr(self, name)
            if not _is_int(value) or (name != "seed" and value < 0):
                kind = "an integer" if name == "seed" else "a non-negative integer"
                raise ValueError(f"'{name}' must be {kind} in 'TrainConfig' (got {value!r})")
        # 'not x > 0' also rejects NaN; infinity would make the first step diverge.
        for name, low_open in (("lr", True), ("reg", False), ("init_std", True)):
            value = getattr(self, name)
            if (
                not _is_number(value)
                or not math.isfinite(value)
                or not (value > 0 if low_open else value >= 0)
            ):
                kind = "positive" if low_open else "non-negative"
                raise ValueError(
                    f"'{name}' must be {kind} and finite in 'TrainConfig' (got {value!r})"
                )
        if not _is_number(self.eval_memory_mb) or not self.eval_memory_mb > 0:
            raise ValueError(
                f"'eval_memory_mb' must be a positive number in 'TrainConfig' "
                f"(got {self.eval_memory_mb!r})"
            )
        if not _is_number(self.keep_prob) or not 0.0 < self.keep_prob <= 1.0:
            raise ValueError(
                f"'keep_prob' must be in (0, 1] in 'TrainConfig' (got {self.keep_prob!r})"
            )
        for name in ("learnable_weights", "progress", "tensorboard"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"'{name}' must be true or false in 'TrainConfig' (got {value!r})")
        if self.init not in INITS:
            raise ValueError(f"'init' must be one of {INITS} in 'TrainConfig' (got {self.init!r})")
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(
                f"'sampling' must be one of {SAMPLING_MODES} in 'TrainConfig' (got {self.sampling!r})"
            )
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(
                f"'device' must be a device name in 'TrainConfig' (got {self.device!r})"
            )
        if not self.ks or not all(_is_int(k) and k > 0 for k in self.ks):
            raise ValueError(f"'ks' must be positive integers in 'TrainConfig' (got {self.ks!r})")
        name, _, k = str(self.metric).partition("@")
        if name not in ALL_METRICS or not k.isdigit() or int(k) not in self.ks:
            raise ValueError(
                f"'metric' must look like 'recall@20' with its name among {ALL_METRICS} and its "
                f"K among 'ks' {self.ks} in 'TrainConfig' (got {self.metric!r})"
            )

    def to_dict(self) -> Dict[str, Any]:
        """A JSON- and ``weights_only``-safe dictionary (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["ks"] = list(self.ks)
        return out

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> TrainConfig:
        """Build a config from a dictionary, rejecting unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown option(s) {unknown} in 'TrainConfig' (known: {sorted(known)})"
            )
        values = dict(values)
        if "ks" in values:
            ks = values["ks"]
            ks = list(ks) if isinstance(ks, (list, tuple)) else [ks]
            if not all(_is_int(k) for k in ks):
                raise ValueError(f"'ks' must be positive integers in 'TrainConfig' (got {ks!r})")
            values["ks"] = tuple(ks)
        for name in _FLOAT_FIELDS:
            # YAML reads '1e-3' (no dot) as a string; accept what float() accepts.
            if isinstance(values.get(name), str):
                try:
                    values[name] = float(values[name])
                except ValueError:
                    raise ValueError(
                        f"'{name}' must be a number in 'TrainConfig' (got {values[name]!r})"
                    ) from None
        return cls(**values)


def read_config_file(path: str | Path) -> Dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or JSON config file into a dictionary.

    Keys may use dashes or underscores (``batch-size`` == ``batch_size``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"Cannot read config file '{path}': {e.strerror}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:  # pragma: no cover - depends on the environment
            raise ValueError(
                f"Config file '{path}' is YAML but PyYAML is not installed (pip install pyyaml)"
            ) from None
        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"Config file '{path}' is not valid YAML: {e}") from None
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"Config file '{path}' is not valid JSON (line {e.lineno}): {e.msg}"
            ) from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(
            f"Config file '{path}' must hold a mapping of options (got {type(values).__name__})"
        )
    return {str(k).replace("-", "_"): v for k, v in values.items()}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_FLOAT_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.type == "float")
