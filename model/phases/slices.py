"""One thread's samples in time order: the unit that rule and automatic phases cut.

Must never cut or name anything (phases.rules and phases.auto do), nor
depend on textual or rich.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from gradetop.model.timeline import Timeline


@dataclass(frozen=True)
class ThreadSlice:
    """Rows `idx` of the timeline that belong to one thread, sorted by time, with their times and weights."""

    pid: int
    tid: int
    idx: np.ndarray
    t: np.ndarray
    w: np.ndarray
    """As the timeline stores them (float32): rule edges are computed in that precision."""


def thread_slices(tl: Timeline, single_only: bool = False) -> Iterator[ThreadSlice]:
    """Each (pid, tid) of the timeline in order; `single_only` skips compacted buckets (n > 1)."""
    if len(tl) == 0:
        return
    keep = tl.n == 1 if single_only else True
    for pid, tid in np.unique(np.stack([tl.pid, tl.tid], axis=1), axis=0):
        idx = np.flatnonzero((tl.pid == pid) & (tl.tid == tid) & keep)
        idx = idx[np.argsort(tl.t[idx], kind="stable")]
        yield ThreadSlice(int(pid), int(tid), idx, tl.t[idx], tl.w[idx])
