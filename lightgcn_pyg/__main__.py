"""``python -m lightgcn_pyg`` runs the ``lightgcn`` CLI."""

from lightgcn_pyg.cli import main

if __name__ == "__main__":
    main()
