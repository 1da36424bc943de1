"""Root of the ``lightgcn`` Click group; each sub-command lives in its own module."""

import click

from lightgcn_pyg import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lightgcn")
def main() -> None:
    """LightGCN recommenders on PyTorch Geometric: train, evaluate, recommend, export."""


def _register() -> None:
    # Imported here so that `lightgcn --help` stays quick and the modules stay independent.
    from lightgcn_pyg.cli.data_cmd import data
    from lightgcn_pyg.cli.eval_cmd import evaluate
    from lightgcn_pyg.cli.export_cmd import export
    from lightgcn_pyg.cli.recommend_cmd import recommend
    from lightgcn_pyg.cli.train_cmd import train

    for command in (train, evaluate, recommend, export, data):
        main.add_command(command)


_register()
