"""``lightgcn train``: train LightGCN on a named dataset or on interaction files."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Dict, NoReturn, Optional, TypeVar

import click

from lightgcn_pyg.cli.common import clean_errors, echo_json, err
from lightgcn_pyg.cli.data_options import data_options, load_interactions_from_options
from lightgcn_pyg.training.checkpoint import LAST, load_checkpoint
from lightgcn_pyg.training.config import (
    INITS,
    PAPER_RESULTS,
    SAMPLING_MODES,
    TrainConfig,
    read_config_file,
)

F = TypeVar("F", bound=Callable[..., Any])
_DEFAULTS = TrainConfig()

# (option, config field, click kwargs). Defaults are None so that a value given in a config file
# is only overridden by an option the user actually typed.
_TRAIN_OPTIONS = [
    ("--dim", "embedding_dim", dict(type=click.IntRange(min=1), help="Embedding size.")),
    (
        "--layers",
        "num_layers",
        dict(type=click.IntRange(min=0), help="Propagation layers (0: MF)."),
    ),
    ("--lr", "lr", dict(type=float, help="Adam learning rate.")),
    ("--batch-size", "batch_size", dict(type=click.IntRange(min=1), help="Global BPR batch size.")),
    ("--reg", "reg", dict(type=float, help="L2 coefficient on the batch's layer-0 embeddings.")),
    ("--epochs", "epochs", dict(type=click.IntRange(min=1), help="Maximum number of epochs.")),
    (
        "--init",
        "init",
        dict(type=click.Choice(INITS), help="xavier (paper) or normal (official port)."),
    ),
    ("--init-std", "init_std", dict(type=float, help="Std of the normal initialisation.")),
    (
        "--sampling",
        "sampling",
        dict(type=click.Choice(SAMPLING_MODES), help="user (official LightGCN) or interaction."),
    ),
    ("--num-neg", "num_neg", dict(type=click.IntRange(min=1), help="Negatives per positive.")),
    ("--keep-prob", "keep_prob", dict(type=float, help="Edge keep probability (1: no dropout).")),
    (
        "--learnable-weights/--mean-weights",
        "learnable_weights",
        dict(default=None, help="Learn the layer weights instead of the mean of layers 0..K."),
    ),
    (
        "--eval-every",
        "eval_every",
        dict(type=click.IntRange(min=1), help="Evaluate every N epochs."),
    ),
    ("--k", "ks", dict(type=click.IntRange(min=1), multiple=True, help="Cut-off K (repeatable).")),
    ("--metric", "metric", dict(help="Early-stopping metric, e.g. recall@20.")),
    ("--patience", "patience", dict(type=click.IntRange(min=0), help="Evaluations without gain.")),
    ("--seed", "seed", dict(type=int, help="Seed of initialisation and sampling.")),
    ("--device", "device", dict(help="auto (CUDA, MPS, CPU), cpu, cuda, cuda:N or mps.")),
    (
        "--eval-memory-mb",
        "eval_memory_mb",
        dict(type=float, help="Memory budget of one eval chunk."),
    ),
    ("--progress/--no-progress", "progress", dict(default=None, help="tqdm progress bars.")),
    ("--tensorboard/--no-tensorboard", "tensorboard", dict(default=None, help="TensorBoard logs.")),
]

#: Config-file keys spelled as the command-line flags ('dim', 'layers', 'k'), to config fields.
FLAG_FIELDS = {
    flag.split("/")[0].lstrip("-").replace("-", "_"): field for flag, field, _ in _TRAIN_OPTIONS
}


def train_options(func: F) -> F:
    """Add one option per :class:`TrainConfig` field (help shows the config default)."""
    for flag, field, kwargs in reversed(_TRAIN_OPTIONS):
        kwargs = dict(kwargs)
        default = getattr(_DEFAULTS, field)
        kwargs["help"] = f"{kwargs['help']} [default: {default}]"
        kwargs.setdefault("default", None)
        func = click.option(flag, field, **kwargs)(func)
    return func


def build_config(
    cli_values: Dict[str, Any], config_file: Optional[Path], base: Optional[Dict[str, Any]] = None
) -> TrainConfig:
    """Merge, lowest priority first: TrainConfig defaults, ``base``, the config file, CLI flags.

    Config-file keys are :class:`TrainConfig` field names or the flags' names (``dim``,
    ``batch-size``, ``k``); a scalar ``k`` / ``ks`` is one cut-off.
    """
    values: Dict[str, Any] = dict(base or {})
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    if config_file is not None:
        file_values: Dict[str, Any] = {}
        for key, value in read_config_file(config_file).items():
            field = FLAG_FIELDS.get(key, key)  # 'dim' as on the command line, or 'embedding_dim'
            if field in file_values:
                raise ValueError(f"Option '{field}' is given twice in config file '{config_file}'")
            file_values[field] = value
        unknown = sorted(set(file_values) - fields)
        if unknown:
            raise ValueError(f"Unknown option(s) {unknown} in config file '{config_file}'")
        values.update(file_values)
    for key, value in cli_values.items():
        if value is None or (key == "ks" and not value):
            continue
        values[key] = value
    if "ks" in values and "metric" not in values:
        # '--k 50' alone: keep the default metric's name with the first requested K.
        name = _DEFAULTS.metric.split("@")[0]
        ks = values["ks"] if isinstance(values["ks"], (list, tuple)) else [values["ks"]]
        if _DEFAULTS.metric not in {f"{name}@{k}" for k in ks}:
            values["metric"] = f"{name}@{ks[0]}"
    return TrainConfig.from_dict(values)


def run_training(
    data, config: TrainConfig, out: Path, resume: bool, as_json: bool, distributed: bool = False
) -> Dict[str, Any]:
    """Train, print progress on stderr, and print the final test metrics (a table, or JSON)."""
    from lightgcn_pyg.training.trainer import Trainer, TrainingDivergedError

    try:
        if distributed:
            from lightgcn_pyg.distributed import run_distributed_training

            result = run_distributed_training(data, config, out, resume=resume)
            if result is None:  # not rank 0
                return {}
        else:
            result = Trainer(data, config, out_dir=out).fit(resume=resume)
    except TrainingDivergedError as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        # A Ctrl-C before the trainer's handler is installed, or a second one.
        _report_interrupt(out)
    if result.interrupted:
        _report_interrupt(out)
    metrics = dict(result.test_metrics)
    if as_json:
        echo_json(metrics)
    else:
        click.echo(format_results(metrics, getattr(data, "name", None), result.best_epoch))
    return metrics


def _report_interrupt(out: Path) -> NoReturn:
    if (out / LAST).exists():
        err(f"Interrupted: the last checkpoint is {out / LAST}; continue with --resume")
    else:
        err("Interrupted before the first checkpoint was written; nothing to resume")
    raise SystemExit(130)


def format_results(metrics: Dict[str, Any], dataset: Optional[str], best_epoch: int) -> str:
    """A table of the test metrics, with the paper's numbers beside ours when known."""
    paper = PAPER_RESULTS.get(dataset or "", {})
    lines = [
        f"Test metrics of the best model (epoch {best_epoch}), {metrics.get('num_users')} users"
    ]
    lines.append(f"{'metric':<14}{'ours':>10}" + (f"{'paper':>10}" if paper else ""))
    for key, value in metrics.items():
        if "@" not in key:
            continue
        ref = paper.get(key)
        shown = (f"{ref:.4f}" if ref is not None else "-") if paper else ""
        lines.append(f"{key:<14}{value:>10.4f}{shown:>10}".rstrip())
    return "\n".join(lines)


