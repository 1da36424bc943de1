"""``lightgcn eval``: full-ranking metrics of a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import click

from lightgcn_pyg.cli.common import checkpoint_option, clean_errors, device_option, echo_json, err
from lightgcn_pyg.data import LoadReport, map_interactions_file
from lightgcn_pyg.device import resolve_device
from lightgcn_pyg.evaluation import Evaluator
from lightgcn_pyg.training.restore import restore


@click.command("eval")
@checkpoint_option
@click.option(
    "--test",
    "test_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Evaluate on this file of test interactions (LightGCN text format, or CSV/Parquet with "
    "--user-col/--item-col) instead of the checkpoint's test split; ids are raw ids.",
)
@click.option(
    "--train",
    "train_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Mask these training interactions instead of the checkpoint's.",
)
@click.option("--user-col", default="user", show_default=True, help="User column (CSV/Parquet).")
@click.option("--item-col", default="item", show_default=True, help="Item column (CSV/Parquet).")
@click.option(
    "--split",
    type=click.Choice(["test", "val"]),
    default="test",
    show_default=True,
    help="Which stored split to evaluate when no --test file is given.",
)
@click.option(
    "--k",
    "ks",
    type=click.IntRange(min=1),
    multiple=True,
    help="Cut-off (repeatable). [default: the K values the model was trained with]",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option(
    "--per-user",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write per-user metrics to this CSV (raw user ids), e.g. for significance tests.",
)
@click.option(
    "--cold-users",
    type=click.Choice(["include", "exclude"]),
    default="include",
    show_default=True,
    help="Users with test but no training items: rank them anyway, or drop them.",
)
@click.option("--popularity", is_flag=True, help="Evaluate the popularity baseline instead.")
@click.option(
    "--memory-mb", type=float, default=256.0, show_default=True, help="Score chunk budget."
)
@device_option
@clean_errors
def evaluate(
    checkpoint: Path,
    test_file: Optional[Path],
    train_file: Optional[Path],
    user_col: str,
    item_col: str,
    split: str,
    ks: Tuple[int, ...],
    as_json: bool,
    per_user: Optional[Path],
    cold_users: str,
    popularity: bool,
    memory_mb: float,
    device: str,
) -> None:
    """Full-ranking Recall, Precision, NDCG, HitRate, MAP and MRR of a checkpoint.

    Runs from the checkpoint alone: it holds the model, the id maps and the training
    interactions used for masking. --test / --train override them with files of raw ids.
    """
    run = restore(checkpoint, device=resolve_device(device))
    data = run.data
    train_index = data.train_edge_index
    if train_file is not None:
        train_index = map_interactions_file(data, train_file, user_col=user_col, item_col=item_col)
    if test_file is not None:
        # Test pairs that are also training pairs are masked away: drop them, as loading does.
        report = LoadReport()
        test_index = map_interactions_file(
            data, test_file, user_col=user_col, item_col=item_col, exclude=train_index,
            report=report,
        )  # fmt: skip
        if report.overlap_dropped:
            err(
                f"Dropped {report.overlap_dropped} pairs of '{test_file}' that are also training pairs"
            )
        if test_index.size(1) == 0:
            raise click.ClickException(
                f"'{test_file}' has no test pairs left that are not training pairs"
                if report.overlap_dropped
                else f"'{test_file}' holds no (user, item) pairs"
            )
    elif split == "val":
        if data.val_edge_index is None:
            raise click.BadParameter(
                "the checkpoint's data has no validation split", param_hint="--split"
            )
        test_index = data.val_edge_index
    else:
        test_index = data.test_edge_index
    evaluator = Evaluator(
        train_index,
        test_index,
        num_users=data.num_users,
        num_items=data.num_items,
        ks=ks or run.config.ks,
        memory_budget_mb=memory_mb,
        cold_users=cold_users,
    )
    want_per_user = per_user is not None
    if popularity:
        result = evaluator.evaluate_popularity(per_user=want_per_user)
    else:
        user_emb, item_emb = run.model.embeddings()
        result = evaluator.evaluate(user_emb, item_emb, per_user=want_per_user)
    if per_user is not None:
        result.save_per_user(per_user, user_ids=list(data.user_ids))
        err(f"Per-user metrics written to {per_user}")
    values = result.to_dict()
    if as_json:
        echo_json(values)
        return
    click.echo(
        f"{'popularity baseline' if popularity else f'{checkpoint} (epoch {run.epoch})'}: "
        f"{result.num_users} users evaluated, {result.num_users_without_test} without test items "
        f"skipped, {result.num_cold_users} cold users ({cold_users}d)"
    )
    for key, value in result.metrics.items():
        click.echo(f"  {key:<14}{value:.4f}")
