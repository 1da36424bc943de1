r"""The LightGCN benchmark datasets (Gowalla, Yelp2018, Amazon-Book) in the official split.

A local copy is looked up in, in this order: an explicit :obj:`root`, the folder named by the
environment variable :obj:`LIGHTGCN_DATA_ROOT`, then :obj:`datasets/` below the current working
directory; each holds :obj:`<name>/train.txt` and :obj:`<name>/test.txt`. Missing files are
downloaded from the public LightGCN repository into the first of those folders.
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Union

from lightgcn_pyg.data.interactions import InteractionSet
from lightgcn_pyg.data.readers import read_lightgcn_txt

logger = logging.getLogger(__name__)

#: Environment variable naming a folder that holds ``<name>/train.txt`` and ``<name>/test.txt``.
DATA_ROOT_ENV = "LIGHTGCN_DATA_ROOT"
#: Download location of each file, filled with the dataset name and the file name.
DATASET_URL = "https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data/{name}/{file}"
DATASET_FILES = ("train.txt", "test.txt")


class DatasetStats(NamedTuple):
    r"""Sizes of a dataset in the LightGCN split."""

    num_users: int
    num_items: int
    num_train: int
    num_test: int


#: Known sizes of the official splits (the LightGCN paper, Table 2, and its data files).
DATASET_STATS: Dict[str, DatasetStats] = {
    "gowalla": DatasetStats(29_858, 40_981, 810_128, 217_242),
    "yelp2018": DatasetStats(31_668, 38_048, 1_237_259, 324_147),
    "amazon-book": DatasetStats(52_643, 91_599, 2_380_730, 603_378),
}


class DatasetDownloadError(RuntimeError):
    r"""A named dataset is missing locally and could not be downloaded."""


def dataset_name(name: str) -> str:
    r"""Returns the canonical name (:obj:`"Amazon_Book"` -> :obj:`"amazon-book"`) or raises
    :class:`ValueError` listing the known ones."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in DATASET_STATS:
        raise ValueError(
            f"Unknown dataset {name!r} in 'load_dataset' (expected one of {list(DATASET_STATS)})"
        )
    return key


def candidate_dirs(name: str, root: Union[str, os.PathLike, None] = None) -> List[Path]:
    r"""Folders that may hold dataset :obj:`name`, in lookup order.

    With an explicit :obj:`root`, only :obj:`root/<name>`. Otherwise
    :obj:`$LIGHTGCN_DATA_ROOT/<name>` (when the variable is set) and :obj:`./datasets/<name>`.
    """
    if root is not None:
        return [Path(root) / name]
    dirs = []
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        dirs.append(Path(env) / name)
    dirs.append(Path.cwd() / "datasets" / name)
    return dirs


