r"""``lightgcn data``: inspect interaction data."""

from __future__ import annotations

import json
from typing import Any

import click

from lightgcn_pyg.cli.data_options import data_options, load_interactions_from_options
from lightgcn_pyg.data.report import format_summary


@click.group()
def data() -> None:
    """Inspect interaction data (LightGCN text files, CSV, Parquet, named datasets)."""


@data.command()
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def info(as_json: bool, **options: Any) -> None:
    """Print users, items, split sizes, density and what loading cleaned up.

    \b
    Examples:
      lightgcn data info --dataset gowalla
      lightgcn data info --train train.txt --test test.txt --json
      lightgcn data info --train ratings.csv --user-col userId --item-col movieId \\
          --time-col timestamp --split leave_last_out
    """
    interactions = load_interactions_from_options(**options)
    summary = interactions.summary()
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(format_summary(summary))
    for message in interactions.report.messages():
        click.echo(f"note: {message}")
