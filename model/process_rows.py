"""The process table: the process tree, parents before children, with each process's latest readings.

Must never keep state between calls, nor import textual or rich; it reads
the Profile under the caller's lock.
"""

from __future__ import annotations

import numpy as np

from gradetop.model.alike import fold_alike
from gradetop.model.pictures import ProcessRow
from gradetop.model.profile import Profile
from gradetop.model.roles import process_roles


def process_rows(profile: Profile, now: float | None = None) -> list[ProcessRow]:
    """The process tree, parents before children, with the latest readings."""
    series = profile.process_series
    latest: dict[int, tuple[float, float, int, int]] = {}
    cpu_percent: dict[int, float] = {}
    if len(series):
        t, pid, cpu_s, rss, threads = series.t, series.pid, series.cpu_s, series.rss, series.threads
        for p in np.unique(pid):
            idx = np.flatnonzero(pid == p)
            last = idx[-1]
            latest[int(p)] = (float(t[last]), float(cpu_s[last]), int(rss[last]), int(threads[last]))
            # CPU% over the last ~second of readings.
            recent = idx[t[idx] >= t[last] - 1.0]
            first = recent[0]
            if t[last] > t[first]:
                cpu_percent[int(p)] = 100.0 * (cpu_s[last] - cpu_s[first]) / (t[last] - t[first])
    procs = profile.processes
    roles = process_roles(profile)
    children: dict[int, list[int]] = {}
    for info in procs.values():
        parent = info.ppid if info.ppid in procs and info.ppid != info.pid else 0
        children.setdefault(parent, []).append(info.pid)
    out: list[ProcessRow] = []
    # Workers started again and again (a DataLoader's, each epoch): the ended ones of a kind (as the report
    # tells them apart) are one row, the last of them, so that what still runs is not buried (model.alike).
    kind = lambda pid: (roles.get(pid, ""), tuple(procs[pid].cmdline), procs[pid].sampled,
                        procs[pid].why_not_sampled, procs[pid].exit_code, procs[pid].host, procs[pid].rank)
    ended = lambda pid: procs[pid].end_time is not None

    def visit(pid: int, depth: int, alike: int = 1) -> None:
        info = procs[pid]
        _, _, rss, threads = latest.get(pid, (0.0, 0.0, 0, 0))
        if info.end_time is not None:
            state = "exited" if info.exit_code is None else f"exit {info.exit_code}"
        else:
            state = "running"
        sampled = "yes" if info.sampled else (info.why_not_sampled or "not yet")
        place = " ".join(([info.host] if info.host_pid is not None and info.host else [])
                         + ([f"r{info.rank}"] if info.rank is not None else []))
        out.append(ProcessRow(pid, info.ppid, short_command(info.cmdline) or info.name, state,
                              cpu_percent.get(pid, 0.0) if info.end_time is None else 0.0,
                              rss, threads, sampled, depth, roles.get(pid, ""), info.host_pid, place, alike))
        for group in fold_alike(sorted(children.get(pid, [])), kind, ended):
            visit(group[-1], depth + 1, len(group))

    for root in sorted(children.get(0, [])):
        visit(root, 0)
    return out


def short_command(cmdline: list[str]) -> str:
    """A command as a reader scans it: program names without their folders."""
    if not cmdline:
        return ""
    words = [cmdline[0].rsplit("/", 1)[-1]]
    for word in cmdline[1:]:
        words.append(word.rsplit("/", 1)[-1] if word.startswith("/") else word)
    return " ".join(words)
