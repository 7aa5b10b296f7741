"""The rows a report reads: sweep folders loaded into one frame, subset marks, missing cells, reference cells."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from resbench.errors import ResbenchError
from resbench.resolution import KINDS, size_key
from resbench.store import current_files, read_results, read_runs, split_current

__all__ = ["SEEN_MARK", "SUBSET_MARK", "load_sweeps", "native_as_resize_reference", "subset_label", "subset_mark",
           "subset_note", "missing_cells", "seen_in_training", "reference_setting", "reference_cells", "SweptFiles"]


SEEN_MARK = "\u2020"  # dagger: the test size is one the checkpoint trained at (its schedule), not zero-shot
SUBSET_MARK = "\u00a7"  # section sign: the cells of this line used a subset of the test images


def load_sweeps(dirs) -> tuple[pd.DataFrame, list[dict]]:
    """Results frame of several sweep folders (concatenated, current checkpoint files only) and their run records.

    Each folder keeps every row it ever computed; the newest run naming a checkpoint decides which
    file that name means now, across all the folders given (store.current_files).
    """
    frames, runs = [], []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise ResbenchError(f"{d}: not a sweep folder (expected a folder with results.csv)")
        frames.append(read_results(d).assign(sweep_dir=str(d)))  # where each row's per-image records are
        runs.extend(read_runs(d))
    df = pd.concat(frames, ignore_index=True)
    df["error"] = df["error"].fillna("").astype(str)
    df = df.drop_duplicates(subset=["checkpoint_sha256", "test_res", "policy", "bandlimit", "seed", "precision",
                                    "limit", "subset", "transform"], keep="last")
    df = split_current(df, current_files(runs))[0]
    df = native_as_resize_reference(df)
    df["file_checkpoint"] = df["checkpoint"]  # the name the run records use (planned cells)
    # a checkpoint evaluated in bf16 or fp16 is its own line in every table and plot, never mixed with fp32;
    # so are a checkpoint's subset cells where the folders also hold full ones (their size in the name)
    low = df["precision"].fillna("fp32") != "fp32"
    df.loc[low, "checkpoint"] = df.loc[low, "checkpoint"] + " [" + df.loc[low, "precision"] + "]"
    part = df["limit"].fillna(-1).astype(int) != -1
    both = part & df["checkpoint_sha256"].isin(set(df.loc[~part, "checkpoint_sha256"]))
    df.loc[both, "checkpoint"] = [c + subset_label(n) for c, n in zip(df.loc[both, "checkpoint"], df.loc[both, "n"])]
    if df.empty:
        raise ResbenchError(f"{', '.join(map(str, dirs))}: the sweep holds no results")
    return df.reset_index(drop=True), runs


def native_as_resize_reference(df: pd.DataFrame) -> pd.DataFrame:
    """The sweep runs resize-input at the training size as the native cell (the resize is the identity): where a
    checkpoint has resize-input cells but none at its training size, its native rows there stand for them (marked
    `stands_in`: not counted as cells of their own)."""
    cell = [c for c in ("checkpoint_sha256", "test_res", "bandlimit", "seed", "precision", "limit", "subset",
                        "transform") if c in df]
    resize = df[df["policy"] == "resize-input"]
    at_train = df[(df["policy"] == "native") & (df["test_res"] == df["train_res"])
                  & df["checkpoint_sha256"].isin(set(resize["checkpoint_sha256"]))]
    have = set(map(tuple, resize[cell].astype(str).values.tolist()))
    copies = at_train[[tuple(k) not in have for k in at_train[cell].astype(str).values.tolist()]]
    if copies.empty:
        return df
    return pd.concat([df, copies.assign(policy="resize-input", stands_in=True)], ignore_index=True)


def subset_label(n: int) -> str:
    """What a checkpoint's name carries in a report when some of its cells used only the first n test images
    and others the whole split (a report of subset cells alone marks every title instead: subset_mark)."""
    return f" [{SUBSET_MARK}subset {int(n)}]"


def subset_mark(df: pd.DataFrame) -> str:
    """'' when every evaluated cell used its whole test split, else the mark every title of the report gets."""
    ok = df[df["error"] == ""]
    if "limit" not in ok or not (ok["limit"].fillna(-1).astype(int) != -1).any():
        return ""
    subset = ok[ok["limit"].fillna(-1).astype(int) != -1]
    sizes = sorted({int(n) for n in subset["n"]})
    kinds = {KINDS.get(int(d), "inputs") for d in subset["dims"]} if "dims" in subset else {"images"}
    what = kinds.pop() if len(kinds) == 1 else "inputs"
    return f"[{SUBSET_MARK}SUBSET: {', '.join(map(str, sizes))} {what} per cell]"


def subset_note(df: pd.DataFrame, runs: list[dict]) -> str:
    """'' when every cell used its whole test split (as far as the run records tell), else a plain warning."""
    split = {c["name"]: c["test_split_images"] for r in runs for c in r.get("checkpoints") or []
             if isinstance(c, dict) and c.get("test_split_images")}
    ok = df[df["error"] == ""]
    dims = ok["dims"] if "dims" in ok else pd.Series(2, index=ok.index)
    parts = sorted({(int(n), split[c], KINDS.get(int(d), "inputs"))
                    for c, n, d in zip(ok["checkpoint"], ok["n"], dims) if c in split and n < split[c]})
    if not parts:
        return ""
    used = ", ".join(f"{k} of {n} test {kind}" for k, n, kind in parts)
    return (f"SUBSET: cells use the first {used}: a quick look, not the full study "
            f"(95% intervals about +-{100 * 1.96 * (0.25 / parts[0][0]) ** 0.5:.1f} points at worst)")


def missing_cells(df: pd.DataFrame, runs: list[dict]) -> list[str]:
    """Cells the sweeps' runs planned (their records' planned_cells) that have no successful row."""
    names = df["file_checkpoint"] if "file_checkpoint" in df else df["checkpoint"]
    done = {(name, r.test_res, r.policy, r.bandlimit) for name, r in zip(names, df.itertuples())
            if r.error == ""}
    planned = {tuple(c) for m in runs for c in m.get("planned_cells", [])}
    cells = sorted(planned - done, key=lambda c: (c[0], size_key(c[1]), *c[2:]))  # sizes by pixels, not as text
    return [" / ".join(c) for c in cells]


def seen_in_training(frame: pd.DataFrame) -> pd.Series:
    """The rows' seen_in_training flags as booleans (False for rows logged before the column existed)."""
    if "seen_in_training" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["seen_in_training"].astype(str).str.strip().str.lower().isin(["true", "1", "1.0"])


