"""What the screens draw, as plain immutable data: pure functions of a Profile and a filter.

The UI computes a ViewData in a worker thread, then draws it; nothing here
knows about terminals. Everything is also usable headless (export, tests).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from gradetop.model.calltree import CallTree, FunctionRow, build_tree, top_functions
from gradetop.model.profile import Profile
from gradetop.model.stacks import ROOT


@dataclass(frozen=True)
class ViewFilter:
    """Which samples a view shows: a time range (epoch s) and a set of processes / threads."""

    t0: float | None = None
    t1: float | None = None
    pids: frozenset[int] | None = None
    tids: frozenset[int] | None = None
    last_s: float | None = None
    """Only the last N seconds (relative to the newest sample); applied before t0/t1."""
    include_idle: bool = True

    def describe(self) -> str:
        parts = ["wall time" if self.include_idle else "active time"]
        if self.last_s is not None:
            parts.append(f"last {self.last_s:g} s")
        if self.t0 is not None or self.t1 is not None:
            parts.append("selected range")
        if self.tids is not None:
            parts.append(f"thread {', '.join(map(str, sorted(self.tids)))}")
        elif self.pids is not None:
            parts.append(f"process {', '.join(map(str, sorted(self.pids)))}")
        if len(parts) == 1:
            parts.append("whole run, all threads")
        return ", ".join(parts)


@dataclass(frozen=True)
class ProcessRow:
    pid: int
    ppid: int
    command: str
    state: str
    cpu_percent: float
    rss: int
    threads: int
    sampled: str
    depth: int = 0


@dataclass(frozen=True)
class Lane:
    """One row of the timeline: a process or a thread."""

    key: tuple[int, int | None]
    label: str
    dominant: np.ndarray
    """Per bin: function id of the dominant frame, -1 where no sample."""
    activity: np.ndarray
    """Per bin: share of the lane's sampled time that was active (0..1), NaN where no sample."""
    cpu: np.ndarray | None = None
    """Per bin: CPU percent of the process (process lanes)."""
    rss: np.ndarray | None = None
    """Per bin: RSS bytes of the process (process lanes)."""


@dataclass(frozen=True)
class TimelineData:
    t0: float
    t1: float
    bins: int
    lanes: list[Lane]
    function_names: list[str]

    @property
    def bin_s(self) -> float:
        return (self.t1 - self.t0) / self.bins if self.bins else 0.0


@dataclass(frozen=True)
class ViewData:
    """One consistent picture of the profile for one filter."""

    taken_at: float
    filter: ViewFilter
    tree: CallTree
    functions: list[FunctionRow]
    processes: list[ProcessRow]
    samples: int
    span: tuple[float, float] | None
    children: dict[int, np.ndarray] = field(default_factory=dict)
    """Node -> child nodes with weight (computed with the tree, off the UI thread)."""
    labels: list[str] = field(default_factory=list)
    """Display label per frame id."""
    files: list[str] = field(default_factory=list)
    """File per frame id (colours are stable per file)."""


def resolve(profile: Profile, flt: ViewFilter) -> tuple[float | None, float | None]:
    """The absolute time range a filter means now."""
    t0, t1 = flt.t0, flt.t1
    if flt.last_s is not None:
        span = profile.timeline.span()
        if span is not None:
            t0 = max(t0 or span[1] - flt.last_s, span[1] - flt.last_s)
    return t0, t1


def view_data(profile: Profile, flt: ViewFilter, now: float | None = None) -> ViewData:
    """Everything the flame, top and process views draw, under one lock."""
    with profile.lock:
        t0, t1 = resolve(profile, flt)
        rows = profile.timeline.rows(profile.timeline.select(t0, t1, flt.pids, flt.tids))
        tree = build_tree(profile.stacks, rows, "w" if flt.include_idle else "active")
        functions = top_functions(tree)
        frames = profile.frames.frames
        labels = [f.label for f in frames]
        files = [f.file for f in frames]
        processes = process_rows(profile, now)
        return ViewData(
            taken_at=time.time() if now is None else now,
            filter=flt,
            tree=tree,
            functions=functions,
            processes=processes,
            samples=int(rows["n"].sum(dtype=np.int64)),
            span=profile.timeline.span(),
            children=tree.children_index(),
            labels=labels,
            files=files,
        )


