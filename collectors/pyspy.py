"""Talking to the py-spy binary: finding it, reading its Chrome trace files, rewording its errors.

py-spy has no Python API and no live output (shared/design/PYSPY.md), so the
samplers run it as a program. Its errors come with a Rust backtrace on
stderr: `explain_failure` turns them into one line a user can act on.
"""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import psutil

from gradetop.model.records import StackBatch, ThreadSamples

PTRACE_FIX = (
    "run gradetop as root, give it CAP_SYS_PTRACE (docker run --cap-add SYS_PTRACE; "
    "Kubernetes securityContext.capabilities.add: [SYS_PTRACE]), "
    "or allow it with sysctl kernel.yama.ptrace_scope=0"
)

_THREAD_FRAME = re.compile(r"^thread \((\d+|0x[0-9a-fA-F]+)\)(?:: (.*))?$")


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


class StackIds:
    """One sampler's frames and stacks, numbered once for all its windows: a batch names only those no
    earlier batch of the sampler did, and the model maps each once (model.records.StackBatch). Used by
    the sampler's own thread only."""

    _spaces = itertools.count(1)

    def __init__(self) -> None:
        self.space = next(self._spaces)
        self.frames: list[tuple[str, str, int]] = []
        self.stacks: list[tuple[int, ...]] = []
        self._frame_ids: dict[tuple[str, str, int], int] = {}
        self._stack_ids: dict[tuple[int, ...], int] = {}
        self._sent = (0, 0)
        """Frames and stacks that batches handed to the model named: the next batch names those after."""

    def frame(self, frame: tuple[str, str, int]) -> int:
        fid = self._frame_ids.get(frame)
        if fid is None:
            fid = self._frame_ids[frame] = len(self.frames)
            self.frames.append(frame)
        return fid

    def stack(self, stack: tuple[int, ...]) -> int:
        sid = self._stack_ids.get(stack)
        if sid is None:
            sid = self._stack_ids[stack] = len(self.stacks)
            self.stacks.append(stack)
        return sid

    def batch_fields(self) -> dict:
        """The id fields of a batch made now: the frames and stacks not sent yet."""
        frames, stacks = self._sent
        return {"space": self.space, "first_frame": frames, "frames": self.frames[frames:],
                "first_stack": stacks, "stacks": self.stacks[stacks:]}

    def emitted(self, batch: StackBatch) -> None:
        """`batch` reached the model: its frames and stacks need not be named again."""
        if batch.space == self.space:
            self._sent = (max(self._sent[0], batch.first_frame + len(batch.frames)),
                          max(self._sent[1], batch.first_stack + len(batch.stacks)))


