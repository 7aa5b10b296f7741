"""`python -m resbench ...`: the same as the installed `resbench` command."""

from resbench.cli import main

main()
