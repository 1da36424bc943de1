"""Checkpoints: atomic writes, safe loading, clear errors.

A checkpoint is a dictionary of tensors and plain Python values only, so it loads with
``torch.load(weights_only=True)``: opening a file from someone else never executes a pickle.
It carries everything ``eval``, ``recommend`` and ``export`` need: the model's constructor
arguments and weights, the training config, the id maps and the training interactions.
"""

from __future__ import annotations

import glob
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

FORMAT = "lightgcn_pyg.checkpoint"
VERSION = 1
BEST = "best.pt"
LAST = "last.pt"

_REQUIRED_KEYS = ("format", "version", "model_args", "model", "config", "data", "epoch")


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged, from another version or for other data."""


def save_checkpoint(state: Dict[str, Any], path: Union[str, Path]) -> Path:
    """Write ``state`` to ``path`` atomically.

    The file is written to a temporary file in the same folder, flushed to disk, then renamed over
    ``path``: a crash at any moment leaves either the previous complete file or the new one.
    Temporary files that a killed writer left for the same ``path`` are removed afterwards.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "version": VERSION, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint is a normal file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    # A process killed while writing leaves its temporary file behind; this write supersedes it.
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            stale.unlink()
        except OSError:  # pragma: no cover - e.g. removed meanwhile
            pass
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def load_checkpoint(
    path: Union[str, Path],
    map_location: Union[str, torch.device, None] = "cpu",
    expected_fingerprint: Optional[str] = None,
) -> Dict[str, Any]:
    """Load and validate a checkpoint written by :func:`save_checkpoint`.

    Args:
        path (str or Path): The checkpoint file.
        map_location: Where to put its tensors. (default: :obj:`"cpu"`)
        expected_fingerprint (str, optional): If given, the fingerprint of the dataset the caller
            holds; a checkpoint trained on other data (other id maps) is refused. (default: :obj:`None`)

    Raises:
        CheckpointError: (a :class:`ValueError`) with one line naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"Checkpoint '{path}' does not exist")
    if path.is_dir():
        raise CheckpointError(f"Checkpoint '{path}' is a folder, not a file")
    # torch.save writes a zip archive; anything else (a truncated file loses the zip's central
    # directory) is not a checkpoint, and is never handed to the unpickler.
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"Checkpoint '{path}' is truncated, damaged or not a checkpoint (not a zip archive "
            "written by torch.save)"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refused an object. Name it, but not torch's advice to retry with
        # weights_only=False, which would run the pickle.
        raise CheckpointError(
            f"Checkpoint '{path}' holds objects that cannot be loaded safely "
            f"(weights_only): {_unpickling_reason(e)}"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError) as e:
        raise CheckpointError(
            f"Checkpoint '{path}' is truncated, damaged or not a checkpoint "
            f"({type(e).__name__}: {str(e).strip().splitlines()[0][:160] if str(e).strip() else ''})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not a lightgcn_pyg checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"Checkpoint '{path}' has format version {state.get('version')!r}; this lightgcn_pyg "
            f"reads version {VERSION}"
        )
    missing = [k for k in _REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"Checkpoint '{path}' lacks the entries {missing}")
    if expected_fingerprint is not None:
        found = state.get("data_fingerprint")
        if found != expected_fingerprint:
            raise CheckpointError(
                f"Checkpoint '{path}' was trained on other data (id maps differ: fingerprint "
                f"{found} != {expected_fingerprint})"
            )
    return state


def _unpickling_reason(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or line.startswith("Unsupported"):
            return line[:200]
    return type(error).__name__
