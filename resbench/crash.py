"""Internal errors as a user sees them: one line naming the command and the failing step, the traceback in a file."""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["crash_dir", "write_crash_file", "crash_line", "failing_step"]

_PACKAGE = Path(__file__).resolve().parent


def crash_dir() -> Path:
    """$RESBENCH_CRASH_DIR, else ~/.cache/resbench/crashes (the temp folder when home is not writable)."""
    env = os.environ.get("RESBENCH_CRASH_DIR")
    return Path(env) if env else Path("~/.cache/resbench/crashes").expanduser()


def failing_step(error: BaseException) -> str:
    """The innermost frame in resbench's own code, as 'module.function (file.py:line)'."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(_PACKAGE)] or frames
    if not ours:
        return "unknown step"
    f = ours[-1]
    module = Path(f.filename).resolve().relative_to(_PACKAGE).with_suffix("") if ours is not frames else None
    where = f"resbench.{'.'.join(module.parts)}" if module is not None else Path(f.filename).stem
    return f"{where}.{f.name} ({Path(f.filename).name}:{f.lineno})"


def _command(args: list[str]) -> str:
    return next((a for a in args if not a.startswith("-")), "resbench")


def write_crash_file(error: BaseException, args: list[str]) -> Path | None:
    """Write the traceback, command line and versions; the file's path, or None when no folder takes it."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    text = "".join([f"resbench crash report, {stamp} UTC\n",
                    f"command: resbench {' '.join(args)}\n",
                    f"python: {sys.version.split()[0]} ({sys.executable})\n\n",
                    *traceback.format_exception(type(error), error, error.__traceback__)])
    for folder in (crash_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f"crash-{_command(args)}-{stamp}-", suffix=".txt", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            return Path(name)
        except OSError:
            continue
    return None


def crash_line(error: BaseException, args: list[str], path: Path | None) -> str:
    """'resbench: internal error in `report` at resbench.report.write.write_report (write.py:97): TypeError: ...'"""
    message = str(error).splitlines()[0][:200] if str(error) else ""
    where = f"traceback in {path}" if path else "no crash file could be written"
    return (f"resbench: internal error in `{_command(args)}` at {failing_step(error)}: "
            f"{type(error).__name__}: {message} ({where}; rerun with --debug to print it)")