@click.command("train")
@data_options
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML or JSON file of training options; flags given on the command line override it.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/lightgcn"),
    show_default=True,
    help="Folder for best.pt, last.pt and TensorBoard logs (tb/).",
)
@click.option("--resume", is_flag=True, help="Continue from <out>/last.pt.")
@click.option("--distributed", is_flag=True, help="Data-parallel training under torchrun (DDP).")
@click.option("--json", "as_json", is_flag=True, help="Print the final test metrics as JSON.")
@train_options
@clean_errors
def train(
    config_file: Optional[Path],
    out: Path,
    resume: bool,
    distributed: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Train LightGCN with BPR; evaluates periodically and keeps the best model.

    Data: --dataset NAME (gowalla, yelp2018, amazon-book) or --train/--test files. Without a
    validation split, model selection and early stopping use the test split (the log says so).
    """
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    cli_values = {k: v for k, v in kwargs.items() if k in fields}
    data_kwargs = {k: v for k, v in kwargs.items() if k not in fields}
    base = None
    if resume and (out / LAST).exists():
        base = load_checkpoint(out / LAST)["config"]
    config = build_config(cli_values, config_file, base=base)
    data = load_interactions_from_options(**data_kwargs)
    run_training(data, config, out, resume=resume, as_json=as_json, distributed=distributed)
