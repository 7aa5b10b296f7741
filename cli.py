"""Thin entry point: `python cli.py ...` is the same as the installed `resbench` command."""

from resbench.cli import main

if __name__ == "__main__":
    main()
