"""pprof's profile.proto, gzipped: what `go tool pprof`, Pyroscope and most profilers' backends read.

Two sample types: wall and cpu, in nanoseconds (the unit Go's tools scale
best); cpu is the seconds the thread was running or runnable (the timeline's
`active`), as `report` counts it. Samples of one stack on one thread in one
phase are merged, each labelled with pid, tid, thread name, phase and role,
so pprof's `-tagfocus`/`-tagshow` can cut the profile again.

Encoding is the protobuf library's, on code generated from pprof's own
profile.proto (README.md here says how to regenerate it): a hand-written
encoder would be one more wire format to get wrong.
"""

from __future__ import annotations

import gzip

import numpy as np

from gradetop.model.export import profile_pb2
from gradetop.model.export.selection import Selection
from gradetop.model.profile import Profile


class _Strings:
    def __init__(self) -> None:
        self.table = [""]
        self._ids = {"": 0}

    def __call__(self, text: str) -> int:
        at = self._ids.get(text)
        if at is None:
            at = self._ids[text] = len(self.table)
            self.table.append(text)
        return at


SOURCE_RANK = {"auto": 0, "rule": 1, "marker": 2}


def phase_of_rows(selection: Selection) -> np.ndarray:
    """Per row, the index (in selection.phases) of the innermost phase around it on its thread, or -1."""
    rows = selection.rows
    found = np.full(len(rows["t"]), -1, dtype=np.int64)
    # Shallow first, so a deeper phase overrides the one around it; at one depth the user's own words win
    # (a marker over a rule over an automatic phase), then the shorter phase.
    phases = selection.phases
    for i in sorted(range(len(phases)), key=lambda i: (phases[i].depth, SOURCE_RANK.get(phases[i].source, 0),
                                                        -phases[i].duration)):
        p = selection.phases[i]
        found[(rows["t"] >= p.start) & (rows["t"] < p.end) & (rows["pid"] == p.pid) & (rows["tid"] == p.tid)] = i
    return found


def build(profile: Profile, selection: Selection) -> profile_pb2.Profile:
    rows = selection.rows
    out = profile_pb2.Profile()
    s = _Strings()
    out.sample_type.add(type=s("wall"), unit=s("nanoseconds"))
    out.sample_type.add(type=s("cpu"), unit=s("nanoseconds"))
    out.default_sample_type = s("cpu")
    out.period_type.type = s("wall")
    out.period_type.unit = s("nanoseconds")
    out.period = int(1e9 / profile.meta.rate_hz) if profile.meta.rate_hz > 0 else 0
    out.time_nanos = int(selection.t0 * 1e9)
    out.duration_nanos = int(max(0.0, selection.t1 - selection.t0) * 1e9)
    out.comment.append(s(f"gradetop: {' '.join(profile.meta.command) or 'attached'}"))

    # One mapping for the interpreter: pprof wants one per binary, and says so without it.
    binary = profile.meta.command[0] if profile.meta.command else "python"
    out.mapping.add(id=1, filename=s(binary), has_functions=True, has_filenames=True, has_line_numbers=True)
    functions: dict[int, int] = {}
    locations: dict[int, int] = {}
    with profile.lock:
        frames = profile.frames.frames
        function_of = profile.frames.function_of.view()

        def location(fid: int) -> int:
            loc = locations.get(fid)
            if loc is None:
                func = int(function_of[fid])
                fn = functions.get(func)
                if fn is None:
                    name, file = profile.frames.functions[func]
                    fn = functions[func] = len(functions) + 1
                    out.function.add(id=fn, name=s(name), system_name=s(name), filename=s(file),
                                     start_line=frames[fid].line)
                loc = locations[fid] = len(locations) + 1
                entry = out.location.add(id=loc, mapping_id=1)
                entry.line.add(function_id=fn, line=frames[fid].line)
            return loc

        phase = phase_of_rows(selection)
        keys = np.stack([rows["stack"].astype(np.int64), rows["pid"].astype(np.int64),
                         rows["tid"].astype(np.int64), phase], axis=1)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        wall = np.bincount(inverse, weights=rows["w"].astype(np.float64), minlength=len(unique))
        cpu = np.bincount(inverse, weights=rows["active"].astype(np.float64), minlength=len(unique))
        target = profile.meta.target_pid
        for (stack, pid, tid, ph), w, c in zip(unique.tolist(), wall.tolist(), cpu.tolist()):
            sample = out.sample.add()
            sample.location_id.extend(location(f) for f in reversed(profile.stacks.path(stack)))  # leaf first
            sample.value.extend([round(w * 1e9), round(c * 1e9)])
            info = profile.threads.get((pid, tid))
            sample.label.add(key=s("pid"), num=pid)
            sample.label.add(key=s("tid"), num=tid)
            sample.label.add(key=s("thread"), str=s(f"{info.name} ({tid})" if info and info.name else str(tid)))
            sample.label.add(key=s("role"), str=s("main" if target is None or pid == target else "child"))
            proc = profile.processes.get(pid)
            if proc is not None and proc.host:
                sample.label.add(key=s("host"), str=s(proc.host))
            if proc is not None and proc.rank is not None:
                sample.label.add(key=s("rank"), num=proc.rank)
            if ph >= 0:
                sample.label.add(key=s("phase"), str=s(selection.phases[ph].path))
    out.string_table.extend(s.table)
    return out


def render(profile: Profile, selection: Selection) -> bytes:
    return gzip.compress(build(profile, selection).SerializeToString(), mtime=0)
