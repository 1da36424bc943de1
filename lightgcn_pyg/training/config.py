"""Training configuration: the one place where hyperparameters and their defaults live."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Tuple

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
        self.ks = tuple(int(k) for k in self.ks)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ValueError` naming the first invalid field."""
        positive_ints = ("embedding_dim", "batch_size", "epochs", "num_neg", "eval_every")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(
                    f"'{name}' must be a positive integer in 'TrainConfig' (got {value!r})"
                )
        if not isinstance(self.num_layers, int) or self.num_layers < 0:
            raise ValueError(
                f"'num_layers' must be a non-negative integer in 'TrainConfig' (got {self.num_layers!r})"
            )
        if not isinstance(self.patience, int) or self.patience < 0:
            raise ValueError(
                f"'patience' must be a non-negative integer in 'TrainConfig' (got {self.patience!r})"
            )
        if not self.lr > 0:
            raise ValueError(f"'lr' must be positive in 'TrainConfig' (got {self.lr!r})")
        if not self.reg >= 0:
            raise ValueError(f"'reg' must be non-negative in 'TrainConfig' (got {self.reg!r})")
        if not 0.0 < self.keep_prob <= 1.0:
            raise ValueError(
                f"'keep_prob' must be in (0, 1] in 'TrainConfig' (got {self.keep_prob!r})"
            )
        if self.init not in INITS:
            raise ValueError(f"'init' must be one of {INITS} in 'TrainConfig' (got {self.init!r})")
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(
                f"'sampling' must be one of {SAMPLING_MODES} in 'TrainConfig' (got {self.sampling!r})"
            )
        if not self.ks or any(k <= 0 for k in self.ks):
            raise ValueError(f"'ks' must be positive integers in 'TrainConfig' (got {self.ks!r})")
        name, _, k = self.metric.partition("@")
        if not k.isdigit() or int(k) not in self.ks:
            raise ValueError(
                f"'metric' must look like 'recall@20' with its K among 'ks' {self.ks} in "
                f"'TrainConfig' (got {self.metric!r})"
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
            values["ks"] = tuple(ks) if isinstance(ks, (list, tuple)) else (int(ks),)
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
                f"Config file '{path}' is YAML but PyYAML is not installed "
                "(pip install 'lightgcn_pyg[yaml]')"
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
