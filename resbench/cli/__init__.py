"""The `resbench` command line: the group, one module per command, and `main`, which turns user errors
into one line and exit code 2. Each command module imports its library modules inside its handler, so
`resbench --help` loads click alone and a command loads only what it uses."""

from __future__ import annotations

import sys

import click

from resbench.cli import import_official, info, merge, models, plot_kernels, report, sweep, train
from resbench.cli._common import Group
from resbench.crash import crash_line, write_crash_file
from resbench.errors import ResbenchError
from resbench.runtime import keep_freed_memory

__all__ = ["cli", "main"]

_RUN = {"debug": False}  # set by the group's --debug option, read by main() when a command fails


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="resbench")
@click.option("--debug", is_flag=True, help="On an internal error print the traceback instead of writing a crash file.")
def cli(debug):
    """Zero-shot resolution robustness of S4ND and baseline models.

    \b
    Examples (a quick sweep; --dry-run first says how long a sweep takes):
      resbench sweep checkpoints/s4nd_iso_14.pt --test-res 7,14,28 --limit 1000 -o results/quick
      resbench report results/quick -o reports/
      resbench sweep checkpoints/ --dry-run -o results/all
    """
    _RUN["debug"] = debug


for _command in (models.models_cmd, info.info_cmd, train.train_cmd, sweep.sweep_cmd, merge.merge_cmd,
                 report.report_cmd, import_official.import_official_cmd, plot_kernels.plot_kernels_cmd):
    cli.add_command(_command)


def main(argv=None) -> int:
    """Entry point: user errors become one line on stderr and exit code 2; an internal error (a bug)
    becomes one line naming the command and the failing step, its traceback in a crash file, exit code 1."""
    keep_freed_memory()
    _RUN["debug"] = False
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        cli.main(args=args, prog_name="resbench", standalone_mode=False)
    except ResbenchError as e:
        click.echo(f"resbench: error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("resbench: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"resbench: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except Exception as e:  # a bug: say where, keep the details in a file
        if _RUN["debug"]:
            raise
        click.echo(crash_line(e, args, write_crash_file(e, args)), err=True)
        sys.exit(1)
    return 0
