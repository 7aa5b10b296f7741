"""Progress of long work as a user sees it: a rich bar in a terminal, one line per finished step elsewhere."""

from __future__ import annotations

import time
from typing import Callable

__all__ = ["CellProgress"]


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class CellProgress:
    """Progress of a sweep: a rich bar in a terminal, else (a pipe, nohup, CI, a log file) one line per cell.

    Both advance in units of images x model pixels, so the ETA holds when cells differ a hundredfold in
    cost (7x7 against 56x56).
    """

    def __init__(self, console, work: list[int]):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console, self.work, self.total = console, work, max(1, sum(work))
        self.start = time.perf_counter()
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[cells]} cells"),
                            TextColumn("{task.fields[ips]:.0f} img/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                            console=console, transient=True, disable=console.quiet or not console.is_terminal)
        self.task = self.bar.add_task("cells", total=self.total, ips=0.0, cells=f"0/{len(work)}")

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def cell_started(self, description: str, per_image: int) -> Callable[[int], None]:
        """Show the cell; returns the per-batch callback (images done in the batch)."""
        self.bar.update(self.task, description=description)
        started, seen = time.perf_counter(), 0

        def on_batch(n: int) -> None:
            nonlocal seen
            seen += n
            self.bar.update(self.task, advance=n * per_image, ips=seen / max(1e-9, time.perf_counter() - started))
        return on_batch

    def cell_done(self, index: int, description: str, row: dict) -> None:
        done = sum(self.work[:index + 1])
        self.bar.update(self.task, completed=done, cells=f"{index + 1}/{len(self.work)}")
        if self.bar.disable and not self.console.quiet:
            elapsed = time.perf_counter() - self.start
            eta = elapsed / done * (self.total - done) if done else 0.0
            result = (f"{100 * row['accuracy']:.2f}%, {row['images_per_s'] or 0:.0f} img/s" if not row["error"]
                      else f"failed: {row['error']}")
            self.console.print(f"cell {index + 1}/{len(self.work)} {description}: {result}; "
                               f"elapsed {_duration(elapsed)}, ETA {_duration(eta)}", soft_wrap=True, highlight=False)
