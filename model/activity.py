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


class CounterReadings:
    """The last `keep` readings of one thread's active-seconds counter, as arrays the join reads without
    a copy (one thread is read 10 times a second, and every window joins each of its threads)."""

    __slots__ = ("_t", "_v", "_end", "_keep")

    def __init__(self, keep: int) -> None:
        self._t, self._v = np.empty(2 * keep), np.empty(2 * keep)
        self._end = 0
        self._keep = keep

    def __len__(self) -> int:
        return min(self._end, self._keep)

    def append(self, t: float, value: float) -> None:
        end = self._end
        if end == len(self._t):  # full: the last `keep - 1` move to the front, once per `keep` readings
            end = self._keep - 1
            self._t[:end], self._v[:end] = self._t[-end:], self._v[-end:]
        self._t[end] = t
        self._v[end] = value
        self._end = end + 1

    @property
    def times(self) -> np.ndarray:
        return self._t[max(0, self._end - self._keep):self._end]

    @property
    def values(self) -> np.ndarray:
        return self._v[max(0, self._end - self._keep):self._end]

    @property
    def last_time(self) -> float:
        return float(self._t[self._end - 1])


class ActivitySplit:
    """Gives each sample its share of its thread's kernel-counted active seconds (see the module doc)."""

    def __init__(self, stacks: StackTable) -> None:
        self.stacks = stacks
        self._waits = np.zeros(0, dtype=np.int8)
        """Per trie node: 1 in a known wait, 0 not, -1 not classified yet (most nodes are never a stack's top)."""
        self._held: dict[tuple[int, int], float] = {}
        """Per thread: kernel seconds its busy samples could not hold yet."""

    def waits(self, nodes: np.ndarray) -> np.ndarray:
        """Whether each sample's stack is in a known wait: an array lookup, classifying only new tops."""
        if len(self._waits) < len(self.stacks):
            self._waits = np.r_[self._waits, np.full(len(self.stacks) - len(self._waits), -1, dtype=np.int8)]
        known = self._waits[nodes]
        if (known < 0).any():
            for node in np.unique(nodes[known < 0]).tolist():
                self._waits[node] = node_wait_reason(self.stacks, node) is not None
            known = self._waits[nodes]
        return known.astype(bool)

    def active_seconds(self, readings: dict[tuple[int, int], CounterReadings], threads: list[tuple[int, int]],
                       counts: np.ndarray, times: np.ndarray, weights: np.ndarray, nodes: np.ndarray,
                       ran: np.ndarray | None = None) -> np.ndarray:
        """Seconds of each sample of a window that its thread was running or runnable: its kernel counter
        (`readings`, per thread) says how many, its stacks where. The threads' samples lie one after the
        other, `counts` each. Where the sampler saw a thread not run since its tick before (`ran` False:
        collectors.direct reads every thread's schedstat at every tick), the sample is idle."""
        half = weights / 2.0
        begins, ends = times - half, times + half
        firsts = np.cumsum(counts) - counts
        lows, highs = np.minimum.reduceat(begins, firsts).tolist(), np.maximum.reduceat(ends, firsts).tolist()
        # Every thread's readings on one axis, each after the one before (`shift` apart), so that one
        # interpolation serves the whole window: per thread, it cost more than the rest of the ingest.
        axis, counter, shift = [], [], np.zeros(len(threads))
        joined = np.zeros(len(threads), dtype=bool)
        placed = 0.0
        for k, thread in enumerate(threads):
            recent = readings.get(thread)
            if not recent or len(recent) < 2:
                continue  # never read (it lived between two readings): py-spy saw it run Python
            joined[k] = True
            rt, rc = recent.times, recent.values
            lo, hi = lows[k], highs[k]
            # Samples just outside the readings (a thread born or a process ended between two
            # readings) continue the nearest interval's rate instead of counting as idle.
            if lo < rt[0]:
                rate = (rc[1] - rc[0]) / max(rt[1] - rt[0], 1e-9)
                rt, rc = np.r_[lo, rt], np.r_[rc[0] - rate * (rt[0] - lo), rc]
            if hi > rt[-1]:
                rate = (rc[-1] - rc[-2]) / max(rt[-1] - rt[-2], 1e-9)
                rt, rc = np.r_[rt, hi], np.r_[rc, rc[-1] + rate * (hi - rt[-1])]
            shift[k] = placed - rt[0]
            axis.append(rt + shift[k])
            counter.append(rc)
            placed += rt[-1] - rt[0] + 1.0
        if ran is not None:
            # An idle tick holds none of the counter's seconds: the others share them. (The counter is read at
            # 10 Hz; a thread's start-up before its first sample spread over the sleep after it.)
            weights = np.where(ran, weights, 0.0).astype(np.float32)
        if not axis:
            return weights.astype(np.float32)
        which = np.repeat(np.arange(len(threads)), counts)
        at, x, y = shift[which], np.concatenate(axis), np.concatenate(counter)
        kernel = np.where(joined[which], np.interp(ends + at, x, y) - np.interp(begins + at, x, y), 0.0)
        return self.split(threads, which, kernel, weights, nodes, joined)

    def split(self, threads: list[tuple[int, int]], which: np.ndarray, kernel: np.ndarray,
              weights: np.ndarray, nodes: np.ndarray, joined: np.ndarray) -> np.ndarray:
        """Active seconds per sample of one window: sample i is of thread `threads[which[i]]`, and
        `kernel[i]` is what that thread's counter says ran around it. A thread that is not `joined`
        (never read: it lived between two readings) has every sample count active."""
        w = weights.astype(np.float64)
        waiting = self.waits(nodes)
        n = len(threads)
        busy_w = np.bincount(which, np.where(waiting, 0.0, w), n).tolist()
        wait_w = np.bincount(which, np.where(waiting, w, 0.0), n).tolist()
        ran_s = np.bincount(which, np.maximum(kernel, 0.0), n).tolist()
        busy_share, wait_share = np.ones(n), np.ones(n)
        for k, thread in enumerate(threads):
            if not joined[k]:
                continue
            ran = self._held.pop(thread, 0.0) + ran_s[k]
            to_busy = min(busy_w[k], ran)
            # What busy samples could not hold: kept for the next window's (they missed the bursts here),
            # what is beyond that goes to the waits (a thread also runs a little in them: it wakes there).
            held = min(CARRY_S, ran - to_busy) if busy_w[k] or wait_w[k] else 0.0
            to_wait = min(wait_w[k], ran - to_busy - held)
            if held > 0:
                self._held[thread] = held
            busy_share[k] = to_busy / busy_w[k] if busy_w[k] else 0.0
            wait_share[k] = to_wait / wait_w[k] if wait_w[k] else 0.0
        return (w * np.where(waiting, wait_share[which], busy_share[which])).astype(np.float32)

    def forget(self, thread: tuple[int, int]) -> None:
        self._held.pop(thread, None)
