"""``lightgcn recommend``: top-K items for raw user ids, from a checkpoint alone."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Optional, Tuple

import click
import torch

from lightgcn_pyg.cli.common import (
    checkpoint_option,
    clean_errors,
    device_option,
    echo_json,
    parse_raw_ids,
    read_ids_file,
    to_python,
)
from lightgcn_pyg.device import resolve_device
from lightgcn_pyg.training.restore import restore


@click.command("recommend")
@checkpoint_option
@click.option("--user", "users", multiple=True, help="A raw user id (repeatable).")
@click.option(
    "--users-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file with one raw user id per line.",
)
@click.option(
    "--k", default=10, show_default=True, type=click.IntRange(min=1), help="Items per user."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list on stdout.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (user,rank,item,score) on stdout.")
@click.option("--include-seen", is_flag=True, help="Also recommend items the user had in training.")
@device_option
@clean_errors
def recommend(
    checkpoint: Path,
    users: Tuple[str, ...],
    users_file: Optional[Path],
    k: int,
    as_json: bool,
    as_csv: bool,
    include_seen: bool,
    device: str,
) -> None:
    """Recommend the top-K items for raw user ids.

    Seen training items are excluded unless --include-seen. Output: a table, or with --json a list
    of {"user": ID, "items": [ID, ...], "scores": [float, ...]} objects, best first.
    """
    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    raw = list(users) + (read_ids_file(users_file) if users_file is not None else [])
    if not raw:
        raise click.UsageError("give at least one --user or a --users-file")
    run = restore(checkpoint, device=resolve_device(device))
    data = run.data
    hint = "--user" if users else "--users-file"
    ids = parse_raw_ids(raw, data.user_ids, param_hint=hint)
    try:
        user_index = data.user_index(ids)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=hint) from None
    available = data.num_items
    if k > available:
        raise click.BadParameter(f"{k} exceeds the number of items ({available})", param_hint="--k")
    scores, items = run.model.recommend(
        user_index.to(run.model.user_embedding.weight.device), k, exclude_seen=not include_seen
    )
    scores, items = scores.cpu(), items.cpu()
    rows = []
    for n, user in enumerate(ids):
        valid = torch.isfinite(scores[n])  # fewer unseen items than k: -inf padding is dropped
        rows.append(
            {
                "user": to_python(user),
                "items": [to_python(data.item_ids[int(i)]) for i in items[n][valid]],
                "scores": [float(s) for s in scores[n][valid]],
            }
        )
    if as_json:
        echo_json(rows)
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["user", "rank", "item", "score"])
        for row in rows:
            for rank, (item, score) in enumerate(zip(row["items"], row["scores"]), start=1):
                writer.writerow([row["user"], rank, item, f"{score:.6g}"])
    else:
        for row in rows:
            shown = ", ".join(f"{i} ({s:.3f})" for i, s in zip(row["items"], row["scores"]))
            click.echo(f"{row['user']}: {shown}")
