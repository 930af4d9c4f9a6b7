"""Pictures of a Profile: the entry points that turn live model state into the frozen values screens draw.

`view_data` gives the flame, top and process views one consistent picture
for a filter; `timeline_data` gives the timeline's lanes. Both run in a
worker thread under the profile's lock and return values that share no
arrays with the profile (model.pictures). Everything is usable headless
(export, tests).

Must never draw, know about terminals, nor import textual or rich.
"""

from __future__ import annotations

import time

import numpy as np

from gradetop.model.calltree import build_tree, top_functions
from gradetop.model.pictures import Lane, TimelineData, ViewData, ViewFilter
from gradetop.model.process_rows import process_rows, short_command
from gradetop.model.profile import Profile
from gradetop.model.roles import process_roles
from gradetop.model.stacks import ROOT, StackTable, ancestor_at, divergence_depth


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


def timeline_data(profile: Profile, bins: int, by_thread: bool = False, t0: float | None = None,
                  t1: float | None = None, lanes: bool = True) -> TimelineData:
    """Lanes of dominant frames over time, per process (or thread), with CPU% and RSS per process; without
    `lanes`, only the span and bins (what the GPU and phase lanes are drawn on), which costs nothing."""
    bins = max(1, bins)
    with profile.lock:
        start, end = _drawn_span(profile, t0, t1)
        if not lanes:
            return TimelineData(start, end, bins, [], [], with_lanes=False)
        tl = profile.timeline
        rows = tl.rows(tl.select(start, end))
        names = [f"{name}" for name, _ in profile.frames.functions]
        edges = np.linspace(start, end, bins + 1)
        drawn: list[Lane] = []
        roles = process_roles(profile)
        for pid, tid in _lane_keys(profile, rows, by_thread):
            mask = rows["pid"] == pid
            if tid is not None:
                mask &= rows["tid"] == tid
            dominant, activity = _lane_bins(profile.stacks, {k: v[mask] for k, v in rows.items()}, edges)
            cpu, rss = _process_resources(profile, pid, edges) if tid is None else (None, None)
            drawn.append(Lane((pid, tid), _lane_label(profile, pid, tid, roles), dominant, activity, cpu, rss))
        return TimelineData(start, end, bins, drawn, names)


def _drawn_span(profile: Profile, t0: float | None, t1: float | None) -> tuple[float, float]:
    """The time range drawn: the run so far (to now while it runs) unless asked for another; never empty."""
    span = profile.timeline.span()
    start = profile.meta.start_time if t0 is None else t0
    end = t1 if t1 is not None else max(profile.meta.end_time or time.time(), span[1] if span else start)
    if end <= start:
        end = start + 1.0
    return start, end


def _lane_keys(profile: Profile, rows: dict[str, np.ndarray], by_thread: bool) -> list[tuple[int, int | None]]:
    """(pid, tid or None) per lane, in pid then tid order; a known process without samples still gets its lane."""
    keys = {(int(p), int(t) if by_thread else None) for p, t in zip(rows["pid"], rows["tid"])}
    sampled = {pid for pid, _ in keys}
    keys |= {(pid, None) for pid in profile.processes if pid not in sampled}
    # A distributed job reads by rank: ranked processes first, in rank order (a lane per rank).
    def rank(pid: int) -> float:
        info = profile.processes.get(pid)
        return info.rank if info is not None and info.rank is not None else float("inf")

    return sorted(keys, key=lambda k: (rank(k[0]), k[0], -1 if k[1] is None else k[1]))


def _lane_bins(stacks: StackTable, rows: dict[str, np.ndarray], edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bin of one lane's rows: the dominant function (-1: no sample) and the active share (NaN: no sample)."""
    bins = len(edges) - 1
    if len(rows["stack"]) == 0:
        return np.full(bins, -1, dtype=np.int64), np.full(bins, np.nan)
    w = rows["w"].astype(np.float64)
    active = rows["active"].astype(np.float64)
    # What a lane was doing is what its busy threads did: idle threads only break ties.
    weight_of = active + 1e-3 * w
    funcs = _split_functions(stacks, rows["stack"], rows["tid"], weight_of)
    which = np.clip(np.searchsorted(edges, rows["t"], side="right") - 1, 0, bins - 1)
    total = np.bincount(which, weights=w, minlength=bins)
    busy = np.bincount(which, weights=active, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        activity = np.where(total > 0, busy / total, np.nan)
    # Dominant function per bin: the heaviest (bin, function) pair wins its bin.
    nfunc = max(int(funcs.max()) + 2, 1)
    weight = np.bincount(which * nfunc + (funcs + 1), weights=weight_of,
                         minlength=bins * nfunc).reshape(bins, nfunc)
    dominant = np.where(total > 0, weight.argmax(axis=1) - 1, -1)
    return dominant, activity


def _split_functions(stacks: StackTable, nodes: np.ndarray, tids: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per sample, the function at the depth where its thread's work splits (-1 at the root).

    Each thread splits at its own depth: a merged process lane would
    otherwise split at the thread level, which says nothing.
    """
    anchors = np.empty_like(nodes)
    for thread in np.unique(tids):
        mine = tids == thread
        level = divergence_depth(stacks, nodes[mine], weights[mine])
        anchors[mine] = ancestor_at(stacks, nodes[mine], level)
    function_of = stacks.frames.function_of.view()
    frame = stacks.frame.view()
    return np.where(anchors > ROOT, function_of[np.maximum(frame[anchors], 0)], -1)


def _process_resources(profile: Profile, pid: int, edges: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """CPU percent and RSS bytes of a process per bin, from its readings; None with fewer than two readings."""
    series = profile.process_series
    if not len(series):
        return None, None
    sel = series.pid == pid
    st, sc, sr = series.t[sel], series.cpu_s[sel], series.rss[sel]
    if len(st) < 2:
        return None, None
    cum = np.interp(edges, st, sc, left=np.nan, right=np.nan)
    cpu = 100.0 * np.diff(cum) / np.diff(edges)
    rss = np.interp(edges[1:], st, sr.astype(np.float64), left=np.nan, right=np.nan)
    return cpu, rss


def _lane_label(profile: Profile, pid: int, tid: int | None, roles: dict[int, str] | None = None) -> str:
    if tid is None:
        info = profile.processes.get(pid)
        if info is None:
            return str(pid)
        # Ranks and hosts where the job has them: "r1 node2:4242 worker python train.py".
        where = f"{info.host}:{info.real_pid}" if info.host_pid is not None else str(pid)
        rank = f"r{info.rank} " if info.rank is not None else ""
        role = (roles or {}).get(pid, "")
        role = f"{role} " if role not in ("", "main", "child") and not role.startswith("rank ") else ""
        return f"{rank}{where} {role}{short_command(info.cmdline)}".strip()
    thread = profile.threads.get((pid, tid))
    return f"{tid} {thread.name if thread else ''}".strip()