def download_url(url: str, path: Union[str, os.PathLike], *, timeout: float = 30.0) -> None:
    r"""Downloads :obj:`url` to :obj:`path` through a temporary file in the same folder that is
    renamed at the end, so an interrupted download never leaves a partial :obj:`path`.

    Raises:
        OSError: When the URL cannot be fetched or the file cannot be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _where_to_put(name: str, folder: Path) -> str:
    return (
        f"Put train.txt and test.txt from https://github.com/kuandeng/LightGCN/tree/master/Data/"
        f"{name} into '{folder}', or set {DATA_ROOT_ENV} to a folder holding "
        f"{name}/train.txt and {name}/test.txt."
    )


def dataset_dir(
    name: str,
    root: Union[str, os.PathLike, None] = None,
    *,
    download: bool = True,
    timeout: float = 30.0,
) -> Path:
    r"""Returns the folder holding :obj:`train.txt` and :obj:`test.txt` of dataset :obj:`name`,
    downloading missing files into the first lookup folder (see :func:`candidate_dirs`).

    Raises:
        FileNotFoundError: When files are missing and :obj:`download` is :obj:`False`.
        DatasetDownloadError: When a download fails; the message says where to put the files.
    """
    name = dataset_name(name)
    dirs = candidate_dirs(name, root)
    for folder in dirs:
        if all((folder / file).is_file() for file in DATASET_FILES):
            return folder
    folder = dirs[0]
    missing = [file for file in DATASET_FILES if not (folder / file).is_file()]
    if not download:
        raise FileNotFoundError(
            f"Dataset {name!r} not found (looked in {', '.join(repr(str(d)) for d in dirs)}). "
            + _where_to_put(name, folder)
        )
    created = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    for file in missing:
        url = DATASET_URL.format(name=name, file=file)
        logger.info("Downloading %s to %s", url, folder / file)
        try:
            download_url(url, folder / file, timeout=timeout)
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError, timeouts,
            for parent in created:  # remove the folders this call created, if still empty
                if parent.exists() and not any(parent.iterdir()):
                    parent.rmdir()
            raise DatasetDownloadError(
                f"Dataset {name!r} is not available locally and downloading {url} failed "
                f"({exc}). " + _where_to_put(name, folder)
            ) from exc  # HTTP errors, truncated responses, bad URLs, write errors
    return folder


def check_dataset_stats(interactions: InteractionSet, name: str, folder: Path) -> None:
    r"""Raises :class:`ValueError` when :obj:`interactions` does not have the known sizes of
    dataset :obj:`name`."""
    expected = DATASET_STATS[dataset_name(name)]
    got = DatasetStats(
        interactions.num_users, interactions.num_items, interactions.num_train,
        interactions.num_test,
    )  # fmt: skip
    wrong = [
        f"{field} {value} (expected {want})"
        for field, value, want in zip(DatasetStats._fields, got, expected)
        if value != want
    ]
    if wrong:
        raise ValueError(
            f"Dataset {name!r} in '{folder}' does not match the LightGCN split: "
            f"{', '.join(wrong)}. The files may be truncated or from another source; delete them "
            "to download them again."
        )


def load_dataset(
    name: str,
    root: Union[str, os.PathLike, None] = None,
    *,
    download: bool = True,
    val_ratio: Optional[float] = None,
    seed: int = 0,
    drop_overlap: bool = True,
    timeout: float = 30.0,
) -> InteractionSet:
    r"""Loads a LightGCN benchmark dataset (:obj:`"gowalla"`, :obj:`"yelp2018"` or
    :obj:`"amazon-book"`) in the official split of He et al., SIGIR 2020
    (`arXiv:2002.02126 <https://arxiv.org/abs/2002.02126>`_), with raw id == index as in the
    official code, and checks its sizes against :data:`DATASET_STATS`.

    Args:
        name (str): Dataset name (case and :obj:`_` / :obj:`-` are ignored).
        root (str or os.PathLike, optional): Folder holding :obj:`<name>/train.txt` and
            :obj:`<name>/test.txt`; else :obj:`$LIGHTGCN_DATA_ROOT`, then :obj:`./datasets`.
            (default: :obj:`None`)
        download (bool, optional): Download missing files from the LightGCN repository.
            (default: :obj:`True`)
        val_ratio (float, optional): Carve a validation split of this share of each user's
            training pairs, after the size check. (default: :obj:`None`)
        seed (int, optional): Seed of the validation carving. (default: :obj:`0`)
        drop_overlap (bool, optional): As in :func:`read_lightgcn_txt` (the official splits
            have no overlap). (default: :obj:`True`)
        timeout (float, optional): Download timeout in seconds. (default: :obj:`30.0`)
    """
    key = dataset_name(name)
    folder = dataset_dir(key, root, download=download, timeout=timeout)
    interactions = read_lightgcn_txt(
        folder / "train.txt", folder / "test.txt", drop_overlap=drop_overlap, name=key
    )
    check_dataset_stats(interactions, key, folder)
    if val_ratio:
        interactions = interactions.with_validation(val_ratio, seed)
    return interactions