def process_rows(profile: Profile, now: float | None = None) -> list[ProcessRow]:
    """The process tree, parents before children, with the latest readings."""
    series = profile.process_series
    latest: dict[int, tuple[float, float, int, int]] = {}
    cpu_percent: dict[int, float] = {}
    if len(series):
        t, pid, cpu_s, rss, threads = series.t, series.pid, series.cpu_s, series.rss, series.threads
        for p in np.unique(pid):
            idx = np.flatnonzero(pid == p)
            last = idx[-1]
            latest[int(p)] = (float(t[last]), float(cpu_s[last]), int(rss[last]), int(threads[last]))
            # CPU% over the last ~second of readings.
            recent = idx[t[idx] >= t[last] - 1.0]
            first = recent[0]
            if t[last] > t[first]:
                cpu_percent[int(p)] = 100.0 * (cpu_s[last] - cpu_s[first]) / (t[last] - t[first])
    procs = profile.processes
    children: dict[int, list[int]] = {}
    for info in procs.values():
        parent = info.ppid if info.ppid in procs and info.ppid != info.pid else 0
        children.setdefault(parent, []).append(info.pid)
    out: list[ProcessRow] = []

    def visit(pid: int, depth: int) -> None:
        info = procs[pid]
        _, _, rss, threads = latest.get(pid, (0.0, 0.0, 0, 0))
        if info.end_time is not None:
            state = "exited" if info.exit_code is None else f"exit {info.exit_code}"
        else:
            state = "running"
        sampled = "yes" if info.sampled else (info.why_not_sampled or "not yet")
        out.append(ProcessRow(pid, info.ppid, short_command(info.cmdline) or info.name, state,
                              cpu_percent.get(pid, 0.0) if info.end_time is None else 0.0,
                              rss, threads, sampled, depth))
        for child in sorted(children.get(pid, [])):
            visit(child, depth + 1)

    for root in sorted(children.get(0, [])):
        visit(root, 0)
    return out


def short_command(cmdline: list[str]) -> str:
    """A command as a reader scans it: program names without their folders."""
    if not cmdline:
        return ""
    words = [cmdline[0].rsplit("/", 1)[-1]]
    for word in cmdline[1:]:
        words.append(word.rsplit("/", 1)[-1] if word.startswith("/") else word)
    return " ".join(words)


def divergence_depth(stacks, nodes: np.ndarray, weights: np.ndarray, share: float = 0.8) -> int:
    """The depth at which a lane's work splits: one below the end of its heavy path.

    From the top, follow the function holding at least `share` of the time
    at each depth; where none does, the work splits. For a script that is
    the level below `main()` (load, preprocess, train...), and a few odd
    samples (imports at start-up, interpreter exit) do not move it.
    Functions, not stack nodes: the same function on two lines is one.
    """
    keep = nodes > ROOT
    nodes, weights = nodes[keep], weights[keep]
    if len(nodes) == 0:
        return 1
    function_of = stacks.frames.function_of.view()
    frame = stacks.frame.view()
    depth = stacks.depth.view()
    for level in range(1, int(depth[nodes].max()) + 1):
        anchors = ancestor_at(stacks, nodes, level)
        deep_enough = depth[anchors] == level
        funcs = np.where(deep_enough, function_of[frame[anchors]], -1)
        codes, inverse = np.unique(funcs, return_inverse=True)
        totals = np.bincount(inverse, weights=weights)
        best = int(totals.argmax())
        if codes[best] < 0 or totals[best] < share * weights.sum():
            return level
        nodes, weights = nodes[inverse == best], weights[inverse == best]
    return max(1, int(depth[nodes].max()))


def ancestor_at(stacks, nodes: np.ndarray, depth_wanted: int) -> np.ndarray:
    """Each node's ancestor at `depth_wanted` (the node itself when shallower)."""
    parent = stacks.parent.view()
    depth = stacks.depth.view()
    current = nodes.copy()
    while True:
        deeper = depth[current] > depth_wanted
        if not deeper.any():
            return current
        current = np.where(deeper, parent[current], current)


