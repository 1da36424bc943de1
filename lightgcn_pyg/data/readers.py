r"""Readers: LightGCN text files, CSV / Parquet tables and pandas DataFrames -> InteractionSet.

Every reader raises :class:`ValueError` naming the file and line (or row) and the bad value for
bad content, and counts what it cleaned up in :attr:`InteractionSet.report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lightgcn_pyg.data.assemble import RawPairs, assemble_interactions, sorted_unique
from lightgcn_pyg.data.interactions import InteractionSet
from lightgcn_pyg.data.report import LoadReport
from lightgcn_pyg.data.tables import (
    SPLITS,
    PathLike,
    Table,
    read_frame,
    table_format,
    tables_to_set,
)
from lightgcn_pyg.data.txt_parser import MAX_RAW_ID, parse_lightgcn_txt, read_bytes

__all__ = ["read_lightgcn_txt", "read_table", "from_dataframe", "map_interactions_file", "SPLITS"]

#: Largest id of the text format with raw id == index (indices must fit in int32).
MAX_TXT_INDEX = 2**31 - 2


def read_lightgcn_txt(
    train_path: PathLike,
    test_path: Optional[PathLike] = None,
    *,
    val_ratio: Optional[float] = None,
    seed: int = 0,
    drop_overlap: bool = True,
    remap_ids: bool = False,
    name: Optional[str] = None,
) -> InteractionSet:
    r"""Reads the LightGCN text format: one ``user item item ...`` line per user.

    User and item ids are already indices there, so raw id == index is kept and
    :obj:`num_users` is the largest user id in either file plus one (ids absent from both files
    still count, as in the official code); :attr:`LoadReport.unused_users` counts them.
    Blank lines, trailing whitespace, CRLF line endings, lines with only a user id and duplicate
    pairs are accepted and counted; see :mod:`lightgcn_pyg.data.txt_parser` for the grammar.

    Args:
        train_path (str or os.PathLike): The training file.
        test_path (str or os.PathLike, optional): The test file; no test split if :obj:`None`.
            (default: :obj:`None`)
        val_ratio (float, optional): Carve a validation split of this share of each user's
            training pairs (seeded, per user). (default: :obj:`None`)
        seed (int, optional): Seed of the validation carving. (default: :obj:`0`)
        drop_overlap (bool, optional): Remove test pairs that are also training pairs. Full-ranking
            evaluation masks training items, so such pairs could never be hit. The official
            splits have none. (default: :obj:`True`)
        remap_ids (bool, optional): Map ids to contiguous indices in sorted order instead, for
            files whose ids are sparse or exceed :obj:`2**31 - 2`. (default: :obj:`False`)
        name (str, optional): Dataset name. (default: :obj:`None`)
    """
    max_id, hint = (
        (MAX_RAW_ID, "") if remap_ids else (MAX_TXT_INDEX, "; pass remap_ids=True for sparse ids")
    )
    report = LoadReport()
    splits: Dict[str, RawPairs] = {}
    line_users = []
    for key, path in (("train", train_path), ("test", test_path)):
        if path is None:
            continue
        parsed = parse_lightgcn_txt(read_bytes(path, f"{key}_path"), path, max_id, hint)
        splits[key] = (parsed.user, parsed.item)
        line_users.append(parsed.line_user)
        report.empty_lines += parsed.empty_lines
        report.users_without_items += parsed.users_without_items
    return assemble_interactions(
        splits, identity=not remap_ids, report=report, train_source=f"'{train_path}'",
        extra_users=np.concatenate(line_users), drop_overlap=drop_overlap,
        val_ratio=val_ratio, seed=seed, name=name,
    )  # fmt: skip


def from_dataframe(
    df: pd.DataFrame,
    *,
    user_col: str = "user",
    item_col: str = "item",
    time_col: Optional[str] = None,
    rating_col: Optional[str] = None,
    min_rating: Optional[float] = None,
    split: Optional[str] = None,
    split_col: Optional[str] = None,
    test_ratio: float = 0.2,
    val_ratio: Optional[float] = None,
    seed: int = 0,
    test_df: Optional[pd.DataFrame] = None,
    drop_overlap: bool = True,
    name: Optional[str] = None,
) -> InteractionSet:
    r"""Builds an :class:`InteractionSet` from a table of interactions, one row per pair.

    Raw ids may be integers (any, non-negative) or strings; they are mapped to contiguous
    indices in sorted order of the raw ids (numeric order for integers, lexicographic for
    strings; if one table holds strings, integers are compared as strings). Duplicate pairs are
    kept once (at their latest timestamp for splitting).

    Args:
        df (pandas.DataFrame): The interactions (all of them, or the training ones when
            :obj:`test_df` is given).
        user_col (str, optional): Column of raw user ids. (default: :obj:`"user"`)
        item_col (str, optional): Column of raw item ids. (default: :obj:`"item"`)
        time_col (str, optional): Column of timestamps (numbers or dates); required by
            :obj:`split="leave_last_out"`. (default: :obj:`None`)
        rating_col (str, optional): Column of ratings, used with :obj:`min_rating`.
            (default: :obj:`None`)
        min_rating (float, optional): Drop rows whose rating is below this value.
            (default: :obj:`None`)
        split (str, optional): :obj:`"given"` (:obj:`test_df` is the test split),
            :obj:`"ratio"` (random :obj:`test_ratio` share of each user's pairs),
            :obj:`"leave_last_out"` (each user's latest pair) or :obj:`"column"` (the value of
            :obj:`split_col`: train / val / test). :obj:`None` picks :obj:`"given"` with a
            :obj:`test_df`, :obj:`"column"` with a :obj:`split_col`, else :obj:`"ratio"`.
            (default: :obj:`None`)
        split_col (str, optional): Column naming each row's split. (default: :obj:`None`)
        test_ratio (float, optional): Share of each user's pairs held out by
            :obj:`split="ratio"`. (default: :obj:`0.2`)
        val_ratio (float, optional): Carve a validation split of this share of each user's
            training pairs. (default: :obj:`None`)
        seed (int, optional): Seed of the random splits. (default: :obj:`0`)
        test_df (pandas.DataFrame, optional): Test interactions, same columns.
            (default: :obj:`None`)
        drop_overlap (bool, optional): Remove test pairs that are also training pairs.
            (default: :obj:`True`)
        name (str, optional): Dataset name. (default: :obj:`None`)

    Errors name the table (:obj:`df` or :obj:`test_df`) and the row by its position.
    """
    return tables_to_set(
        df, test_df, ("'df'", "'test_df'"), lambda pos: f"row {pos}", False,
        columns=dict(user_col=user_col, item_col=item_col, time_col=time_col,
                     rating_col=rating_col, split_col=split_col),
        min_rating=min_rating, split=split, test_ratio=test_ratio, val_ratio=val_ratio,
        seed=seed, drop_overlap=drop_overlap, name=name,
    )  # fmt: skip


def read_table(
    path: PathLike,
    *,
    user_col: str = "user",
    item_col: str = "item",
    time_col: Optional[str] = None,
    rating_col: Optional[str] = None,
    min_rating: Optional[float] = None,
    split: Optional[str] = None,
    split_col: Optional[str] = None,
    test_ratio: float = 0.2,
    val_ratio: Optional[float] = None,
    seed: int = 0,
    test_path: Optional[PathLike] = None,
    drop_overlap: bool = True,
    file_format: str = "auto",
    sep: Optional[str] = None,
    name: Optional[str] = None,
) -> InteractionSet:
    r"""Reads interactions from a CSV or Parquet file (and an optional test file) with
    :func:`from_dataframe`; errors name the file and, for CSV, the line.

    Args:
        path (str or os.PathLike): The interactions (training ones with :obj:`test_path`).
        test_path (str or os.PathLike, optional): Test interactions, same columns; implies
            :obj:`split="given"`. (default: :obj:`None`)
        file_format (str, optional): :obj:`"csv"`, :obj:`"parquet"` or :obj:`"auto"`
            (:obj:`.parquet` / :obj:`.pq` are Parquet, anything else CSV).
            (default: :obj:`"auto"`)
        sep (str, optional): CSV separator; :obj:`None` means tab for :obj:`.tsv` / :obj:`.tab`,
            else comma. (default: :obj:`None`)
        **options: :obj:`user_col`, :obj:`item_col`, :obj:`time_col`, :obj:`rating_col`,
            :obj:`min_rating`, :obj:`split`, :obj:`split_col`, :obj:`test_ratio`,
            :obj:`val_ratio`, :obj:`seed`, :obj:`drop_overlap` and :obj:`name` as in
            :func:`from_dataframe`.
    """
    csv = table_format(Path(path), file_format) == "csv"
    df = read_frame(path, "path", file_format, sep)
    test_df = None if test_path is None else read_frame(test_path, "test_path", file_format, sep)
    return tables_to_set(
        df, test_df, (f"'{path}'", f"'{test_path}'"),
        # CSV line 1 is the header; blank lines are kept as rows, so positions match lines.
        (lambda pos: f"line {pos + 2}") if csv else (lambda pos: f"row {pos}"), csv,
        columns=dict(user_col=user_col, item_col=item_col, time_col=time_col,
                     rating_col=rating_col, split_col=split_col),
        min_rating=min_rating, split=split, test_ratio=test_ratio, val_ratio=val_ratio,
        seed=seed, drop_overlap=drop_overlap, name=name,
    )  # fmt: skip


def infer_file_format(path: PathLike, file_format: str = "auto") -> str:
    r"""Resolves :obj:`"auto"` from the suffix: :obj:`.parquet` / :obj:`.pq` are
    :obj:`"parquet"`, :obj:`.csv` / :obj:`.tsv` / :obj:`.tab` are :obj:`"csv"`, anything else
    the LightGCN text format :obj:`"txt"`."""
    if file_format not in ("auto", "txt", "csv", "parquet"):
        raise ValueError(
            f"'file_format' must be 'auto', 'txt', 'csv' or 'parquet' (got {file_format!r})"
        )
    if file_format != "auto":
        return file_format
    suffix = Path(path).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    return "csv" if suffix in (".csv", ".tsv", ".tab") else "txt"


def map_interactions_file(
    data: InteractionSet,
    path: PathLike,
    *,
    user_col: str = "user",
    item_col: str = "item",
    file_format: str = "auto",
    exclude: Optional[Tensor] = None,
    report: Optional[LoadReport] = None,
) -> Tensor:
    r"""Reads a file of raw-id interactions and maps it through the id maps of :obj:`data`, e.g.
    to evaluate a trained model on new test interactions.

    Args:
        data (InteractionSet): The interaction set whose id maps to use.
        path (str or os.PathLike): LightGCN text file, or CSV / Parquet with user and item
            columns.
        user_col (str, optional): CSV / Parquet user column. (default: :obj:`"user"`)
        item_col (str, optional): CSV / Parquet item column. (default: :obj:`"item"`)
        file_format (str, optional): As :func:`infer_file_format`. (default: :obj:`"auto"`)
        exclude (torch.Tensor, optional): Pairs :obj:`[2, E']` to drop from the result, e.g. the
            training pairs when the file is a test split (the same rule as
            :obj:`drop_overlap=True` when loading). (default: :obj:`None`)
        report (LoadReport, optional): Receives the number of excluded pairs found in the file
            (:obj:`overlap` and :obj:`overlap_dropped`). (default: :obj:`None`)

    Returns:
        torch.Tensor: Bipartite edge index :obj:`[2, E]` of the unique pairs, sorted by
        :obj:`(user, item)`. A raw id unknown to :obj:`data` raises :class:`ValueError` naming
        it and the file.
    """
    kind = infer_file_format(path, file_format)
    if kind == "txt":
        parsed = parse_lightgcn_txt(read_bytes(path, "path"), path)
        user, item = parsed.user, parsed.item
    else:
        columns = dict(user_col=user_col, item_col=item_col)
        label = (lambda pos: f"line {pos + 2}") if kind == "csv" else (lambda pos: f"row {pos}")
        table = Table(
            read_frame(path, "path", kind, None), "path", f"'{path}'", label, columns, None,
            LoadReport(), skip_blank_rows=kind == "csv",
        )  # fmt: skip
        user, item = table.user, table.item
    user_index = data.user_index(user, where=f"'{path}'")
    item_index = data.item_index(item, where=f"'{path}'")
    stride = max(data.num_items, 1)
    keys = sorted_unique(user_index.numpy() * stride + item_index.numpy())
    if exclude is not None:
        exclude = exclude.cpu().long().numpy()  # int64 keys: int32 would wrap at U * I > 2^31
        known = np.isin(keys, sorted_unique(exclude[0] * stride + exclude[1]), assume_unique=True)
        if report is not None:
            report.overlap += int(known.sum())
            report.overlap_dropped += int(known.sum())
        keys = keys[~known]
    return torch.from_numpy(np.stack([keys // stride, keys % stride]))
