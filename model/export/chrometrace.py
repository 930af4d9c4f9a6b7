"""Chrome trace event JSON, as Perfetto (ui.perfetto.dev) and chrome://tracing open it.

Per thread, the samples become nested slices: consecutive samples that share
a stack prefix keep those frames open (as py-spy's chrometrace does), so a
call that ran for 2 s is one 2 s slice, not 200 tiny ones. Slices are B/E
pairs, balanced by construction: every open frame is closed, innermost
first, before the thread's track ends. A gap of more than a few samples
(the thread was not seen) closes everything.

Phases go on tracks of their own (one per thread, source and depth, so
slices on a track never overlap), CPU% and RSS are counters, and every
process and track is named. Timestamps are microseconds from the run's start.
"""

from __future__ import annotations

import json

import numpy as np

from gradetop.model.export.selection import Selection
from gradetop.model.profile import Profile
from gradetop.model.stacks import short_path

PHASE_TID_BASE = 1_000_000_000
"""Phase tracks take tids far above any Linux tid (at most 2^22), so they never share a real thread's track."""
GAP_SAMPLES = 3.0
"""Samples further apart than this many sample widths are not one continuous run."""


def _us(t: float, t0: float) -> float:
    """Microseconds from the run's start; a first sample's half-width reaching before the start is clipped."""
    return max(0.0, round((t - t0) * 1e6, 3))


def _thread_slices(profile: Profile, rows: dict, part: np.ndarray, t0: float, out: list) -> None:
    pid, tid = int(rows["pid"][part[0]]), int(rows["tid"][part[0]])
    frames = profile.frames.frames
    open_: list[int] = []  # frame ids of the open slices, outermost first
    end = None

    def close_to(depth: int, at: float) -> None:
        while len(open_) > depth:
            fid = open_.pop()
            out.append({"ph": "E", "pid": pid, "tid": tid, "ts": _us(at, t0), "name": frames[fid].function})

    for i in part:
        w = float(rows["w"][i])
        start = float(rows["t"][i]) - w / 2
        if end is not None and start - end > GAP_SAMPLES * max(w, 1e-6):
            close_to(0, end)
        begin = start if end is None else max(start, end)
        path = profile.stacks.path(int(rows["stack"][i]))
        common = 0
        while common < len(open_) and common < len(path) and open_[common] == path[common]:
            common += 1
        close_to(common, begin)
        for fid in path[common:]:
            f = frames[fid]
            out.append({"ph": "B", "pid": pid, "tid": tid, "ts": _us(begin, t0), "name": f.function,
                        "cat": "python", "args": {"file": short_path(f.file), "line": f.line}})
            open_.append(fid)
        end = begin + w
    if end is not None:
        close_to(0, end)


def _phase_tracks(selection: Selection, t0: float, out: list, meta: list) -> None:
    lanes: dict[tuple, list] = {}
    for p in selection.phases:
        lanes.setdefault((p.pid, p.tid, p.source, p.depth), []).append(p)
    for n, (key, phases) in enumerate(sorted(lanes.items())):
        pid, tid, source, depth = key
        track = PHASE_TID_BASE + n
        meta.append({"ph": "M", "pid": pid, "tid": track, "name": "thread_name",
                     "args": {"name": f"phases ({source}) of {tid}" + (f", level {depth + 1}" if depth else "")}})
        meta.append({"ph": "M", "pid": pid, "tid": track, "name": "thread_sort_index", "args": {"sort_index": -1000 + n}})
        last = None
        for p in sorted(phases, key=lambda p: p.start):
            start = max(p.start, selection.t0) if last is None else max(p.start, selection.t0, last)
            stop = min(p.end, selection.t1)
            if stop <= start:
                continue
            out.append({"ph": "X", "pid": pid, "tid": track, "ts": _us(start, t0), "dur": round((stop - start) * 1e6, 3),
                        "name": p.name, "cat": f"phase,{source}", "args": {"path": p.path, "thread": tid}})
            last = stop


def _counters(profile: Profile, selection: Selection, pids: set[int], t0: float, out: list) -> None:
    series = profile.process_series
    if len(series) == 0:
        return
    cols = series.rows()
    for pid in sorted(pids):
        mine = np.flatnonzero(cols["pid"] == pid)
        if len(mine) < 2:
            continue
        t, cpu, rss = cols["t"][mine], cols["cpu_s"][mine], cols["rss"][mine]
        pct = np.diff(cpu) / np.maximum(np.diff(t), 1e-9) * 100
        for j in range(1, len(mine)):
            if selection.t0 <= t[j] <= selection.t1:
                ts = _us(float(t[j]), t0)
                out.append({"ph": "C", "pid": pid, "name": "CPU %", "ts": ts, "args": {"cpu": round(float(pct[j - 1]), 2)}})
                out.append({"ph": "C", "pid": pid, "name": "RSS MiB", "ts": ts,
                            "args": {"rss": round(float(rss[j]) / 2**20, 3)}})


def trace(profile: Profile, selection: Selection) -> dict:
    rows = selection.rows
    t0 = profile.meta.start_time
    events: list[dict] = []
    meta: list[dict] = []
    pid, tid = rows["pid"], rows["tid"]
    with profile.lock:
        threads = set()
        if len(pid):
            cuts = np.flatnonzero((np.diff(pid) != 0) | (np.diff(tid) != 0)) + 1
            for part in np.split(np.arange(len(pid)), cuts):
                threads.add((int(pid[part[0]]), int(tid[part[0]])))
                _thread_slices(profile, rows, part, t0, events)
        pids = {p for p, _ in threads} | {p.pid for p in selection.phases}
        _phase_tracks(selection, t0, events, meta)
        _counters(profile, selection, pids, t0, events)
        for p in sorted(pids):
            info = profile.processes.get(p)
            meta.append({"ph": "M", "pid": p, "tid": 0, "name": "process_name",
                         "args": {"name": f"{info.command if info and info.command else 'process'} ({info.place if info else p})"}})
        for p, t in sorted(threads):
            info = profile.threads.get((p, t))
            meta.append({"ph": "M", "pid": p, "tid": t, "name": "thread_name",
                         "args": {"name": info.name if info and info.name else f"thread {t}"}})
    return {"traceEvents": meta + events, "displayTimeUnit": "ms",
            "otherData": {"exporter": "gradetop", "command": " ".join(profile.meta.command),
                          "start_time": profile.meta.start_time}}


def render(profile: Profile, selection: Selection) -> bytes:
    return json.dumps(trace(profile, selection), separators=(",", ":")).encode()
