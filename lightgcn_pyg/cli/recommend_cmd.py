"""``lightgcn recommend``: top-K items for raw user ids, from a checkpoint alone."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Optional, Tuple

import click
import torch
from torch import Tensor

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
from lightgcn_pyg.nn import LightGCN
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
    hint = "/".join(
        name for name, given in (("--user", users), ("--users-file", users_file)) if given
    )
    ids = parse_raw_ids(raw, data.user_ids, param_hint=hint)
    try:
        user_index = data.user_index(ids, where=f"'{checkpoint}'")
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=hint) from None
    if k > data.num_items:
        raise click.BadParameter(
            f"{k} exceeds the number of items ({data.num_items})", param_hint="--k"
        )
    scores, items = top_items(run.model, user_index, k, exclude_seen=not include_seen)
    rows = []
    for n, user in enumerate(ids):
        valid = torch.isfinite(scores[n])  # fewer unseen items than k: the padding is dropped
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


@torch.no_grad()
def top_items(
    model: LightGCN, user_index: Tensor, k: int, exclude_seen: bool, max_scores: int = 1 << 24
) -> Tuple[Tensor, Tensor]:
    """Top-``k`` ``(scores, items)`` on the CPU, ``[B, k]`` each, scored in user chunks of at most
    ``max_scores`` entries. Unlike :meth:`LightGCN.recommend`, a user with fewer than ``k`` unseen
    items is not an error: the missing places hold a score of ``-inf``."""
    user_emb, item_emb = model.embeddings()
    user_index = user_index.to(user_emb.device)
    chunk = max(1, max_scores // model.num_items)
    adj = model.adjacency() if exclude_seen else None
    out_scores, out_items = [], []
    for start in range(0, user_index.numel(), chunk):
        users = user_index[start : start + chunk]
        scores = user_emb[users] @ item_emb.t()
        if adj is not None:
            position, item = adj.user_items(users)
            scores[position, item] = float("-inf")
        top = scores.topk(k, dim=1)
        out_scores.append(top.values.cpu())
        out_items.append(top.indices.cpu())
    if not out_scores:
        return torch.empty(0, k), torch.empty(0, k, dtype=torch.long)
    return torch.cat(out_scores), torch.cat(out_items)
