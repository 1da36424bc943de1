"""The ``lightgcn`` command-line interface (a Click group)."""

from lightgcn_pyg.cli.main import main

__all__ = ["main"]
