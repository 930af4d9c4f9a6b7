"""Per process: the latest resource counters, its samples and its sampling coverage.

One computation that `report --json` (processes) and the agent's Prometheus
endpoint (collectors.metrics) both say, so a scrape and a report of the
same moment agree. Must never keep state, nor import textual or rich; call
with the profile's lock held or on a frozen picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradetop.model.profile import Profile


@dataclass(frozen=True)
class ProcessTotals:
    cpu_s: float
    """User + system seconds, cumulative, at the latest reading."""
    rss: int
    """Bytes resident at the latest reading."""
    read_bytes: int
    """Cumulative; -1 where the kernel would not say."""
    write_bytes: int
    samples: int
    """Stack samples taken of it (all threads)."""
    coverage: float
    """Share of its life (within the profile) that its sampling windows cover."""


def process_totals(profile: Profile) -> dict[int, ProcessTotals]:
    series = profile.process_series
    latest: dict[int, int] = {}
    if len(series):
        pid = series.pid
        # The last row of each pid (rows are appended in time order): its first in reverse.
        rev = pid[::-1]
        uniq, first_rev = np.unique(rev, return_index=True)
        latest = {int(p): len(pid) - 1 - int(i) for p, i in zip(uniq, first_rev)}
    tl = profile.timeline
    samples: dict[int, int] = {}
    if len(tl):
        uniq, inverse = np.unique(tl.pid, return_inverse=True)
        counts = np.bincount(inverse.ravel(), weights=tl.n.astype(np.float64))
        samples = {int(p): int(c) for p, c in zip(uniq, counts)}
    now = profile.now
    out = {}
    for pid, info in profile.processes.items():
        row = latest.get(pid)
        end = info.end_time if info.end_time is not None else now
        life = end - max(profile.meta.start_time, info.create_time or 0.0)
        out[pid] = ProcessTotals(
            cpu_s=float(series.cpu_s[row]) if row is not None else 0.0,
            rss=int(series.rss[row]) if row is not None else 0,
            read_bytes=int(series.read_bytes[row]) if row is not None else -1,
            write_bytes=int(series.write_bytes[row]) if row is not None else -1,
            samples=samples.get(pid, 0),
            coverage=min(1.0, info.sampled_s / life) if life > 0 else 0.0,
        )
    return out
