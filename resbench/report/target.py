"""Where a report goes: `-o` names a folder (as `sweep -o` and `plot-kernels -o` do) or an OUT/NAME prefix."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["report_target", "DEFAULT_NAME"]

DEFAULT_NAME = "report"  # the files' name in a folder when the report reads several sweep folders


def report_target(out: str | os.PathLike, sweeps) -> Path:
    """OUT/NAME, the prefix of the report's files (NAME.md, NAME.pdf, NAME_<figure>.png, ...).

    An existing folder, or a path ending in a separator (a folder made if missing), takes the files named
    after the sweep folder (``report`` for several); any other path is OUT/NAME as it is.

    >>> report_target("reports/", ["results/quick"]).as_posix()
    'reports/quick'
    >>> report_target("reports/quick/q", ["results/quick"]).as_posix()
    'reports/quick/q'
    """
    text = os.fspath(out)
    folder = Path(text)
    if not (text.endswith(("/", os.sep)) or folder.is_dir()):
        return folder
    names = {Path(os.fspath(s).rstrip("/" + os.sep)).name for s in sweeps}
    name = names.pop() if len(names) == 1 else DEFAULT_NAME
    return folder / (name if name not in ("", ".", "..") else DEFAULT_NAME)
