"""What the CLI tests share: invoking the ``lightgcn`` group and checking a command's help."""

from __future__ import annotations

import click
from click.testing import CliRunner, Result

from lightgcn_pyg.cli.main import main


def invoke(*args) -> Result:
    """Runs ``lightgcn ARGS...`` in-process (arguments may be paths or numbers)."""
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_help_lists_every_option(name: str, command: click.Command) -> str:
    """``lightgcn NAME --help`` succeeds and names every option (and its ``--no-`` form);
    returns the help text for further checks."""
    result = invoke(name, "--help")
    assert result.exit_code == 0, result.output
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in [*param.opts, *param.secondary_opts]:
                assert opt in result.output, opt
    return result.output
