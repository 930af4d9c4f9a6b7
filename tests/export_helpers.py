"""A small profile built by hand for the export, import and diff tests: every number in it is known.

Process 100 (the target) runs main -> alpha on its main thread and main ->
beta on a thread named "worker"; process 200 (a child) runs child_work. A
marker phase "train" covers [1002, 1006) of the main thread. Each sample is
0.1 s of wall time; the kernel counters say every thread ran half of it.
"""

from __future__ import annotations

import numpy as np

from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import PhaseMark, ProcessReading, ResourceBatch, StackBatch, ThreadSamples

FRAMES = [("main", "/app/train.py", 1), ("alpha", "/app/train.py", 10), ("beta", "/app/train.py", 20),
          ("child_work", "/app/child.py", 5)]
COUNTS = {(100, 100): 60, (100, 101): 30, (200, 200): 20}
"""Samples per (pid, tid), one every 0.1 s from 1000."""


def _reading(t: float, pid: int, tids: list[int], ppid: int = 1) -> ProcessReading:
    active = (t - 1000.0) / 2  # half of the wall time, on every thread
    return ProcessReading(pid, ppid, "python", ["python", f"{pid}.py"], 1000.0, "running", active * len(tids),
                          (100 + int(t - 1000)) << 20, 0, 0, len(tids), {tid: (active, active) for tid in tids})


def small_profile(counts: dict[tuple[int, int], int] | None = None) -> Profile:
    """The profile above; `counts` changes how many samples a thread has (a variant for diffs)."""
    counts = {**COUNTS, **(counts or {})}
    p = Profile(ProfileMeta(host="box", start_time=1000.0, end_time=1010.0, rate_hz=10.0,
                            command=["python", "train.py"], target_pid=100))
    threads = {100: [100, 101], 200: [200]}
    for t in np.arange(1000.0, 1010.5, 0.5):
        p.ingest(ResourceBatch(float(t), [_reading(float(t), 100, threads[100]),
                                          _reading(float(t), 200, threads[200], ppid=100)]))
    stacks = {(100, 100): (0, 1), (100, 101): (0, 2), (200, 200): (3,)}
    names = {100: "MainThread", 101: "worker", 200: "MainThread"}
    for pid in (100, 200):
        samples = []
        for (spid, tid), count in counts.items():
            if spid != pid:
                continue
            times = 1000.0 + 0.05 + 0.1 * np.arange(count)
            samples.append(ThreadSamples(pid, tid, names[tid], times, np.full(count, 0.1, np.float32),
                                         [stacks[(pid, tid)]] * count))
        p.ingest(StackBatch(pid, 1000.0, 1010.0, 100, FRAMES, samples, {pid: f"python {pid}.py"}))
    p.ingest(PhaseMark(1002.0, 100, 100, "B", "train"))
    p.ingest(PhaseMark(1006.0, 100, 100, "E", "train"))
    return p
