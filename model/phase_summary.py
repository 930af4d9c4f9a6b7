"""Phases grouped by type (a path without instance numbers): count, total, mean, share, cost, verdict.

What the phases table shows, in the UI and in the text report. A type's
verdict is its longest instance's, since that is where the time went.
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
    """Of the run's wall time."""
    cpu_s: float
    peak_rss: int
    verdict: str
    verdict_kind: str
    first_start: float
    last_end: float
    depth: int
    threads: frozenset[tuple[int, int]]
    """(pid, tid) of the instances."""


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
            max_s=max(durations), share=total / wall_s if wall_s > 0 else 0.0,
            cpu_s=sum(m.cpu_s for m in members), peak_rss=max(m.peak_rss for m in members),
            verdict=longest.verdict, verdict_kind=longest.verdict_kind,
            first_start=min(m.phase.start for m in members), last_end=max(m.phase.end for m in members),
            depth=min(m.phase.depth for m in members),
            threads=frozenset((m.phase.pid, m.phase.tid) for m in members),
        ))
    return sorted(out, key=lambda g: (g.first_start, g.depth))
