"""Phases as the timeline draws them: one row of bins per thread and nesting depth.

A picture, computed from a phase list for a time range and a width; the
phases themselves are model.phases'. Must never compute phases, nor import
textual or rich.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradetop.model.phases import Phase
from gradetop.model.processes import PID_STRIDE


@dataclass(frozen=True)
class PhaseLane:
    """One timeline row of phases: one thread, one nesting depth; per bin the phase index (or -1)."""

    label: str
    cells: np.ndarray
    names: list[str]


def phase_lanes(phases: list[Phase], t0: float, t1: float, bins: int, max_depth: int = 1,
                sources: tuple[str, ...] = ("marker", "auto")) -> list[PhaseLane]:
    """Phases drawn on the timeline's bins: a lane per (thread, depth) up to `max_depth`."""
    bins = max(bins, 1)
    width = (t1 - t0) / bins if t1 > t0 else 1.0
    keys = sorted({(p.pid, p.tid, p.depth) for p in phases if p.source in sources and p.depth <= max_depth})
    lanes = []
    for pid, tid, depth in keys:
        cells = np.full(bins, -1, dtype=np.int64)
        names: list[str] = []
        mine = [p for p in phases if (p.pid, p.tid, p.depth) == (pid, tid, depth) and p.source in sources]
        # Longer phases first, so a short one over a long one stays visible.
        for p in sorted(mine, key=lambda p: -p.duration):
            if p.end <= t0 or p.start >= t1:
                continue  # outside the drawn span (before an attach, say)
            a = int(np.clip((p.start - t0) / width, 0, bins - 1))
            b = int(np.clip(np.ceil((p.end - t0) / width), a + 1, bins))
            cells[a:b] = len(names)
            names.append(p.name)
        # A view of many hosts renumbers pids (model.merge); the label shows the one its host knows.
        label = f"{tid if tid != pid else pid % PID_STRIDE} phases" if depth == 0 else f"  └ level {depth + 1}"
        lanes.append(PhaseLane(label, cells, names))
    return lanes
