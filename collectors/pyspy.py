"""Talking to the py-spy binary: finding it, reading its speedscope files, rewording its errors.

py-spy has no Python API and no live output (shared/design/PYSPY.md), so the
samplers run it as a program. Its errors come with a Rust backtrace on
stderr: `explain_failure` turns them into one line a user can act on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys

import numpy as np
import psutil

from gradetop.model.records import StackBatch, ThreadSamples

PTRACE_FIX = (
    "run gradetop as root, give it CAP_SYS_PTRACE (docker run --cap-add SYS_PTRACE; "
    "Kubernetes securityContext.capabilities.add: [SYS_PTRACE]), "
    "or allow it with sysctl kernel.yama.ptrace_scope=0"
)

_PROFILE_NAME = re.compile(r'^(?:Process (\d+) )?Thread (\d+)(?: "(.*)")?$')
_THREAD_FRAME = re.compile(r"^thread \((\d+|0x[0-9a-fA-F]+)\)(?:: (.*))?$")
_PROCESS_FRAME = re.compile(r'^process (\d+):"(.*)"$')


class PySpyMissing(RuntimeError):
    pass


def find_pyspy() -> str:
    """The py-spy installed beside this Python (pip puts it there), else the one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if os.access(here, os.X_OK):
        return here
    found = shutil.which("py-spy")
    if found:
        return found
    raise PySpyMissing("py-spy is not installed: pip install py-spy")


def explain_failure(stderr: str, pid: int) -> tuple[str, str]:
    """(kind, one-line message) for a py-spy run that failed on `pid`.

    kind is 'permission', 'gone', 'not-python' or 'error'.
    """
    text = stderr.split("Stack backtrace:")[0]
    lowered = text.lower()
    if not psutil.pid_exists(pid):
        return "gone", f"process {pid} has exited"
    if "permission denied" in lowered or "operation not permitted" in lowered:
        return "permission", f"cannot read the stacks of process {pid}: ptrace is not permitted; {PTRACE_FIX}"
    if any(
        needle in lowered
        for needle in (
            "failed to find python version",
            "bad address",
            "failed to find a python interpreter",
            "couldn't find python",
            "failed to get python version",
            "doesn't look like a python",
            "failed to find python interpreter",
        )
    ):
        return "not-python", f"process {pid} is not a Python process (or its interpreter has not started): stacks unavailable"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "py-spy failed")
    first = first.removeprefix("Error:").strip()
    return "error", f"py-spy could not sample process {pid}: {first}"


def parse_speedscope(
    data: str | bytes,
    pid: int,
    t_start: float,
    t_end: float,
    continuing: set[tuple[int, int]] = frozenset(),
    tick_s: float | None = None,
    stopped_at: float | None = None,
    asked_hz: float = 0.0,
) -> StackBatch:
    """A StackBatch from one window of `py-spy record -f speedscope --idle -t` on `pid`.

    py-spy keeps every tick of every thread in order but no timestamps, and
    its rate drifts; so a tick stands for (window wall time / ticks), and a
    thread with fewer samples than the window's ticks is placed at the start
    of the window if it was seen before (it ended) and at the end otherwise
    (it began). With `tick_s` (the pace measured on an earlier window), the
    window lasts ticks x tick_s at most: for a window whose end came late.

    With `stopped_at` later than `t_end`, py-spy went on sampling after the
    next window took over at `t_end`: the ticks past it duplicate the next
    window's first ones, so only the share before `t_end` is kept.
    """
    doc = json.loads(data)
    shared = doc.get("shared", {}).get("frames", [])
    profiles = doc.get("profiles", [])
    ticks = max((len(p.get("samples", [])) for p in profiles), default=0)
    if tick_s is not None and ticks:
        t_end = min(t_end, t_start + ticks * tick_s)
    kept_ticks = ticks
    if stopped_at is not None and stopped_at > t_end > t_start and ticks:
        kept_ticks = max(1, min(ticks, round(ticks * (t_end - t_start) / (stopped_at - t_start))))
    span = max(t_end - t_start, 0.0)
    dt = span / kept_ticks if kept_ticks else 0.0

    # Frames py-spy adds for processes and threads become columns, not stack frames.
    keep = np.ones(len(shared), dtype=bool)
    frames: list[tuple[str, str, int]] = []
    local: list[int] = []
    commands: dict[int, str] = {}
    thread_names: dict[int, str] = {}
    for i, f in enumerate(shared):
        name, file = f.get("name", ""), f.get("file") or ""
        if not file:
            m = _PROCESS_FRAME.match(name)
            if m:
                commands[int(m.group(1))] = m.group(2)
                keep[i] = False
                local.append(-1)
                continue
            m = _THREAD_FRAME.match(name)
            if m:
                if m.group(2) and not m.group(1).startswith("0x"):
                    thread_names[int(m.group(1))] = m.group(2)
                keep[i] = False
                local.append(-1)
                continue
        local.append(len(frames))
        frames.append((name, file, int(f.get("line") or 0)))

    threads = []
    for p in profiles:
        m = _PROFILE_NAME.match(p.get("name", ""))
        if not m:
            continue
        tid = int(m.group(2))
        name = m.group(3) or thread_names.get(tid, "")
        thread_pid = int(m.group(1)) if m.group(1) else pid
        samples = p.get("samples", [])
        n = len(samples)
        if n == 0:
            continue
        offset = 0 if (thread_pid, tid) in continuing or n == ticks else ticks - n
        n = max(0, min(n, kept_ticks - offset))
        if n == 0:
            continue
        times = t_start + (np.arange(n) + offset + 0.5) * dt
        stacks = [tuple(local[i] for i in s if keep[i]) for s in samples[:n]]
        threads.append(
            ThreadSamples(thread_pid, tid, name, times, np.full(n, dt, dtype=np.float32), stacks)
        )
    return StackBatch(pid, t_start, t_end, kept_ticks, frames, threads, commands, asked_hz)
