"""The sample timeline: every stack sample, flat and columnar.

Raw samples are the truth; trees, top tables and phases are derived from any
slice of them (by time, process or thread). A row is one sample, or, once it
is old, a bucket of samples of one stack on one thread (`n` counts them), so
memory stays bounded on jobs that run for days.

Columns:
    t      float64  wall-clock time of the sample (bucket: its middle), epoch s
    w      float32  wall seconds the row stands for (py-spy's own clock drifts:
                    the collector weights each sample by the real window time)
    active float32  seconds of those the thread was running or runnable (kernel
                    schedstat): what py-spy calls active, measured exactly
    n      uint32   samples in the row
    stack  int32    node of the stack trie
    pid    int32
    tid    int32    the OS thread id
    flags  uint8    FLAG_* bits

Must never build trees or pictures (model.calltree and model.views do), nor
depend on textual or rich.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradetop.model.columns import Columns

FLAG_GIL = 1
"""The sample's thread held the GIL (when the collector could tell)."""

COLUMNS = {
    "t": np.float64,
    "w": np.float32,
    "active": np.float32,
    "n": np.uint32,
    "stack": np.int32,
    "pid": np.int32,
    "tid": np.int32,
    "flags": np.uint8,
}


@dataclass(frozen=True)
class Compaction:
    """Rows older than `age_s` (measured from the newest sample) are merged into `bucket_s` buckets."""

    age_s: float
    bucket_s: float


DEFAULT_COMPACTION = (Compaction(age_s=600.0, bucket_s=1.0), Compaction(age_s=3 * 3600.0, bucket_s=10.0))


class Timeline(Columns):
    """Sample rows (COLUMNS), old ones merged into buckets by `compaction`."""

    def __init__(self, compaction: tuple[Compaction, ...] = DEFAULT_COMPACTION) -> None:
        super().__init__(COLUMNS, 1024)
        self.compaction = compaction
        # Rows before this index are already compacted to each level: re-bucketing them is wasted work.
        self._compacted_upto = [0 for _ in compaction]
        self._rows_at_last_compaction = 0

    @property
    def samples(self) -> int:
        return int(self.n.sum(dtype=np.int64))

    def span(self) -> tuple[float, float] | None:
        """First and last sample time, or None when empty."""
        if len(self) == 0:
            return None
        t = self.t
        return float(t.min()), float(t.max())

    def frozen(self) -> "Timeline":
        """This timeline as it is now; later appends and compactions do not change it."""
        copy = Timeline(compaction=())
        copy._cols = self.frozen_columns()
        return copy

    def select(self, t0: float | None = None, t1: float | None = None, pids=None, tids=None) -> np.ndarray:
        """Boolean mask of rows with t0 <= t < t1 on the given processes/threads."""
        mask = np.ones(len(self), dtype=bool)
        if t0 is not None:
            mask &= self.t >= t0
        if t1 is not None:
            mask &= self.t < t1
        if pids is not None:
            mask &= np.isin(self.pid, np.asarray(list(pids), dtype=np.int32))
        if tids is not None:
            mask &= np.isin(self.tid, np.asarray(list(tids), dtype=np.int32))
        return mask

    def compact(self, min_new_rows: int = 50_000) -> None:
        """Merge old rows into coarse buckets once enough rows came in since the last time."""
        if not self.compaction or len(self) == 0 or len(self) - self._rows_at_last_compaction < min_new_rows:
            return
        self._rows_at_last_compaction = len(self)
        newest = float(self.t.max())
        for level, rule in enumerate(self.compaction):
            # Cut on a bucket edge: a bucket straddling the cut would be merged in parts, again and again.
            before = np.floor((newest - rule.age_s) / rule.bucket_s) * rule.bucket_s
            self._compact_level(level, before, rule.bucket_s)
        self._rows_at_last_compaction = len(self)

    def _compact_level(self, level: int, before: float, bucket_s: float) -> None:
        t = self.t
        # Rows arrive roughly in time order, so the old rows are (nearly) a prefix.
        old = np.flatnonzero(t < before)
        if len(old) == 0:
            return
        end = int(old[-1]) + 1
        start = self._compacted_upto[level]
        if end <= start:
            return
        cols = {name: arr.view() for name, arr in self._cols.items()}
        part = {name: c[start:end] for name, c in cols.items()}
        keep = part["t"] >= before  # late rows inside the prefix stay fine
        merged = bucket_rows({k: v[~keep] for k, v in part.items()}, bucket_s)
        kept = {k: v[keep] for k, v in part.items()}
        for name, arr in self._cols.items():
            arr.splice(start, end, np.concatenate([merged[name], kept[name]]))
        # The rewritten span [start, end) is now len(merged) + len(kept) rows: move every mark after it.
        shift = len(merged["t"]) + len(kept["t"]) - (end - start)
        for other, mark in enumerate(self._compacted_upto):
            if mark >= end:
                self._compacted_upto[other] = mark + shift
            elif mark > start:
                self._compacted_upto[other] = start
        self._compacted_upto[level] = start + len(merged["t"])


def bucket_rows(rows: dict[str, np.ndarray], bucket_s: float) -> dict[str, np.ndarray]:
    """Merge rows of one (bucket, stack, pid, tid, flags) into one row; weights add up."""
    if len(rows["t"]) == 0:
        return {name: np.empty(0, dtype=dtype) for name, dtype in COLUMNS.items()}
    bucket = np.floor(rows["t"] / bucket_s).astype(np.int64)
    order = np.lexsort((rows["flags"], rows["tid"], rows["pid"], rows["stack"], bucket))
    keys = np.stack(
        [bucket[order], rows["stack"][order], rows["pid"][order], rows["tid"][order], rows["flags"][order]], axis=1
    )
    first = np.ones(len(order), dtype=bool)
    first[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    starts = np.flatnonzero(first)
    out = {
        "t": (bucket[order][starts] + 0.5) * bucket_s,
        "w": np.add.reduceat(rows["w"][order].astype(np.float64), starts).astype(np.float32),
        "active": np.add.reduceat(rows["active"][order].astype(np.float64), starts).astype(np.float32),
        "n": np.add.reduceat(rows["n"][order].astype(np.uint64), starts).astype(np.uint32),
        "stack": rows["stack"][order][starts],
        "pid": rows["pid"][order][starts],
        "tid": rows["tid"][order][starts],
        "flags": rows["flags"][order][starts],
    }
    # Keep rows in time order for the readers that cut by time.
    by_time = np.argsort(out["t"], kind="stable")
    return {name: np.asarray(out[name][by_time], dtype=COLUMNS[name]) for name in COLUMNS}
