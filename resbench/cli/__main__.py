"""`python -m resbench.cli ...`: the same as the installed `resbench` command."""

from resbench.cli import main

main()
