"""Children that hardly run: when one is quiet, when it wakes, and what stands for it while it sleeps.

py-spy costs about 4% of a core per process at 100 Hz, whatever the process
does (bench/), so a child that hardly runs (a DataLoader or pool worker
waiting for its next task) is sampled at a tenth of the rate: its kernel
counters say it barely ran, so its stack could barely change. It wakes as
soon as its counters move again. One that did not run at all through a
whole window is parked: a thread that does not run cannot change its stack,
so its last stacks stand for the time, as idle samples, with no py-spy.

One that ran under DOZE_SHARE of a core through a whole quiet window (a
pool worker that takes a 1 ms task every few hundred ms) is parked too,
dozing: at 10 Hz py-spy would catch its work about once a minute, and pay
a launch every 2 s for it. Its usual stacks (what each thread showed most)
stand for the time; it wakes when it runs its quiet share again, and is
looked at afresh every DOZE_REFRESH_S.

Reads only /proc (collectors.procfs); the stack sampler decides what to launch.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import numpy as np

from gradetop.collectors.exits import EXITS
from gradetop.collectors.procfs import process_cpu_s, process_active_ns
from gradetop.model.records import StackBatch, ThreadSamples

WAKE_CHECK_S = 0.05
"""How often a quiet child's counters are read."""
PARKED_CHECK_S = 0.1
"""How often a parked child's are: at 15 parked workers, 150 wake-ups a second of gradetop's threads
(300 at 0.05 s; the difference was within the noise of gradetop's CPU, 8 s runs). What it ran since it
woke says when it did, so the new window's first samples still cover that time."""
PARK_AFTER_S = 1.0
"""A quiet child none of whose threads ran for this long is parked, however long its window."""
PARK_CHECK_S = 0.25
"""How often, after that, a quiet window reads whether its child ran at all (every thread's schedstat)."""
DOZE_SHARE = 0.01
"""A quiet child that ran less than this share of a core through a whole quiet window is parked, dozing."""
DOZE_REFRESH_S = 8.0
"""A dozing child gets a quiet window this often: what stands for it is never older."""
WAKE_SPAN_S = 0.5
"""Over how long a quiet child must run more than its share to wake: the kernel charges CPU in 10 ms
ticks, and one tick in one check would wake a worker for each 1 ms task."""

LastStacks = list[tuple[int, int, str, int]]
"""Each thread's (pid, tid, name, stack id) at a window's end: an id of the sampler's StackIds."""


def ran_little(pid: int, since: float, cpu_then: float | None, share: float) -> bool:
    """Whether process `pid` ran less than `share` of a core since `since` (when it had `cpu_then`)."""
    cpu, wall = process_cpu_s(pid), time.time() - since
    return cpu is not None and cpu_then is not None and wall > 0 and cpu - cpu_then < share * wall


def wait_while_quiet(pid: int, since: float, cpu_then: float | None, until: float, share: float,
                     stop: threading.Event, ended: threading.Event,
                     run_ns_then: int | None = None) -> tuple[bool, float | None]:
    """Wait until `until` unless the quiet process wakes (runs more than `share` of a core), or has not
    run at all for PARK_AFTER_S since `since` (when it had run `run_ns_then`): then it may be parked.

    (True, None) when sampling should stop (asked to, or the window ended by itself); (False, t) when
    it woke, t the last reading that found it quiet; (False, None) at `until`, or asleep."""
    readings = [(since, cpu_then)]
    asleep_check = since + PARK_AFTER_S
    while (left := until - time.time()) > 0:
        if stop.wait(min(WAKE_CHECK_S, left)) or ended.is_set():
            return True, None
        now, cpu = time.time(), process_cpu_s(pid)
        if run_ns_then is not None and now >= asleep_check:
            if process_active_ns(pid) == run_ns_then:
                return False, None
            asleep_check = now + PARK_CHECK_S
        quiet_at = readings[-1][0]
        readings = [r for r in readings if now - r[0] <= WAKE_SPAN_S + WAKE_CHECK_S / 2] + [(now, cpu)]
        then, before = readings[0]
        if cpu is not None and before is not None and cpu - before > share * max(now - then, WAKE_SPAN_S):
            return False, quiet_at
    return ended.is_set(), None


def wait_while_asleep(pid: int, since: float, ran: int, every_s: float, stop: threading.Event,
                      cover: Callable[[float, float], None], wake_share: float = 0.0,
                      refresh_s: float | None = None) -> tuple[float | None, bool]:
    """While no thread of `pid` runs (it had run `ran` ns, still so at `since`): `cover(t0, t1)` each
    `every_s` and at the end. With `wake_share`, a dozing process: it may run up to that share of a core
    (over WAKE_SPAN_S) and still doze; after `refresh_s` it is woken to be looked at again.

    Returns (when it woke, whether only to be looked at again): once it runs again, what it has run
    since says how long ago, at the latest (a window's flush can take a few tenths of a second at
    10 Hz, and it may wake meanwhile). (None, False) when sampling stops or it ended."""
    asleep_at = covered_to = since
    readings = [(since, ran)]
    while not stop.is_set():
        now, run_ns = time.time(), process_active_ns(pid)
        if run_ns is None:  # it ended asleep: its last stacks stand to its end (the kernel's word, if watched)
            ended = EXITS.exited_at(pid, wait_s=0.1) or now
            cover(covered_to, min(now, max(asleep_at, ended)))
            return None, False
        readings = [r for r in readings if now - r[0] <= WAKE_SPAN_S] + [(now, run_ns)]
        then, before = readings[0]
        if run_ns - before > wake_share * 1e9 * max(now - then, WAKE_SPAN_S if wake_share else 0.0):
            woke = min(now, max(asleep_at, now - (run_ns - before) / 1e9))
            cover(covered_to, woke)
            return woke, False
        asleep_at = now
        if refresh_s is not None and now - since >= refresh_s:
            cover(covered_to, now)
            return now, True
        if now - covered_to >= every_s:  # its samples reach the model as often as a window's would
            cover(covered_to, now)
            covered_to = now
        stop.wait(PARKED_CHECK_S)
    cover(covered_to, asleep_at)
    return None, False


def usual_stack(samples: ThreadSamples) -> int:
    """The stack a thread showed for the most time in a window (its id)."""
    ids, which = np.unique(samples.stack_of, return_inverse=True)
    return int(ids[np.bincount(which, samples.weights).argmax()])


def parked_batch(pid: int, last: LastStacks, t0: float, t1: float, rate_hz: float, ids: dict) -> StackBatch | None:
    """Idle samples of the last stacks over [t0, t1] at `rate_hz`, of the threads still there; `ids`: the
    batch's id fields (StackIds.batch_fields: its stacks were named before)."""
    if t1 - t0 <= 1e-6:
        return None
    count = max(1, int(round((t1 - t0) * rate_hz)))
    step = (t1 - t0) / count
    times = t0 + (np.arange(count) + 0.5) * step
    weights = np.full(count, step, dtype=np.float32)
    # A thread that ended meanwhile has no more samples; if the whole process ended, all lived to its end.
    gone = not os.path.exists(f"/proc/{pid}")
    threads = [ThreadSamples(p, tid, name, times.copy(), weights.copy(), stack_of=np.full(count, stack, np.int32))
               for p, tid, name, stack in last if gone or os.path.exists(f"/proc/{pid}/task/{tid}")]
    return StackBatch(pid, t0, t1, 0, threads=threads, asked_hz=rate_hz, parked=True, **ids)
