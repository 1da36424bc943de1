r"""Fast, strict parser of the LightGCN text format (``user item item ...`` per line).

Grammar: lines end at ``\n``, ``\r\n`` or a lone ``\r`` (universal newlines). Inside a line,
tokens are separated by ASCII whitespace (space, ``\t``, ``\v``, ``\f``). A token is a
non-negative decimal integer of ASCII digits (leading zeros allowed). The first token of a line
is the user id, the others its item ids; a line without tokens is an *empty line*, a line with
only a user id a *user without items*.

The happy path does no per-token Python work: one regular expression validates the whole file,
:func:`numpy.fromstring` converts all tokens at once and the per-line token counts come from one
split per line. Only when validation fails is the file scanned token by token to name the first
bad token and its line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple, NoReturn, Union

import numpy as np

#: Largest id accepted at all: ``num = max id + 1`` must fit in a signed 64-bit integer.
MAX_RAW_ID = 2**63 - 2

_VALID = re.compile(rb"[0-9 \t\n\x0b\x0c]*")
_LONG_TOKEN = re.compile(rb"[0-9]{19,}")  # may not fit in int64: checked in Python
_NEGATIVE = re.compile(rb"-[0-9]+")


class ParsedTxt(NamedTuple):
    r"""One parsed text file: flat interaction arrays plus what the cleaning counted."""

    user: np.ndarray  #: user id of each (user, item) token pair, int64 [E]
    item: np.ndarray  #: item id of each pair, int64 [E]
    line_user: np.ndarray  #: user id of every non-empty line (incl. lines without items)
    empty_lines: int
    users_without_items: int


def read_bytes(path: Union[str, os.PathLike], arg: str) -> bytes:
    r"""Reads a file, with a :class:`FileNotFoundError` naming :obj:`arg` if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such file for '{arg}': '{path}'")
    return path.read_bytes()


def _raise_bad_token(
    data: bytes, path: Union[str, os.PathLike], max_id: int, hint: str
) -> NoReturn:
    r"""Scans :obj:`data` (already newline-normalised) and raises for its first bad token."""
    for number, line in enumerate(data.split(b"\n"), start=1):
        for token in line.split():
            text = token.decode("utf-8", "backslashreplace")
            where = f"in '{path}' line {number}"
            if not token.isdigit():
                kind = "Negative" if _NEGATIVE.fullmatch(token) else "Invalid"
                raise ValueError(f"{kind} id {text!r} {where}: ids must be non-negative integers")
            if int(token) > max_id:
                raise ValueError(f"Id {text!r} {where} is too large (at most {max_id}{hint})")
    raise AssertionError("no bad token found")  # pragma: no cover - validation said there is one


def parse_lightgcn_txt(
    data: bytes,
    path: Union[str, os.PathLike],
    max_id: int = MAX_RAW_ID,
    hint: str = "",
) -> ParsedTxt:
    r"""Parses the bytes of one LightGCN text file.

    Args:
        data (bytes): The file content.
        path (str or os.PathLike): The file name, only used in error messages.
        max_id (int, optional): Largest accepted id. (default: :obj:`MAX_RAW_ID`)
        hint (str, optional): Appended to the "too large" error, e.g. how to lift the limit.
            (default: :obj:`""`)

    Raises:
        ValueError: For the first token that is not a non-negative integer or exceeds
            :obj:`max_id`, naming the file, the line and the token; never another exception type
            for any content.
    """
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if _VALID.fullmatch(data) is None:
        _raise_bad_token(data, path, max_id, hint)
    for match in _LONG_TOKEN.finditer(data):
        if int(match.group()) > max_id:
            _raise_bad_token(data, path, max_id, hint)

    lines = data.split(b"\n")
    if lines[-1] == b"":  # text after the last newline is a line only if non-empty
        lines.pop()
    counts = np.fromiter(map(len, map(bytes.split, lines)), dtype=np.int64, count=len(lines))
    num_tokens = int(counts.sum())
    if num_tokens == 0:
        empty = np.empty(0, dtype=np.int64)
        return ParsedTxt(empty, empty, empty, len(lines), 0)

    values = np.fromstring(data, dtype=np.int64, sep=" ")
    if values.shape[0] != num_tokens:  # pragma: no cover - guard against NumPy quirks
        values = np.array([int(token) for token in data.split()], dtype=np.int64)
    if int(values.max()) > max_id:
        _raise_bad_token(data, path, max_id, hint)

    counts = counts[counts > 0]
    first = np.cumsum(counts) - counts  # position of each line's user token
    is_item = np.ones(num_tokens, dtype=bool)
    is_item[first] = False
    line_user = values[first]
    return ParsedTxt(
        user=np.repeat(line_user, counts - 1),
        item=values[is_item],
        line_user=line_user,
        empty_lines=len(lines) - counts.shape[0],
        users_without_items=int((counts == 1).sum()),
    )
