"""Small pieces shared by the CLI commands: common options, raw-id parsing, error handling."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, List, Sequence, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

checkpoint_option = click.option(
    "--checkpoint",
    "checkpoint",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A best.pt / last.pt file written by 'lightgcn train'.",
)

device_option = click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.",
)


def clean_errors(func: F) -> F:
    """Turn the library's ValueErrors and failed file operations (OSError, e.g. an output path
    under a file) into one-line CLI errors (exit code 1)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except (ValueError, OSError) as e:
            raise click.ClickException(
                str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
            ) from None

    return wrapper  # type: ignore[return-value]


def to_python(value: Any) -> Any:
    """A numpy / torch scalar as the plain Python value JSON and CSV writers expect."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def parse_raw_ids(values: Sequence[str], known_ids: Sequence[Any], param_hint: str) -> List[Any]:
    """Convert raw ids typed on the command line to the type of the model's id map.

    Integer id maps (the LightGCN text format) take ``"42"`` as ``42``; an id that cannot be
    converted or is not known is a :class:`click.BadParameter` (exit code 2) naming it.
    """
    integer_ids = len(known_ids) > 0 and all(
        isinstance(to_python(known_ids[i]), int) for i in (0, len(known_ids) - 1)
    )
    out: List[Any] = []
    for raw in values:
        if integer_ids:
            # The readers' rule: plain ASCII digits only (int() would take '+3', '1_0', '٣').
            if not (raw.isascii() and raw.isdigit()):
                raise click.BadParameter(f"unknown user id {raw!r}", param_hint=param_hint)
            out.append(int(raw))
        else:
            out.append(raw)
    return out


def read_ids_file(path: Path) -> List[str]:
    """One raw id per line; blank lines and surrounding whitespace ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise click.BadParameter(f"cannot read '{path}': {e}", param_hint="--users-file") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def echo_json(obj: Any) -> None:
    """Print one JSON document on stdout (logs go to stderr, so scripts can parse stdout)."""
    click.echo(json.dumps(obj))


def err(message: str) -> None:
    """Print a log line on stderr."""
    click.echo(message, file=sys.stderr)
