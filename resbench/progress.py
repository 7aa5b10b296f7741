"""Progress of long work as a user sees it: a rich bar in a terminal, one line per finished step elsewhere."""

from __future__ import annotations

import time
from typing import Callable

from resbench.resolution import KINDS

__all__ = ["CellProgress", "rate_unit"]


def rate_unit(dims: int) -> str:
    """The throughput unit of a cell whose inputs have `dims` axes: img/s, signals/s or clips/s."""
    return "img/s" if dims == 2 else f"{KINDS.get(dims, 'inputs')}/s"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class CellProgress:
    """Progress of a sweep: a rich bar in a terminal, else (a pipe, nohup, CI, a log file) one line per cell.

    Both advance in units of images x model pixels, so the ETA holds when cells differ a hundredfold in
    cost (7x7 against 56x56). Cells may finish in any order (Ray tasks); the bar counts those done, failed
    and in flight.
    """

    def __init__(self, console, work: list[int]):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console, self.work, self.total = console, work, max(1, sum(work))
        self.start = time.perf_counter()
        self.done, self.done_work, self.failed, self.running = 0, 0, 0, 0
        self.bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), TextColumn("{task.fields[cells]} cells"),
                            TextColumn("{task.fields[ips]:.0f} {task.fields[unit]}"), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=console, transient=True,
                            disable=console.quiet or not console.is_terminal)
        self.task = self.bar.add_task("cells", total=self.total, ips=0.0, unit="img/s", cells=self._cells())

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def _cells(self) -> str:
        """'12/40', then ', 1 failed' and ', 4 in flight' when there are such cells."""
        return (f"{self.done}/{len(self.work)}" + (f", {self.failed} failed" if self.failed else "")
                + (f", {self.running} in flight" if self.running else ""))

    def cell_started(self, description: str, per_image: int, unit: str = "img/s") -> Callable[[int], None]:
        """Show the cell; returns the per-batch callback (images, signals or clips done in the batch)."""
        self.bar.update(self.task, description=description, unit=unit)
        started, seen = time.perf_counter(), 0

        def on_batch(n: int) -> None:
            nonlocal seen
            seen += n
            self.bar.update(self.task, advance=n * per_image, ips=seen / max(1e-9, time.perf_counter() - started))
        return on_batch

    def in_flight(self, cells: int, description: str) -> None:
        """Cells being evaluated elsewhere (Ray tasks), which report only when they finish."""
        self.running = cells
        self.bar.update(self.task, description=description, cells=self._cells())

    def cell_done(self, index: int, description: str, row: dict, unit: str = "img/s") -> None:
        """Cell `index` of the work list finished with `row` (an error row when it failed); `unit` names
        its throughput (rate_unit)."""
        self.done, self.done_work = self.done + 1, self.done_work + self.work[index]
        self.failed += bool(row["error"])
        self.bar.update(self.task, completed=self.done_work, cells=self._cells())
        if self.bar.disable and not self.console.quiet:
            elapsed = time.perf_counter() - self.start
            eta = elapsed / self.done_work * (self.total - self.done_work) if self.done_work else 0.0
            result = (f"{100 * row['accuracy']:.2f}%, {row['images_per_s'] or 0:.0f} {unit}" if not row["error"]
                      else f"failed: {row['error']}")
            self.console.print(f"cell {self.done}/{len(self.work)} {description}: {result}; "
                               f"elapsed {_duration(elapsed)}, ETA {_duration(eta)}", soft_wrap=True, highlight=False)
