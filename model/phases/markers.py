"""Marker phases: the intervals user code named with `gradetop.phase(...)`, from its begin/end marks.

Exact edges and the user's own names. Must never guess (an unmatched end
mark is dropped; a phase left open ends with its process or the run), nor
depend on textual or rich.
"""

from __future__ import annotations

from gradetop.model.phases.types import Phase
from gradetop.model.profile import Profile


def marker_phases(profile: Profile) -> list[Phase]:
    """Intervals from B/E marker pairs per thread; a phase still open ends when its process (or the run) did."""
    phases: list[Phase] = []
    open_: dict[tuple[int, int], list[tuple[str, float]]] = {}
    for mark in sorted(profile.marks, key=lambda m: m.t):
        stack = open_.setdefault((mark.pid, mark.tid), [])
        if mark.kind == "B":
            stack.append((mark.name, mark.t))
            continue
        # Close the innermost phase of that name (and any left open inside it).
        if mark.name not in [name for name, _ in stack]:
            continue
        while stack:
            phases.append(_close(stack, mark.pid, mark.tid, mark.t))
            if phases[-1].name == mark.name:
                break
    for (pid, tid), stack in open_.items():
        end = _end_of(profile, pid)
        while stack:
            phases.append(_close(stack, pid, tid, end))
    return phases


def _close(stack: list[tuple[str, float]], pid: int, tid: int, end: float) -> Phase:
    """The innermost open phase, popped and ended at `end` (never before it began)."""
    name, start = stack.pop()
    path = "/".join([n for n, _ in stack] + [name])
    return Phase(name, path, "marker", pid, tid, start, max(end, start), len(stack))


def _end_of(profile: Profile, pid: int) -> float:
    info = profile.processes.get(pid)
    if info is not None and info.end_time is not None:
        return info.end_time
    if profile.meta.end_time is not None:
        return profile.meta.end_time
    span = profile.timeline.span()
    return span[1] if span else profile.meta.start_time
