"""Which samples of a thread ran: the kernel's counter says how much, the stacks say where.

py-spy decides per sample whether a thread is idle but writes that flag to
none of its outputs (PYSPY.md), and the kernel's per-thread counter is read
at 10 Hz. Spread evenly over the samples between two readings, the CPU of a
5 ms burst lands on the 45 ms sleep beside it: a duty-cycle loop read 0.09 s
`crunch` and 0.74 s `nap` where the truth was 0.81 s and 0.01 s.

A thread whose stack is in a known wait (`time.sleep`, a lock, a queue's
get: model.waits) does not run there, so the counter's seconds go first to
the samples that are not in one, each up to its own wall time, and only what
is left to the waits, over a whole window (0.5 s). Which ticks catch a
short burst is chance (py-spy's ticks come at exponential intervals), and a
window can miss every burst of a 10%-busy loop, so up to CARRY_S of what its
busy samples could not hold waits for the next window's. The same loop now
reads 0.63-0.73 s `crunch` of 0.80 at 100 Hz and 0.69-0.78 s at 250 Hz, and
at most its sleep's own CPU in `nap`. What is left is the sampler's: py-spy
alone reads 0.73-0.79 s at 100 Hz.
"""

from __future__ import annotations

import linecache

import numpy as np

from gradetop.model.stacks import StackTable
from gradetop.model.waits import wait_reason

CARRY_S = 0.1
"""Most kernel seconds a thread may hold for its busy samples of the next windows: a second's worth of a
10%-busy loop, whose bursts chance can leave uncaught for a whole window."""


def node_wait_reason(stacks: StackTable, node: int, active: bool | None = None) -> str | None:
    """The wait at the top of stack `node` ("sleep", "queue.get"...), or None; "no Python frames" for an empty one."""
    frames = stacks.frames_of(node)
    if not frames:
        return "no Python frames"
    top = frames[-1]
    line = (linecache.getline(top.file, top.line).strip() or None) if top.file else None
    return wait_reason([(f.function, f.file, f.line) for f in frames], line, active)


class ActivitySplit:
    """Gives each sample its share of its thread's kernel-counted active seconds (see the module doc)."""

    def __init__(self, stacks: StackTable) -> None:
        self.stacks = stacks
        self._waits: dict[int, bool] = {}
        self._held: dict[tuple[int, int], float] = {}
        """Per thread: kernel seconds its busy samples could not hold yet."""

    def waits(self, nodes: np.ndarray) -> np.ndarray:
        """Whether each sample's stack is in a known wait."""
        unique, index = np.unique(nodes, return_inverse=True)
        known = self._waits
        for node in unique.tolist():
            if node not in known:
                known[node] = node_wait_reason(self.stacks, node) is not None
        return np.array([known[n] for n in unique.tolist()], dtype=bool)[index]

    def split(self, thread: tuple[int, int], kernel: np.ndarray, weights: np.ndarray,
              nodes: np.ndarray) -> np.ndarray:
        """Active seconds per sample of one thread in one window: `kernel` is what its counter says ran
        around each sample."""
        w = weights.astype(np.float64)
        waiting = self.waits(nodes)
        busy_w, wait_w = float(w[~waiting].sum()), float(w[waiting].sum())
        ran = self._held.pop(thread, 0.0) + float(np.maximum(kernel, 0.0).sum())
        to_busy = min(busy_w, ran)
        # What busy samples could not hold: kept for the next window's (they missed the bursts here),
        # what is beyond that goes to the waits (a thread also runs a little in them: it wakes there).
        held = min(CARRY_S, ran - to_busy) if busy_w or wait_w else 0.0
        to_wait = min(wait_w, ran - to_busy - held)
        if held > 0:
            self._held[thread] = held
        share = np.where(waiting, to_wait / wait_w if wait_w else 0.0, to_busy / busy_w if busy_w else 0.0)
        return (w * share).astype(np.float32)

    def forget(self, thread: tuple[int, int]) -> None:
        self._held.pop(thread, None)
