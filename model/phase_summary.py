"""Phases grouped by type (a path without instance numbers): count, total, mean, share, cost, verdict.

What the phases table shows, in the UI and in the text report. A type's
verdict is its longest instance's, since that is where the time went.

Every share says of what. `share` is of the run's wall time, and counts
each moment once however many processes or threads ran the phase then, so
it never exceeds 100%; `total_s` sums the instances (and says over how many
processes): 2 workers importing sklearn for 14 s each are 28 s of work in
14 s of the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradetop.model.phases import PhaseCost


@dataclass(frozen=True)
class PhaseGroup:
    kind: str
    source: str
    count: int
    total_s: float
    mean_s: float
    max_s: float
    share: float
    """Of the run's wall time: the part of it during which at least one instance ran (<= 1)."""
    cpu_s: float
    peak_rss: int
    verdict: str
    verdict_kind: str
    first_start: float
    last_end: float
    depth: int
    threads: frozenset[tuple[int, int]]
    """(pid, tid) of the instances."""
    detail: str = ""
    """The longest instance's whole verdict and evidence, with its breakdown headline where it has one."""
    breakdown: tuple[tuple[str, float], ...] = ()
    """(part, seconds) summed over the instances, largest first (training-like phases only)."""

    @property
    def processes(self) -> int:
        return len({pid for pid, _ in self.threads})


def summarize(costs: list[PhaseCost], wall_s: float) -> list[PhaseGroup]:
    groups: dict[tuple[str, str], list[PhaseCost]] = {}
    for c in costs:
        groups.setdefault((c.phase.kind, c.phase.source), []).append(c)
    out = []
    for (kind, source), members in groups.items():
        durations = [m.phase.duration for m in members]
        longest = max(members, key=lambda m: m.phase.duration)
        total = sum(durations)
        out.append(PhaseGroup(
            kind=kind, source=source, count=len(members), total_s=total, mean_s=total / len(members),
            max_s=max(durations), share=min(1.0, covered_s([(m.phase.start, m.phase.end) for m in members]) / wall_s)
            if wall_s > 0 else 0.0,
            cpu_s=sum(m.cpu_s for m in members), peak_rss=max(m.peak_rss for m in members),
            verdict=longest.verdict, verdict_kind=longest.verdict_kind,
            first_start=min(m.phase.start for m in members), last_end=max(m.phase.end for m in members),
            depth=min(m.phase.depth for m in members),
            threads=frozenset((m.phase.pid, m.phase.tid) for m in members),
            detail=longest.extra.get("detail", longest.verdict),
            breakdown=_summed_breakdown(members),
        ))
    return sorted(out, key=lambda g: (g.first_start, g.depth))


def covered_s(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one of the intervals (each moment once)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def _summed_breakdown(members: list[PhaseCost]) -> tuple[tuple[str, float], ...]:
    parts: dict[str, float] = {}
    for m in members:
        for name, seconds in (m.extra.get("breakdown") or {}).items():
            parts[name] = parts.get(name, 0.0) + seconds
    return tuple(sorted(parts.items(), key=lambda kv: -kv[1]))
