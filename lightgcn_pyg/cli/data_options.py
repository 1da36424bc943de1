r"""The shared "which data" options of the CLI and the loader behind them.

Every command that reads interactions (``data info``, ``train``, ``eval``) decorates itself with
:func:`data_options` and passes its keyword arguments to :func:`load_interactions_from_options`::

    @click.command()
    @data_options
    def info(**options):
        interactions = load_interactions_from_options(**options)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import click

from lightgcn_pyg.data import (
    DATASET_STATS,
    DatasetDownloadError,
    InteractionSet,
    load_dataset,
    read_lightgcn_txt,
    read_table,
)
from lightgcn_pyg.data.readers import SPLITS, infer_file_format

F = TypeVar("F", bound=Callable[..., Any])

#: Keyword arguments that :func:`data_options` adds, with their defaults.
DATA_OPTION_DEFAULTS = {
    "dataset": None,
    "data_root": None,
    "train_path": None,
    "test_path": None,
    "data_format": "auto",
    "user_col": "user",
    "item_col": "item",
    "time_col": None,
    "rating_col": None,
    "min_rating": None,
    "split": None,
    "split_col": None,
    "test_ratio": 0.2,
    "val_ratio": None,
    "split_seed": 0,
    "drop_overlap": True,
    "download": True,
}
_TABLE_ONLY = ("user_col", "item_col", "time_col", "rating_col", "min_rating", "split", "split_col")

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_OPTIONS = [
    click.option(
        "--dataset", type=click.Choice(list(DATASET_STATS), case_sensitive=False), default=None,
        help="Named dataset in the LightGCN split (downloaded on first use).",
    ),
    click.option(
        "--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Folder holding <dataset>/train.txt and test.txt "
        "[default: $LIGHTGCN_DATA_ROOT, then ./datasets].",
    ),
    click.option("--train", "train_path", type=_FILE, default=None,
                 help="Training interactions (or all of them, to split)."),
    click.option("--test", "test_path", type=_FILE, default=None, help="Test interactions."),
    click.option(
        "--format", "data_format", type=click.Choice(["auto", "txt", "csv", "parquet"]),
        default="auto", show_default=True,
        help="File format; auto: .parquet/.pq Parquet, .csv/.tsv/.tab CSV, else LightGCN text.",
    ),
    click.option("--user-col", default="user", show_default=True, help="CSV/Parquet user column."),
    click.option("--item-col", default="item", show_default=True, help="CSV/Parquet item column."),
    click.option("--time-col", default=None, help="CSV/Parquet timestamp column."),
    click.option("--rating-col", default=None, help="CSV/Parquet rating column."),
    click.option("--min-rating", type=float, default=None,
                 help="Drop rows rated below this (needs --rating-col)."),
    click.option(
        "--split", type=click.Choice(list(SPLITS)), default=None,
        help="CSV/Parquet split [default: given with --test, column with --split-col, "
        "else ratio].",
    ),
    click.option("--split-col", default=None, help="Column naming each row's split."),
    click.option(
        "--test-ratio", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2,
        show_default=True, help="Share of each user's pairs held out by --split ratio.",
    ),
    click.option(
        "--val-ratio", type=click.FloatRange(0, 1, max_open=True), default=None,
        help="Carve this share of each user's training pairs as a validation split.",
    ),
    click.option("--split-seed", type=int, default=0, show_default=True,
                 help="Seed of the random splits."),
    click.option(
        "--drop-overlap/--keep-overlap", default=True, show_default=True,
        help="Drop test pairs that are also training pairs.",
    ),
    click.option("--download/--no-download", default=True, show_default=True,
                 help="Download a missing named dataset."),
]  # fmt: skip


def data_options(func: F) -> F:
    r"""Adds the "which data" options (:data:`DATA_OPTION_DEFAULTS`) to a Click command."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def load_interactions_from_options(**options: Any) -> InteractionSet:
    r"""Loads the :class:`~lightgcn_pyg.data.InteractionSet` that the :func:`data_options`
    arguments describe. Keyword arguments other than those are ignored, so a command can pass
    all of its own. Bad combinations raise :class:`click.UsageError`; bad data, missing files and
    failed downloads raise :class:`click.ClickException` with a one-line message."""
    opts = {key: options.get(key, default) for key, default in DATA_OPTION_DEFAULTS.items()}
    dataset: Optional[str] = opts["dataset"]
    train_path: Optional[Path] = opts["train_path"]
    if dataset is not None and (train_path is not None or opts["test_path"] is not None):
        raise click.UsageError("Give either --dataset or --train/--test, not both.")
    if dataset is None and train_path is None:
        raise click.UsageError(
            "No data: give --dataset NAME or --train FILE (and usually --test FILE)."
        )
    if dataset is None and opts["data_root"] is not None:
        raise click.UsageError("--data-root only applies to --dataset.")
    try:
        if dataset is not None:
            return load_dataset(
                dataset, opts["data_root"], download=opts["download"],
                val_ratio=opts["val_ratio"], seed=opts["split_seed"],
                drop_overlap=opts["drop_overlap"],
            )  # fmt: skip
        file_format = infer_file_format(train_path, opts["data_format"])
        if file_format == "txt":
            table_only = [
                "--" + key.replace("_", "-")
                for key in _TABLE_ONLY
                if opts[key] != DATA_OPTION_DEFAULTS[key]
            ]
            if table_only:
                raise click.UsageError(
                    f"{', '.join(table_only)} only apply to CSV/Parquet files, not to the "
                    "LightGCN text format (use --format csv or parquet)."
                )
            return read_lightgcn_txt(
                train_path, opts["test_path"], val_ratio=opts["val_ratio"],
                seed=opts["split_seed"], drop_overlap=opts["drop_overlap"],
            )  # fmt: skip
        return read_table(
            train_path, test_path=opts["test_path"], file_format=file_format,
            user_col=opts["user_col"], item_col=opts["item_col"], time_col=opts["time_col"],
            rating_col=opts["rating_col"], min_rating=opts["min_rating"], split=opts["split"],
            split_col=opts["split_col"], test_ratio=opts["test_ratio"],
            val_ratio=opts["val_ratio"], seed=opts["split_seed"],
            drop_overlap=opts["drop_overlap"],
        )  # fmt: skip
    except (ValueError, OSError, ImportError, DatasetDownloadError) as exc:
        raise click.ClickException(_one_line(exc)) from exc
