r"""CSV / Parquet / DataFrame reading: column validation, splits, and errors that name the file
and the line (CSV) or row (Parquet, DataFrame) and the bad value.

The public entry points are :func:`~lightgcn_pyg.data.readers.read_table` and
:func:`~lightgcn_pyg.data.readers.from_dataframe`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

import numpy as np
import pandas as pd

from lightgcn_pyg.data.assemble import RawPairs, assemble_interactions
from lightgcn_pyg.data.interactions import InteractionSet
from lightgcn_pyg.data.report import LoadReport
from lightgcn_pyg.data.splits import check_ratio, leave_last_out_mask, ratio_holdout_mask
from lightgcn_pyg.data.txt_parser import MAX_RAW_ID

PathLike = Union[str, os.PathLike]
NEWLINE = b"\n"
#: Split modes of :func:`~lightgcn_pyg.data.readers.read_table`.
SPLITS = ("given", "ratio", "leave_last_out", "column")
#: Accepted values of a split column (case and surrounding spaces are ignored).
SPLIT_LABELS = {
    "train": "train",
    "test": "test",
    "val": "val",
    "valid": "val",
    "validation": "val",
}

RowLabel = Callable[[int], str]


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _require_column(df: pd.DataFrame, column: str, arg: str, source: str) -> pd.Series:
    if column not in df.columns:
        available = ", ".join(repr(str(c)) for c in df.columns)
        raise ValueError(
            f"Column {column!r} ('{arg}') not found in {source} (available: {available})"
        )
    return df[column]


def _check_missing(series: pd.Series, column: str, source: str, label: RowLabel) -> None:
    missing = series.isna().to_numpy()
    if missing.any():
        raise ValueError(f"Missing value in column {column!r} of {source} {label(_first(missing))}")


def _too_large(column: str, source: str, label: RowLabel, value: object, pos: int) -> ValueError:
    return ValueError(
        f"Id {value!r} too large in column {column!r} of {source} {label(pos)} "
        f"(at most {MAX_RAW_ID})"
    )


def _integral(floats: np.ndarray, column: str, source: str, label: RowLabel) -> np.ndarray:
    bad = ~np.isfinite(floats) | (floats != np.floor(floats)) | (np.abs(floats) > MAX_RAW_ID)
    if bad.any():
        raise ValueError(
            f"Non-integer id {floats[_first(bad)].item()!r} in column {column!r} of {source} "
            f"{label(_first(bad))}"
        )
    return floats.astype(np.int64)


def _id_column(series: pd.Series, column: str, source: str, label: RowLabel) -> np.ndarray:
    r"""Validates a raw id column: returns int64 ids or an object array of strings."""
    _check_missing(series, column, source, label)
    if len(series) == 0:
        return np.empty(0, dtype=np.int64)
    if pd.api.types.is_bool_dtype(series):
        kind = "boolean"
    elif pd.api.types.is_integer_dtype(series):
        if series.dtype.kind == "u" or "UInt" in str(series.dtype):
            big = (series > MAX_RAW_ID).to_numpy(dtype=bool)
            if big.any():
                raise _too_large(column, source, label, int(series.iloc[_first(big)]), _first(big))
        kind, numbers = "integer", series.to_numpy(dtype=np.int64)
    elif pd.api.types.is_float_dtype(series):
        kind = "floating"
        numbers = _integral(series.to_numpy(dtype=np.float64), column, source, label)
    else:
        values = series.to_numpy(dtype=object)
        kind = pd.api.types.infer_dtype(values, skipna=False)
        if kind in ("string", "mixed-integer"):  # strings; integers mixed in become strings
            return values.astype(str).astype(object)
        if kind == "integer":
            try:
                numbers = values.astype(np.int64)
            except OverflowError:
                big = np.array([abs(v) > MAX_RAW_ID for v in values])
                raise _too_large(column, source, label, values[_first(big)], _first(big)) from None
        elif kind in ("floating", "mixed-integer-float"):
            numbers = _integral(values.astype(np.float64), column, source, label)
    if kind not in ("integer", "floating", "mixed-integer-float"):
        raise ValueError(
            f"Column {column!r} of {source} must hold integer or string ids "
            f"(got {kind} values such as {series.iloc[0]!r} {label(0)})"
        )
    negative = numbers < 0
    if negative.any():
        raise ValueError(
            f"Negative id {numbers[_first(negative)].item()} in column {column!r} of {source} "
            f"{label(_first(negative))}: ids must be non-negative"
        )
    return numbers


def _numeric_column(series: pd.Series, column: str, source: str, label: RowLabel) -> np.ndarray:
    r"""Validates a timestamp or rating column; returns a sortable float64 / int64 array."""
    _check_missing(series, column, source, label)
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.to_numpy(dtype="datetime64[ns]").view(np.int64)
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        numbers = pd.to_numeric(series, errors="coerce")
        if numbers.isna().any():  # not numbers: maybe date strings
            try:
                return pd.to_datetime(series).to_numpy(dtype="datetime64[ns]").view(np.int64)
            except (ValueError, TypeError, OverflowError):
                bad = numbers.isna().to_numpy()
                raise ValueError(
                    f"Column {column!r} of {source} must hold numbers or dates "
                    f"(got {series.iloc[_first(bad)]!r} {label(_first(bad))})"
                ) from None
        series = numbers
    if pd.api.types.is_integer_dtype(series):
        return series.to_numpy(dtype=np.int64)
    return series.to_numpy(dtype=np.float64)


def _reinfer_numbers(series: pd.Series) -> pd.Series:
    r"""A text column that only held text because of skipped blank lines becomes numeric again,
    as the CSV parser would have inferred without them."""
    if pd.api.types.is_numeric_dtype(series) or series.isna().any():
        return series
    numbers = pd.to_numeric(series, errors="coerce")
    return series if numbers.isna().any() else numbers


def _blank_rows(df: pd.DataFrame) -> np.ndarray:
    r"""Rows of a CSV that were blank or whitespace-only lines: every field missing, or only
    whitespace in the first field (the parser puts a whitespace-only line there)."""
    if df.shape[1] == 0:
        return np.zeros(len(df), dtype=bool)
    rest_missing = df.iloc[:, 1:].isna().all(axis=1).to_numpy()
    first = df.iloc[:, 0]
    blank = rest_missing & first.isna().to_numpy()
    candidates = np.flatnonzero(rest_missing & ~blank)
    if candidates.size and not pd.api.types.is_numeric_dtype(first):
        values = first.iloc[candidates].astype(str).str.strip()
        blank[candidates[(values == "").to_numpy()]] = True
    return blank


class Table:
    r"""The validated columns of one table: :obj:`user` and :obj:`item` (int64 ids or object
    arrays of strings), :obj:`time` (sortable numbers or :obj:`None`) and :obj:`split` (labels
    of :data:`SPLIT_LABELS` or :obj:`None`), one entry per kept row.

    Args:
        df (pandas.DataFrame): The table.
        arg (str): Argument name of :obj:`df`, for type errors.
        source (str): How errors name the table, e.g. :obj:`"'ratings.csv'"`.
        label (callable): Maps a row position of :obj:`df` to its name in errors (:obj:`"line 7"`),
            also for rows after skipped blank or low-rated rows.
        columns (dict): :obj:`user_col`, :obj:`item_col` and optional :obj:`time_col`,
            :obj:`rating_col`, :obj:`split_col` column names (:obj:`None`: not used).
        min_rating (float, optional): Drop rows rated below this.
        report (LoadReport): Counts blank and low-rated rows.
        skip_blank_rows (bool, optional): Skip rows with every field missing (CSV blank lines).
            (default: :obj:`False`)
    """

    def __init__(
        self,
        df: pd.DataFrame,
        arg: str,
        source: str,
        label: RowLabel,
        columns: Dict[str, Optional[str]],
        min_rating: Optional[float],
        report: LoadReport,
        skip_blank_rows: bool = False,
    ) -> None:
        if not isinstance(df, pd.DataFrame):
            raise ValueError(f"'{arg}' must be a pandas DataFrame (got {type(df).__name__})")
        series = {
            key: _require_column(df, col, key, source)
            for key, col in columns.items()
            if col is not None
        }
        keep = np.ones(len(df), dtype=bool)
        if skip_blank_rows:
            keep = ~_blank_rows(df)
            report.empty_lines += int((~keep).sum())

        def subset(key: str) -> Tuple[pd.Series, RowLabel]:
            positions = np.flatnonzero(keep)
            values = series[key].iloc[positions]
            if skip_blank_rows and positions.size < len(df):
                values = _reinfer_numbers(values)
            return values, lambda pos: label(int(positions[pos]))

        if "rating_col" in series and min_rating is not None:
            values, sub_label = subset("rating_col")
            rating = _numeric_column(values, columns["rating_col"], source, sub_label)
            high = np.zeros(len(df), dtype=bool)
            high[np.flatnonzero(keep)] = rating >= min_rating
            report.rating_filtered += int(keep.sum() - high.sum())
            keep = high
        values, sub_label = subset("user_col")
        self.user = _id_column(values, columns["user_col"], source, sub_label)
        values, sub_label = subset("item_col")
        self.item = _id_column(values, columns["item_col"], source, sub_label)
        self.time = None
        if "time_col" in series:
            values, sub_label = subset("time_col")
            self.time = _numeric_column(values, columns["time_col"], source, sub_label)
        self.split = None
        if "split_col" in series:
            values, sub_label = subset("split_col")
            mapped = values.astype(str).str.strip().str.lower().map(SPLIT_LABELS)
            unknown = mapped.isna().to_numpy()
            if unknown.any():
                raise ValueError(
                    f"Unknown split {values.iloc[_first(unknown)]!r} in column "
                    f"{columns['split_col']!r} of {source} {sub_label(_first(unknown))} "
                    f"(expected one of {sorted(SPLIT_LABELS)})"
                )
            self.split = mapped.to_numpy(dtype=object)


def _dedupe_latest(frame: Table, report: LoadReport) -> None:
    r"""Keeps each (user, item) pair once, at its latest timestamp if there is one."""
    order = np.arange(frame.user.shape[0])
    if frame.time is not None:
        order = np.argsort(frame.time, kind="stable")
    pairs = pd.DataFrame({"user": frame.user[order], "item": frame.item[order]})
    keep = order[~pairs.duplicated(keep="last").to_numpy()]
    keep.sort()
    report.duplicates_dropped += frame.user.shape[0] - keep.shape[0]
    frame.user, frame.item = frame.user[keep], frame.item[keep]
    if frame.time is not None:
        frame.time = frame.time[keep]


def _resolve_split(split: Optional[str], has_test: bool, split_col: Optional[str]) -> str:
    if split is None:
        split = "given" if has_test else ("column" if split_col is not None else "ratio")
    if split not in SPLITS:
        raise ValueError(f"'split' must be one of {list(SPLITS)} (got {split!r})")
    if (split == "given") != has_test:
        raise ValueError(
            f"'split' is {split!r} but a test table was {'' if has_test else 'not '}given; "
            "use split='given' exactly when passing a test table"
        )
    if split == "column" and split_col is None:
        raise ValueError("'split' is 'column' but no 'split_col' was given")
    return split


def _frames_to_set(
    train: Table,
    test: Optional[Table],
    *,
    split: str,
    test_ratio: float,
    val_ratio: Optional[float],
    seed: int,
    drop_overlap: bool,
    report: LoadReport,
    source: str,
    name: Optional[str],
) -> InteractionSet:
    splits: Dict[str, RawPairs] = {}
    if split == "given":
        splits = {"train": (train.user, train.item), "test": (test.user, test.item)}
    elif split == "column":
        for key in ("train", "val", "test"):
            rows = train.split == key
            if key == "train" or rows.any():
                splits[key] = (train.user[rows], train.item[rows])
    else:
        _dedupe_latest(train, report)
        user_codes = pd.factorize(train.user)[0]
        if split == "ratio":
            check_ratio(test_ratio, "test_ratio", "read_table")
            held = ratio_holdout_mask(user_codes, test_ratio, seed)
        else:
            if train.time is None:
                raise ValueError("'split' is 'leave_last_out' but no 'time_col' was given")
            held = leave_last_out_mask(user_codes, train.time)
        splits = {
            "train": (train.user[~held], train.item[~held]),
            "test": (train.user[held], train.item[held]),
        }
    return assemble_interactions(
        splits, identity=False, report=report, train_source=source,
        drop_overlap=drop_overlap, val_ratio=val_ratio, seed=seed, name=name,
    )  # fmt: skip


def tables_to_set(
    df: pd.DataFrame,
    test_df: Optional[pd.DataFrame],
    sources: Tuple[str, str],
    label: RowLabel,
    skip_blank_rows: bool,
    *,
    columns: Dict[str, Optional[str]],
    min_rating: Optional[float],
    split: Optional[str],
    test_ratio: float,
    val_ratio: Optional[float],
    seed: int,
    drop_overlap: bool,
    name: Optional[str],
) -> InteractionSet:
    r"""Validates a table (and optional test table) and builds the :class:`InteractionSet`; the
    shared body of :func:`~lightgcn_pyg.data.readers.read_table` and
    :func:`~lightgcn_pyg.data.readers.from_dataframe`."""
    split = _resolve_split(split, test_df is not None, columns["split_col"])
    report = LoadReport()
    columns = dict(columns)
    train_columns = columns if split == "column" else {**columns, "split_col": None}
    args = (label, train_columns, min_rating, report, skip_blank_rows)
    train = Table(df, "df", sources[0], *args)
    test = None
    if test_df is not None:
        test = Table(test_df, "test_df", sources[1], *args)
    return _frames_to_set(
        train, test, split=split, test_ratio=test_ratio, val_ratio=val_ratio, seed=seed,
        drop_overlap=drop_overlap, report=report, source=sources[0], name=name,
    )  # fmt: skip


def table_format(path: Path, file_format: str) -> str:
    r"""Returns :obj:`"csv"` or :obj:`"parquet"`; :obj:`"auto"` means Parquet for
    :obj:`.parquet` / :obj:`.pq` files, else CSV."""
    if file_format not in ("auto", "csv", "parquet"):
        raise ValueError(
            "'file_format' must be 'auto', 'csv' or 'parquet' in 'read_table' "
            f"(got {file_format!r})"
        )
    if file_format != "auto":
        return file_format
    return "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"


def read_frame(path: PathLike, arg: str, file_format: str, sep: Optional[str]) -> pd.DataFrame:
    r"""Reads one CSV or Parquet file; bad content raises :class:`ValueError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such file for '{arg}': '{path}'")
    kind = table_format(path, file_format)
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        if sep is None:
            sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
        # Blank lines stay as all-missing rows so that row positions map to line numbers.
        return pd.read_csv(path, sep=sep, skip_blank_lines=False, encoding="utf-8")
    except (ImportError, FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except UnicodeDecodeError as exc:
        data = path.read_bytes()
        try:
            data.decode("utf-8")
            where = ""
        except UnicodeDecodeError as err:
            where = f" line {data.count(NEWLINE, 0, err.start) + 1}"
        raise ValueError(f"Invalid UTF-8 in '{path}'{where}: {exc.reason}") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"No columns in '{path}': the file is empty") from None
    except Exception as exc:  # parsers raise many types for garbage; report them all as bad content
        message = " ".join(str(exc).split())
        raise ValueError(f"Could not read {kind} file '{path}': {message}") from exc
