"""``lightgcn export``: the final (layer-averaged) embeddings with their raw ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import click
import numpy as np

from lightgcn_pyg.cli.common import checkpoint_option, clean_errors, err, to_python
from lightgcn_pyg.training.restore import restore

USER_EMB, ITEM_EMB = "user_emb", "item_emb"
USER_IDS, ITEM_IDS = "user_ids.txt", "item_ids.txt"


@click.command("export")
@checkpoint_option
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["npy", "parquet"]),
    default="npy",
    show_default=True,
    help="npy: user_emb.npy, item_emb.npy, user_ids.txt, item_ids.txt. parquet: user_emb.parquet, "
    "item_emb.parquet with an id column and one column per dimension.",
)
@clean_errors
def export(checkpoint: Path, out: Path, fmt: str) -> None:
    """Export the final user and item embeddings (rows in index order) with their raw ids.

    Scores are dot products of these rows: they reproduce 'lightgcn eval' exactly.
    """
    run = restore(checkpoint, device="cpu")
    user_emb, item_emb = (t.numpy() for t in run.model.embeddings())
    data = run.data
    if fmt == "npy":
        # Checked before anything is written: a failed export leaves no partial folder.
        user_lines, item_lines = _id_lines(data.user_ids), _id_lines(data.item_ids)
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / f"{USER_EMB}.npy", user_emb)
        np.save(out / f"{ITEM_EMB}.npy", item_emb)
        (out / USER_IDS).write_text(user_lines, encoding="utf-8")
        (out / ITEM_IDS).write_text(item_lines, encoding="utf-8")
    else:
        out.mkdir(parents=True, exist_ok=True)
        _write_parquet(out / f"{USER_EMB}.parquet", "user_id", data.user_ids, user_emb)
        _write_parquet(out / f"{ITEM_EMB}.parquet", "item_id", data.item_ids, item_emb)
    err(f"Exported {user_emb.shape[0]} user and {item_emb.shape[0]} item embeddings to {out}")


def _id_lines(ids: Iterable[Any]) -> str:
    """The raw ids, one per line; an id that is empty or holds a line break is refused."""
    lines = [str(to_python(i)) for i in ids]
    # str.splitlines() also breaks at \r, \v, \f, \x1c-\x1e, \x85, \u2028 and \u2029.
    bad = next((line for line in lines if line.splitlines() != [line]), None)
    if bad is not None:
        raise ValueError(
            f"Raw id {bad!r} is empty or contains a line break, so it cannot be written one per "
            "line; use --format parquet"
        )
    return "".join(line + "\n" for line in lines)


def _write_parquet(path: Path, id_name: str, ids: Iterable[Any], emb: np.ndarray) -> None:
    import pandas as pd

    frame = pd.DataFrame(emb, columns=[f"e{j}" for j in range(emb.shape[1])])
    frame.insert(0, id_name, [to_python(i) for i in ids])
    try:
        frame.to_parquet(path, index=False)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ValueError(f"Parquet export needs pyarrow (pip install pyarrow): {e}") from None
