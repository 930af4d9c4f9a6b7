"""Ranks of a distributed job side by side: time per phase per rank, and which rank the others wait for.

In a data-parallel job every rank runs the same phases, and the slowest
rank sets the pace: the others wait for it in the next collective. So the
verdict compares, per phase, the rank that spent the most time in it with
the one that spent the least; where the gap is large, the slow rank is the
one to look at (a bigger shard, a slower node, a noisy neighbour).

A process's rank is what its environment said (ProcessInfo.rank); its
phases count for that rank. Must never import textual or rich; pure.
"""

from __future__ import annotations

import re

from gradetop.model.phases import Phase
from gradetop.model.profile import Profile

SKEW_RATIO = 1.2
"""A phase whose slowest rank took this much longer than its fastest is called skewed."""
MIN_SECONDS = 0.5
"""Phases shorter than this on every rank are not judged (noise)."""
COLLECTIVE = re.compile(r"all_?reduce|all_?gather|reduce_?scatter|broadcast|barrier|all_?to_?all|collective|sync|wait",
                        re.IGNORECASE)
"""Phases where a rank waits for the others: more time there means a faster rank, not a slower one."""
SOURCE_ORDER = ("marker", "rule", "auto")
"""Where one phase kind comes from several sources, the user's own word wins: it is counted once."""


def rank_summary(profile: Profile, phases: list[Phase]) -> dict | None:
    """Per rank: hosts, processes and seconds per phase; per phase: the skew and a verdict. None under 2 ranks."""
    rank_of = {pid: info.rank for pid, info in profile.processes.items() if info.rank is not None}
    ranks = sorted(set(rank_of.values()))
    if len(ranks) < 2:
        return None
    per_rank: dict[int, dict] = {r: {"rank": r, "hosts": [], "pids": [], "phases": {}} for r in ranks}
    for pid, r in sorted(rank_of.items()):
        info = profile.processes[pid]
        entry = per_rank[r]
        if info.host and info.host not in entry["hosts"]:
            entry["hosts"].append(info.host)
        entry["pids"].append(info.real_pid)
    top = [p for p in phases if p.pid in rank_of and p.depth == 0]  # nested phases are inside their parent's time
    best: dict[str, int] = {}
    for p in top:
        rank = SOURCE_ORDER.index(p.source) if p.source in SOURCE_ORDER else len(SOURCE_ORDER)
        best[p.kind] = min(best.get(p.kind, rank), rank)
    for p in top:
        source = SOURCE_ORDER.index(p.source) if p.source in SOURCE_ORDER else len(SOURCE_ORDER)
        if source != best[p.kind]:
            continue
        seconds = per_rank[rank_of[p.pid]]["phases"]
        seconds[p.kind] = seconds.get(p.kind, 0.0) + p.duration
    skew = []
    # Only phases every rank ran compare (a phase one rank alone has is not a skew).
    kinds = sorted(k for k in best if all(k in e["phases"] for e in per_rank.values()))
    for kind in kinds:
        times = {r: per_rank[r]["phases"].get(kind, 0.0) for r in ranks}
        slow = max(times, key=lambda r: (times[r], -r))
        fast = min(times, key=lambda r: (times[r], r))
        if times[slow] < MIN_SECONDS:
            continue
        ratio = times[slow] / times[fast] if times[fast] > 0 else float("inf")
        entry = {"phase": kind, "slowest_rank": slow, "slowest_s": round(times[slow], 6), "fastest_rank": fast,
                 "fastest_s": round(times[fast], 6), "ratio": round(ratio, 3) if ratio != float("inf") else None,
                 "skewed": ratio >= SKEW_RATIO}
        entry["collective"] = bool(COLLECTIVE.search(kind))
        if entry["skewed"] and entry["collective"]:
            entry["verdict"] = (f"rank {slow} spent {times[slow]:.1f} s in {kind}, {ratio:.1f}x as long as rank "
                                f"{fast} ({times[fast]:.1f} s): it waits there for slower ranks")
        elif entry["skewed"]:
            entry["verdict"] = (f"rank {slow} spent {times[slow]:.1f} s in {kind}, {ratio:.1f}x as long as rank "
                                f"{fast} ({times[fast]:.1f} s): the other ranks wait for it")
        else:
            entry["verdict"] = f"balanced: every rank spent {times[fast]:.1f}-{times[slow]:.1f} s in {kind}"
        skew.append(entry)
    # The rank the others wait for first: skewed work phases, then skewed waits, then the balanced.
    skew.sort(key=lambda e: (not e["skewed"], e["collective"], -(e["slowest_s"] - e["fastest_s"])))
    return {"ranks": [per_rank[r] for r in ranks], "skew": skew}


def format_ranks(summary: dict | None, width: int = 100) -> list[str]:
    if not summary:
        return []
    lines = ["", "Ranks (top-level phases, seconds per rank)"]
    kinds = [e["phase"] for e in summary["skew"]][:4]
    lines.append("  " + f"{'rank':>5}  {'host':<16}" + "".join(f" {k[:12]:>12}" for k in kinds))
    for r in summary["ranks"]:
        host = ",".join(r["hosts"])[:16]
        lines.append("  " + f"{r['rank']:>5}  {host:<16}" + "".join(f" {r['phases'].get(k, 0.0):>12.2f}" for k in kinds))
    for e in summary["skew"]:
        if e["skewed"]:
            text = f"  ↳ {e['verdict']}"
            lines.append(text if len(text) <= width else text[: width - 1] + "…")
    return lines