def timeline_data(profile: Profile, bins: int, by_thread: bool = False, t0: float | None = None,
                  t1: float | None = None) -> TimelineData:
    """Lanes of dominant frames over time, per process (or thread), with CPU% and RSS per process."""
    bins = max(1, bins)
    with profile.lock:
        span = profile.timeline.span()
        start = profile.meta.start_time if t0 is None else t0
        end = t1 if t1 is not None else max(profile.meta.end_time or time.time(), span[1] if span else start)
        if end <= start:
            end = start + 1.0
        tl = profile.timeline
        rows = tl.rows(tl.select(start, end))
        stacks = profile.stacks
        function_of = profile.frames.function_of.view()
        frame = stacks.frame.view()
        names = [f"{name}" for name, _ in profile.frames.functions]
        edges = np.linspace(start, end, bins + 1)
        lanes: list[Lane] = []
        keys = sorted({(int(p), int(t) if by_thread else None) for p, t in zip(rows["pid"], rows["tid"])})
        for pid in sorted(profile.processes):
            if not any(k[0] == pid for k in keys):
                keys.append((pid, None))
        keys = sorted(set(keys), key=lambda k: (k[0], -1 if k[1] is None else k[1]))
        series = profile.process_series
        for pid, tid in keys:
            mask = rows["pid"] == pid
            if tid is not None:
                mask &= rows["tid"] == tid
            nodes = rows["stack"][mask]
            dominant = np.full(bins, -1, dtype=np.int64)
            activity = np.full(bins, np.nan)
            if len(nodes):
                w = rows["w"][mask].astype(np.float64)
                active = rows["active"][mask].astype(np.float64)
                # What a lane was doing is what its busy threads did: idle threads only break ties.
                weight_of = active + 1e-3 * w
                # Each thread splits its work at its own depth (a merged process lane would
                # otherwise split at the thread level, which says nothing).
                anchors = np.empty_like(nodes)
                lane_tids = rows["tid"][mask]
                for thread in np.unique(lane_tids):
                    mine = lane_tids == thread
                    level = divergence_depth(stacks, nodes[mine], weight_of[mine])
                    anchors[mine] = ancestor_at(stacks, nodes[mine], level)
                deep_enough = stacks.depth.view()[anchors] >= 1
                funcs = np.where((anchors > ROOT) & deep_enough, function_of[np.maximum(frame[anchors], 0)], -1)
                which = np.clip(np.searchsorted(edges, rows["t"][mask], side="right") - 1, 0, bins - 1)
                active = rows["active"][mask].astype(np.float64)
                total = np.bincount(which, weights=w, minlength=bins)
                busy = np.bincount(which, weights=active, minlength=bins)
                with np.errstate(invalid="ignore", divide="ignore"):
                    activity = np.where(total > 0, busy / total, np.nan)
                # Dominant function per bin: the heaviest (bin, function) pair wins its bin.
                nfunc = max(int(funcs.max()) + 2, 1)
                weight = np.bincount(which * nfunc + (funcs + 1), weights=weight_of,
                                     minlength=bins * nfunc).reshape(bins, nfunc)
                best = weight.argmax(axis=1)
                dominant = np.where(total > 0, best - 1, -1)
            cpu = rss = None
            if tid is None and len(series):
                sel = series.pid == pid
                st, sc, sr = series.t[sel], series.cpu_s[sel], series.rss[sel]
                if len(st) >= 2:
                    cum = np.interp(edges, st, sc, left=np.nan, right=np.nan)
                    cpu = 100.0 * np.diff(cum) / np.diff(edges)
                    rss = np.interp(edges[1:], st, sr.astype(np.float64), left=np.nan, right=np.nan)
            info = profile.processes.get(pid)
            if tid is None:
                label = f"{pid} {short_command(info.cmdline) if info else ''}".strip()
            else:
                thread = profile.threads.get((pid, tid))
                label = f"{tid} {thread.name if thread else ''}".strip()
            lanes.append(Lane((pid, tid), label, dominant, activity, cpu, rss))
        return TimelineData(start, end, bins, lanes, names)
