"""Imported samples into a Profile, through the same StackBatch records the collectors hand over.

Files made by other tools carry no sample times: py-spy's raw format has
counts per stack, speedscope has samples in order with their weights. So
each thread's samples are laid end to end from the start of the run, in the
order the file gives them, each as long as its weight: totals, proportions
and order are the file's, the times are only plausible. The meta says so
(mode "import", options.imported_from).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import StackBatch, ThreadSamples


@dataclass
class ImportedThread:
    pid: int
    tid: int
    name: str = ""
    stacks: list[tuple[int, ...]] = field(default_factory=list)
    """Root-first indices into the import's frames, one per sample."""
    weights: list[float] = field(default_factory=list)
    """Seconds each sample stands for."""


def _place_unknown(threads: list[ImportedThread]) -> None:
    """Give samples of an unnamed process (pid 0) a pid: the lowest tid among them, else 1.

    On Linux a process's main thread has the process's id, and it is the
    oldest, lowest tid. A pid 0 would be its own parent (ppid 0) in the process tree.
    """
    unknown = [t for t in threads if t.pid == 0]
    if not unknown:
        return
    guess = min((t.tid for t in unknown if t.tid > 0), default=1)
    for t in unknown:
        t.pid = guess
        if t.tid == 0:
            t.tid = guess


def build_profile(frames: list[tuple[str, str, int]], threads: list[ImportedThread], commands: dict[int, str],
                  imported_from: str, start_time: float, rate_hz: float) -> Profile:
    _place_unknown(threads)
    duration = max((sum(t.weights) for t in threads), default=0.0)
    pids = list(dict.fromkeys(t.pid for t in threads))
    target = pids[0] if pids else None
    meta = ProfileMeta(host="", start_time=start_time, end_time=start_time + duration, rate_hz=rate_hz,
                       command=commands.get(target, "").split(), target_pid=target, mode="import",
                       options={"imported_from": imported_from, "idle": True})
    profile = Profile(meta)
    for pid in pids:
        mine = [t for t in threads if t.pid == pid and t.stacks]
        samples = []
        for t in mine:
            weights = np.asarray(t.weights, dtype=np.float64)
            ends = np.cumsum(weights)
            times = start_time + ends - weights / 2
            samples.append(ThreadSamples(pid, t.tid, t.name, times, weights.astype(np.float32), t.stacks))
        span = max((sum(t.weights) for t in mine), default=0.0)
        ticks = max((len(t.stacks) for t in mine), default=0)
        profile.ingest(StackBatch(pid, start_time, start_time + span, ticks, frames, samples,
                                  {pid: commands.get(pid, "")}))
        info = profile.processes.get(pid)
        if info is not None:
            info.create_time = start_time
    return profile
