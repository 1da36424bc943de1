"""Train LightGCN on the real Gowalla split with the paper's configuration.

    python examples/train_gowalla.py                       # paper configuration, up to 1000 epochs
    python examples/train_gowalla.py --epochs 5 --init normal --eval-every 1   # official-port check

Data: ``--data-root DIR`` (a folder holding ``gowalla/train.txt`` and ``gowalla/test.txt``), else
``$LIGHTGCN_DATA_ROOT``, else ``datasets/gowalla``; missing files are downloaded from the public
LightGCN repository. Progress and per-evaluation metrics go to stderr; the final table (or, with
``--json``, one JSON object with the keys of ``lightgcn eval --json``) goes to stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from lightgcn_pyg.cli.common import clean_errors
from lightgcn_pyg.cli.train_cmd import run_training
from lightgcn_pyg.data import load_dataset
from lightgcn_pyg.training import TrainConfig


@click.command()
@click.option("--epochs", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/gowalla"),
    show_default=True,
    help="Checkpoints (best.pt, last.pt) and TensorBoard logs (tb/).",
)
@click.option(
    "--init",
    type=click.Choice(["xavier", "normal"]),
    default="xavier",
    show_default=True,
    help="xavier (paper) or normal N(0, 0.1) (official PyTorch port).",
)
@click.option(
    "--sampling",
    type=click.Choice(["user", "interaction"]),
    default="user",
    show_default=True,
    help="user: official LightGCN sampling; interaction: every training edge once per epoch.",
)
@click.option("--seed", type=int, default=2020, show_default=True)
@click.option("--eval-every", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from <out>/last.pt.")
@click.option("--distributed", is_flag=True, help="Data-parallel training under torchrun.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the final metrics as one JSON object.")
@clean_errors
def main(
    epochs: int,
    device: str,
    data_root: Optional[Path],
    out: Path,
    init: str,
    sampling: str,
    seed: int,
    eval_every: int,
    resume: bool,
    distributed: bool,
    progress: bool,
    as_json: bool,
) -> None:
    """LightGCN on Gowalla (dim 64, 3 layers, lr 1e-3, batch 2048, reg 1e-4), vs the paper."""
    config = TrainConfig(
        epochs=epochs,
        device=device,
        init=init,
        sampling=sampling,
        seed=seed,
        eval_every=eval_every,
        progress=progress,
        ks=(20,),
        metric="recall@20",
    )
    data = load_dataset("gowalla", root=data_root)
    run_training(data, config, out, resume=resume, as_json=as_json, distributed=distributed)


if __name__ == "__main__":
    main()