def parse_chrometrace(
    data: str | bytes,
    pid: int,
    t_first: float,
    t_end: float,
    rate_hz: float,
    t_from: float | None = None,
    traces: int | None = None,
    asked_hz: float = 0.0,
    t_zero: float | None = None,
    ids: StackIds | None = None,
) -> StackBatch:
    """A StackBatch from one window of `py-spy record -f chrometrace --idle -t` on `pid`, cut at `t_end`.

    py-spy writes a B or E event each time a thread's stack changes, with a
    microsecond `ts` from its own start: `t_zero` on our clock (when it was
    exec'd; else its first event is taken to be at `t_first`, when it said
    'Sampling', which can be 15 ms early). Its ticks come at random
    (exponential) intervals, so a change is seen on average one tick
    (1/rate_hz) after it happened: each change is placed that much before
    the tick that saw it, and a phase edge or a burst lands where it
    happened, to a tick. Between two changes the
    stack held; each stretch becomes samples of at most one tick (1/rate_hz)
    at their middles, so a thread's samples add up to the wall time it was
    seen. A thread's stretch that starts at the first tick reaches back to
    `t_from` (the previous window's cut, when that is earlier), so windows
    meet without a gap.

    With `ids`, frames and stacks get the sampler's lasting ids (the batch names the new ones); else
    ids of this batch alone.

    The batch's ticks are what py-spy says it sampled (`traces`: one per
    thread per tick), over the threads it saw for as long as it saw each,
    in the part kept; else the kept part at the asked rate.
    """
    events = json.loads(data) if data else []
    tick = 1.0 / rate_hz if rate_hz > 0 else 0.01
    start = min((e.get("ts", 0) for e in events), default=0)
    closing = max((e.get("ts", 0) for e in events), default=0)
    t_from = t_first if t_from is None else min(t_from, t_first)
    own = ids is None
    ids = ids or StackIds()
    per_thread: dict[int, list[dict]] = {}
    for e in events:
        per_thread.setdefault(e.get("tid", 0), []).append(e)
    threads = []
    seen_s = 0.0
    for evs in per_thread.values():
        evs.sort(key=lambda e: e.get("ts", 0))  # stable: B and E of one change keep their order
        os_tid, name = None, ""
        stack: list[int] = []
        seen_at: list[float] = []
        first_tick: list[bool] = []
        """Stacks seen at py-spy's first tick: they stand for the time since `t_from`."""
        stacks: list[int] = []
        """Each stretch's stack id."""
        i = 0
        while i < len(evs):
            ts = evs[i].get("ts", 0)
            while i < len(evs) and evs[i].get("ts", 0) == ts:
                e = evs[i]
                i += 1
                if e.get("ph") == "E":
                    if stack:
                        stack.pop()
                    continue
                args = e.get("args") or {}
                func, file = e.get("name", ""), args.get("filename") or ""
                if not file:
                    m = _THREAD_FRAME.match(func)
                    if m:
                        if not m.group(1).startswith("0x"):
                            os_tid = int(m.group(1))
                        name = m.group(2) or name
                        stack.append(-1)
                        continue
                stack.append(ids.frame((func, file, int(args.get("line") or 0))))
            if t_zero is None:
                seen_at.append(t_first + (ts - start) / 1e6)
            else:  # py-spy's closing of every stack, as it writes the file, was not seen at a tick
                seen_at.append(t_zero + ts / 1e6 - (0.0 if ts == closing else tick))
            first_tick.append(ts == start)
            stacks.append(ids.stack(tuple(f for f in stack if f >= 0)))
        if os_tid is None or not seen_at:
            continue
        seen_s += seen_at[-1] - seen_at[0]
        begins = np.array(seen_at, dtype=np.float64)
        ends = np.r_[begins[1:], begins[-1]]
        begins[first_tick] = t_from
        begins, ends = np.clip(begins, t_from, t_end), np.clip(ends, t_from, t_end)
        keep = [k for k in range(len(stacks)) if ids.stacks[stacks[k]] and ends[k] - begins[k] > 1e-6]
        if not keep:
            continue
        spans = ends[keep] - begins[keep]
        counts = np.maximum(1, np.ceil(spans / tick - 1e-6)).astype(np.int64)
        step = spans / counts
        segment = np.repeat(np.arange(len(keep)), counts)
        within = np.arange(len(segment)) - np.repeat(np.cumsum(counts) - counts, counts)
        times = begins[keep][segment] + (within + 0.5) * step[segment]
        threads.append(ThreadSamples(pid, os_tid, name, times, step[segment].astype(np.float32),
                                     stack_of=np.array(stacks, dtype=np.int32)[keep][segment]))
    span = (max((e.get("ts", 0) for e in events), default=start) - start) / 1e6
    if traces and seen_s > 0 and span > 0:
        ticks = int(round(traces / (seen_s / span) * min(1.0, max(t_end - t_first, 0.0) / span)))
    else:
        ticks = int(round(max(t_end - t_from, 0.0) * rate_hz))
    names = {"frames": ids.frames, "stacks": ids.stacks} if own else ids.batch_fields()
    return StackBatch(pid, t_from, max(t_end, t_from), ticks, threads=threads, asked_hz=asked_hz, **names)


def last_change_s(data: str | bytes) -> float | None:
    """Seconds from py-spy's first tick to the last stack change before it closed every stack
    (when it saw the process end); None without one."""
    events = json.loads(data) if data else []
    if not events:
        return None
    times = sorted({e.get("ts", 0) for e in events})
    return (times[-2] - times[0]) / 1e6 if len(times) > 1 else None

