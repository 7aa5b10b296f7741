"""Plumbing shared by the command modules: the click classes, the rich console, subnormal flushing, list and
number options. Light on purpose: every command imports it, so it imports click and nothing heavy."""

from __future__ import annotations

import functools

import click

from resbench.errors import ResbenchError
from resbench.runtime import flushed_denormals

__all__ = ["Command", "Group", "console", "flushing", "split_list", "floats"]


class Command(click.Command):
    """A command that names every missing required argument and option in one error (click names the first)."""

    def parse_args(self, ctx, args):
        required = [p for p in self.params if p.required]
        for p in required:
            p.required = False
        try:
            rest = super().parse_args(ctx, args)
        finally:
            for p in required:
                p.required = True
        missing = [p for p in required if ctx.params.get(p.name) in (None, ())]
        if missing and not ctx.resilient_parsing:
            names = [p.opts[-1] if isinstance(p, click.Option) else p.human_readable_name for p in missing]
            raise click.UsageError(f"missing {', '.join(names)}", ctx)
        return rest


class Group(click.Group):
    command_class = Command


def console(stderr: bool = False):
    """A rich console that prints names as text (never as rich markup) and wraps softly."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True, markup=False)


def flushing(command):
    """Run a command that trains or evaluates with subnormal floats flushed (runtime.flushed_denormals); set
    per command, not in main, so --help, merge and the user errors never wait for torch's import."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        with flushed_denormals():
            return command(*args, **kwargs)
    return run


def split_list(text: str, option: str) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c']; an empty list or an empty item is a user error naming `option`."""
    items = [t.strip() for t in str(text).split(",")]
    if not text or any(not t for t in items):
        raise ResbenchError(f"{option} {text!r}: expected a comma-separated list without empty items")
    return items


def floats(text: str, option: str) -> list[float]:
    """'0.5,0.25' -> [0.5, 0.25]; anything else is a user error naming `option`."""
    try:
        return [float(v) for v in split_list(text, option)]
    except ValueError:
        raise ResbenchError(f"{option} {text!r}: expected numbers separated by commas") from None