def reference_setting(frame: pd.DataFrame) -> pd.Series:
    """Rows of each checkpoint's reference bandlimit setting: "on" (trained with the mask), "none" (no
    bandlimit), else "off" (an S4ND checkpoint trained without the mask has only that)."""
    settings = frame.groupby("checkpoint")["bandlimit"].agg(set)
    pick = {c: next((b for b in ("on", "none", "off") if b in s), None) for c, s in settings.items()}
    return frame["bandlimit"] == frame["checkpoint"].map(pick)


def reference_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Successful native-policy cells of each checkpoint's reference bandlimit setting, with their seen flags."""
    ok = df[(df["error"] == "") & (df["policy"] == "native")].copy()
    ok["seen"] = seen_in_training(ok)
    return ok[reference_setting(ok)]


class SweptFiles:
    """The checkpoint files a sweep's run records name (path and sha256), each loaded once when first asked
    for: `get(sha256)` is the Checkpoint, or None where the file is gone, no longer loads or has changed."""

    def __init__(self, runs: list[dict]):
        self.paths = {c.get("sha256"): c.get("path") for r in runs for c in r.get("checkpoints") or []
                      if isinstance(c, dict) and c.get("path")}
        self._loaded: dict[str, object] = {}

    def get(self, sha: str):
        from resbench.checkpoints import load_checkpoint

        if sha not in self._loaded:
            path, ckpt = self.paths.get(sha), None
            if path and Path(path).is_file():
                try:
                    ckpt = load_checkpoint(path)
                except ResbenchError:
                    ckpt = None
            self._loaded[sha] = ckpt if ckpt is not None and ckpt.sha256 == sha else None
        return self._loaded[sha]
