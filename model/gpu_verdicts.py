"""What the GPU waited for, per phase: stacks and GPU readings joined, said with the numbers.

A phase's thread samples say what the host did (ran Python, waited on a
queue, sat in `.item()`); the GPU's readings over the same interval say
whether the device was busy. Together:

- sync-bound: the thread waits on the GPU (`.item()`, `.cpu()`, `.tolist()`,
  `torch.cuda.synchronize`, cudaStreamSynchronize/cudaMemcpy native frames)
  and the GPU is not kept busy;
- communication-bound: waiting in torch.distributed collectives, GPU idle;
- input-bound: waiting for data (DataLoader, queues, file reads), GPU idle;
- host-bound (launch-bound): the thread runs Python, GPU idle;
- GPU-bound: GPU busy while the host waits: the good case, said as such.

Pure functions of a Profile; no I/O beyond linecache (the source line of a
frame, as phase_costs reads it).
"""

from __future__ import annotations

import linecache
import re
from dataclasses import dataclass

import numpy as np

from gradetop.model.gpu import DeviceWindow
from gradetop.model.phases import Phase, PhaseCost
from gradetop.model.profile import Profile
from gradetop.model.stacks import short_path
from gradetop.model.waits import find_wait, is_native

IDLE_SHARE = 0.3
"""The GPU idle at least this share of a phase: it waited for something."""
BUSY_UTIL = 80.0
"""Mean utilisation (%) from which a GPU counts as kept busy."""
SHARE = 0.4
"""The thread spent at least this share of the phase's samples in one kind of wait."""
RUNNING = 0.5
"""The thread ran (or wanted a CPU) at least this share: host-bound when the GPU idles meanwhile."""
COVERED = 0.8
"""Below this share of a phase read on the GPU, the verdict says how much was read."""
SYNC_DEPTH = 3
"""Python frames from the top searched for a synchronising line (a wrapper may sit between)."""

SYNC_LINE = re.compile(r"\.(item|cpu|tolist|numpy)\(\s*\)|\bcuda\.synchronize\(|\.synchronize\(\s*\)")
SYNC_NATIVE = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy",
               "cuStreamSynchronize", "cuCtxSynchronize", "cuEventSynchronize", "cuMemcpyDtoH")
INPUT_REASONS = frozenset({"queue.get", "DataLoader wait", "read", "connection recv", "pool result wait"})
COMM_REASON = "torch.distributed collective"


@dataclass(frozen=True)
class PhaseGpu:
    """A phase's GPU figures: the report's per-phase fields and the verdict's evidence."""

    devices: tuple[int, ...]
    util_mean: float | None
    util_max: float | None
    sm_active_mean: float | None
    memory_peak: int
    idle_s: float
    read_s: float
    """Seconds of the phase the GPU was read (less than its length when the sampler started late)."""
    energy_j: float | None
    verdict_kind: str = ""
    verdict: str = ""


def classify(frames, line_of=linecache.getline) -> tuple[str | None, str]:
    """('sync' | 'comm' | 'input' | None, where) for one root-first stack of model frames."""
    tuples = [(f.function, f.file, f.line) for f in frames]
    python = [i for i, f in enumerate(tuples) if not is_native(f)]
    if not python:
        return None, ""
    if any(any(n in f[0] for n in SYNC_NATIVE) for f in tuples[python[-1] + 1:]):
        return "sync", _where(tuples[python[-1]], line_of)
    for i in reversed(python[-SYNC_DEPTH:]):
        function, file, line = tuples[i]
        text = line_of(file, line).strip() if file else ""
        if SYNC_LINE.search(text) or (function.endswith("synchronize") and file.endswith("torch/cuda/__init__.py")):
            return "sync", _where(tuples[i], line_of)
    top_line = line_of(tuples[python[-1]][1], tuples[python[-1]][2]).strip() if python else None
    wait = find_wait(tuples, top_line or None, False)
    if wait is None:
        return None, ""
    caller = f"{wait.frame[0]} at {short_path(wait.frame[1])}:{wait.frame[2]}"
    if wait.reason == COMM_REASON:
        return "comm", f"{wait.reason} ({caller})"
    if wait.reason in INPUT_REASONS:
        return "input", f"{wait.reason} ({caller})"
    return None, ""


def _where(frame, line_of) -> str:
    function, file, line = frame
    text = line_of(file, line).strip()
    at = f"{short_path(file)}:{line}"
    return f"`{text}` at {at}" if text else f"{function} at {at}"


