"""Which samples an export holds: options (process, thread, time range, phase) turned into timeline rows.

Every exporter reads a `Selection`, so `--pid`, `--thread`, `--from/--to` and
`--phase` mean the same thing in every format. A choice that matches nothing
in the profile is a `SelectionError` with a one-line message, never an empty
file the user would have to puzzle over.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradetop.model.phases import Phase, all_phases
from gradetop.model.profile import Profile
from gradetop.model.rules import parse_rules


class SelectionError(ValueError):
    """Options that select nothing the profile has; the message is one line for the user."""


@dataclass(frozen=True)
class Selection:
    rows: dict[str, np.ndarray]
    """Timeline rows (model.timeline columns), sorted by thread then time."""
    t0: float
    """Start of the selected span, epoch seconds."""
    t1: float
    """Its end."""
    phases: list[Phase]
    """Phases of the selected processes and threads that overlap the span."""

    @property
    def samples(self) -> int:
        return int(self.rows["n"].sum(dtype=np.int64))


def profile_phases(profile: Profile) -> list[Phase]:
    """The phases `report` shows: markers, the rules recorded with the file, built-in rules, automatic."""
    recorded = profile.meta.options.get("phase_rules")
    rules = parse_rules({"phase": recorded}) if recorded else ()
    return all_phases(profile, rules)


def _thread_ids(profile: Profile, thread: str, pids) -> list[int]:
    tids = {int(t) for t in np.unique(profile.timeline.tid)}
    known = [t for t in profile.threads.values() if pids is None or t.pid in pids]
    if thread.isdigit():
        if int(thread) in tids:
            return [int(thread)]
    else:
        named = [t.tid for t in known if t.name == thread]
        if named:
            return named
    names = sorted({f"{t.tid} ({t.name})" if t.name else str(t.tid) for t in known})[:8]
    raise SelectionError(f"no thread {thread!r} in this profile (threads: {', '.join(names) or 'none'})")


def select(profile: Profile, pid: int | None = None, thread: str | None = None, t_from: float | None = None,
           t_to: float | None = None, phase: str | None = None, phases: list[Phase] | None = None,
           with_phases: bool = True) -> Selection:
    """The rows of `profile` that the options keep; `t_from`/`t_to` are seconds from the run's start.

    `phases` are the profile's phases when the caller has them already; with
    `with_phases` false and no `phase` asked for, they are not looked for.
    """
    if t_from is not None and t_to is not None and t_from > t_to:
        raise SelectionError(f"--from {t_from:g} is after --to {t_to:g}")
    start = profile.meta.start_time
    with profile.lock:
        tl = profile.timeline
        pids = None
        if pid is not None:
            present = {int(p) for p in np.unique(tl.pid)} | set(profile.processes)
            if pid not in present:
                listed = ", ".join(map(str, sorted(present)[:8])) or "none"
                raise SelectionError(f"no process {pid} in this profile (processes: {listed})")
            pids = [pid]
        tids = _thread_ids(profile, thread, pids) if thread is not None else None
        t0 = None if t_from is None else start + t_from
        t1 = None if t_to is None else start + t_to
        mask = tl.select(t0, t1, pids, tids)
        if phases is None and (phase is not None or (with_phases and len(tl))):
            phases = profile_phases(profile)
        phases = phases or []
        if phase is not None:
            chosen = [p for p in phases if phase in (p.name, p.path, p.kind)]
            if not chosen:
                names = sorted({p.name for p in phases})[:10]
                raise SelectionError(f"no phase {phase!r} in this profile (phases: {', '.join(names) or 'none'})")
            inside = np.zeros(len(tl), dtype=bool)
            for p in chosen:
                inside |= (tl.t >= p.start) & (tl.t < p.end) & (tl.pid == p.pid) & (tl.tid == p.tid)
            mask &= inside
            phases = chosen
        rows = tl.rows(mask)
    order = np.lexsort((rows["t"], rows["tid"], rows["pid"]))
    rows = {k: v[order] for k, v in rows.items()}
    if len(rows["t"]):
        half = rows["w"].astype(np.float64) / 2
        lo, hi = float((rows["t"] - half).min()), float((rows["t"] + half).max())
    else:
        lo, hi = start, profile.meta.end_time or start
    span0 = t0 if t0 is not None else min(lo, start)
    span1 = t1 if t1 is not None else hi
    keep_pids = set(np.unique(rows["pid"]).tolist())
    keep_threads = set(zip(rows["pid"].tolist(), rows["tid"].tolist()))
    shown = [p for p in phases if p.end > span0 and p.start < span1
             and ((p.pid, p.tid) in keep_threads or (tids is None and p.pid in keep_pids))]
    return Selection(rows, span0, span1, shown)