def phase_gpu(profile: Profile, cost: PhaseCost, cache: dict | None = None) -> PhaseGpu | None:
    """The GPU figures and verdict of one phase, or None where no GPU was read during it."""
    phase = cost.phase
    gpu = profile.gpu
    cache = cache if cache is not None else {}
    devices = cache.get(("devices", phase.pid))
    if devices is None:
        devices = cache[("devices", phase.pid)] = gpu.devices_of({phase.pid})
    windows = [w for i in devices if (w := gpu.window(i, phase.start, phase.end)) and w.seconds > 0]
    if not windows:
        return None
    utils = [w.util_mean for w in windows if w.util_mean is not None]
    sms = [w.sm_active_mean for w in windows if w.sm_active_mean is not None]
    figures = PhaseGpu(
        devices=tuple(w.index for w in windows),
        util_mean=float(np.mean(utils)) if utils else None,
        util_max=max((w.util_max for w in windows if w.util_max is not None), default=None),
        sm_active_mean=float(np.mean(sms)) if sms else None,
        memory_peak=max(w.mem_peak for w in windows),
        idle_s=float(np.mean([w.idle_s for w in windows])),
        read_s=float(np.mean([w.seconds for w in windows])),
        energy_j=None if all(w.energy_j is None for w in windows) else float(sum(w.energy_j or 0.0 for w in windows)),
    )
    kind, words = verdict(profile, cost, windows, figures, cache)
    if figures.read_s < COVERED * phase.duration:
        words += f" (GPU read for {figures.read_s:.1f} s of its {phase.duration:.1f} s)"
    return PhaseGpu(**{**figures.__dict__, "verdict_kind": kind, "verdict": words})


def thread_shares(profile: Profile, phase: Phase, cache: dict) -> dict[str, tuple[float, str]]:
    """Share of the phase's sampled wall time in each kind of wait, and where the most of it was.

    `cache` keeps each thread's samples in time order and each stack's class, so thousands of
    phases cost a binary search and a bincount each, not a pass over the whole timeline.
    """
    key = ("thread", phase.pid, phase.tid)
    if key not in cache:
        tl = profile.timeline
        idx = np.flatnonzero((tl.pid == phase.pid) & (tl.tid == phase.tid))
        idx = idx[np.argsort(tl.t[idx], kind="stable")]
        cache[key] = (tl.t[idx], tl.stack[idx], tl.w[idx].astype(np.float64))
    t, stacks, w = cache[key]
    i0, i1 = np.searchsorted(t, [phase.start, phase.end])
    total = float(w[i0:i1].sum())
    if total <= 0:
        return {}
    nodes, inverse = np.unique(stacks[i0:i1], return_inverse=True)
    per_node = np.bincount(inverse, weights=w[i0:i1])
    out: dict[str, list] = {}
    for node, seconds in zip(nodes.tolist(), per_node.tolist()):
        if node not in cache:
            cache[node] = classify(profile.stacks.frames_of(node))
        kind, where = cache[node]
        if kind is None:
            continue
        entry = out.setdefault(kind, [0.0, "", 0.0])
        entry[0] += seconds
        if seconds > entry[2]:
            entry[1], entry[2] = where, seconds
    return {k: (v[0] / total, v[1]) for k, v in out.items()}


def verdict(profile: Profile, cost: PhaseCost, windows: list[DeviceWindow], g: PhaseGpu,
            cache: dict) -> tuple[str, str]:
    phase = cost.phase
    idle = g.idle_s / g.read_s if g.read_s > 0 else 0.0
    util = g.util_mean if g.util_mean is not None else float("nan")
    which = "GPU " + ",".join(str(i) for i in g.devices)
    thread = profile.threads.get((phase.pid, phase.tid))
    who = "the main thread" if thread is not None and thread.name == "MainThread" else f"thread {phase.tid}"
    name = f"`{phase.name}`"
    shares = thread_shares(profile, phase, cache)
    running = cost.active_s / cost.sampled_s if cost.sampled_s > 0 else 0.0
    sm = f", SM active {g.sm_active_mean:.0f}%" if g.sm_active_mean is not None else ""
    sync, sync_at = shares.get("sync", (0.0, ""))
    comm, comm_at = shares.get("comm", (0.0, ""))
    feed, feed_at = shares.get("input", (0.0, ""))
    if sync >= SHARE and not util >= BUSY_UTIL:
        return "sync", (f"sync-bound: {who} waited on the GPU {sync:.0%} of {name} in {sync_at}; "
                        f"{which} was {util:.0f}% utilised{sm}, idle {idle:.0%}")
    if comm >= SHARE and idle >= IDLE_SHARE:
        return "communication", (f"communication-bound: {which} was idle {idle:.0%} of {name} while {who} "
                                 f"waited {comm:.0%} in {comm_at}")
    if feed >= SHARE and idle >= IDLE_SHARE:
        return "input", (f"input-bound: {which} was idle {idle:.0%} of {name} while {who} waited {feed:.0%} "
                         f"for data in {feed_at}")
    if running >= RUNNING and idle >= IDLE_SHARE:
        return "host", (f"host-bound: {which} was idle {idle:.0%} of {name} while {who} ran Python "
                        f"{running:.0%} of the time (launch-bound if it launches the kernels: fuse them, "
                        f"or capture a CUDA graph)")
    if util >= BUSY_UTIL:
        waited = 1.0 - running
        return "gpu", (f"GPU-bound (the good case): {which} was {util:.0f}% utilised{sm} during {name} "
                       f"while {who} waited {waited:.0%} of the time"
                       + (f", mostly in {sync_at}" if sync >= SHARE else ""))
    return "mixed", f"GPU mixed: {which} {util:.0f}% utilised{sm}, idle {idle:.0%} of {name}; no single cause"
