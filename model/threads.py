"""Every thread now: its state, top frame, how long its stack has not moved, and whether it is stuck.

Read from the sample timeline alone (the live view costs no extra py-spy
calls): a thread's last run of identical stacks says how long it has not
moved, its kernel counters whether it ran meanwhile, and model.waits
whether its top is a wait. The same judge as `gradetop dump`.
"""

from __future__ import annotations

import linecache
from dataclasses import dataclass

import numpy as np

from gradetop.model.profile import Profile
from gradetop.model.roles import process_roles
from gradetop.model.stacks import ROOT, short_path
from gradetop.model.waits import judge

STUCK_AFTER_S = 10.0
"""A thread waiting, idle and unmoved this long is flagged stuck in the live view."""
RECENT_S = 1.0
"""State (running or idle) is read over this much of the thread's latest samples."""
GONE_AFTER_S = 3.0
"""A thread of a live process unseen for this long has ended."""


@dataclass(frozen=True)
class ThreadRow:
    pid: int
    tid: int
    name: str
    state: str
    """'running' or 'idle' (over its last second of samples)."""
    unchanged_s: float
    top: str
    """The top frame, 'function (file:line)'."""
    wait_reason: str | None
    wait_frame: str
    stuck: bool
    node: int
    """The current stack (a node of the trie)."""
    waiting_on: str = ""
    """Why an unmoved wait is not stuck: 'its 2 worker processes (1.9 cores)'."""
    role: str = ""
    """Its process's role (model.roles): main, DataLoader worker, worker, rank N."""


def thread_rows(profile: Profile, stuck_after_s: float = STUCK_AFTER_S) -> list[ThreadRow]:
    rows: list[ThreadRow] = []
    with profile.lock:
        tl = profile.timeline
        if len(tl) == 0:
            return rows
        t, stack, pid_col, tid_col = tl.t, tl.stack, tl.pid, tl.tid
        w, active = tl.w, tl.active
        roles = process_roles(profile)
        below = _descendants(profile)
        for pid in np.unique(pid_col):
            pid = int(pid)
            in_pid = np.flatnonzero(pid_col == pid)
            newest_of_pid = float(t[in_pid].max())
            info = profile.processes.get(pid)
            ended = info is not None and info.end_time is not None
            for tid in np.unique(tid_col[in_pid]):
                tid = int(tid)
                idx = in_pid[tid_col[in_pid] == tid]
                idx = idx[np.argsort(t[idx], kind="stable")]
                last_t = float(t[idx[-1]])
                if not ended and newest_of_pid - last_t > GONE_AFTER_S:
                    continue
                node = int(stack[idx[-1]])
                moved = np.flatnonzero(stack[idx] != node)
                run = idx[moved[-1] + 1:] if len(moved) else idx
                unchanged = last_t - float(t[run[0]]) + float(w[run[0]]) / 2 + float(w[run[-1]]) / 2
                recent = idx[t[idx] >= last_t - RECENT_S]
                share = float(active[recent].sum() / max(w[recent].sum(), 1e-9))
                ran = float(active[run].sum()) > 0.05 * max(float(w[run].sum()), 1e-9)
                frames = profile.stacks.frames_of(node)
                top = frames[-1] if frames else None
                line = linecache.getline(top.file, top.line).strip() if top and top.file else None
                kids = below.get(pid, [])
                kids_cpu = sum(_cpu_between(profile, k, last_t - unchanged, last_t) for k in kids) if kids else None
                verdict = judge([(f.function, f.file, f.line) for f in frames], line or None, ran,
                                unchanged, stuck_after_s, children_cpu_s=kids_cpu)
                waiting_on = ""
                if verdict.waiting_on_children and kids_cpu is not None and unchanged > 0:
                    workers = [k for k in kids if roles.get(k) in ("worker", "DataLoader worker")]
                    whom = f"{len(workers)} worker" if workers else f"{len(kids)} child"
                    waiting_on = f"its {whom} processes ({kids_cpu / unchanged:.1f} cores)"
                thread = profile.threads.get((pid, tid))
                rows.append(ThreadRow(
                    pid=pid, tid=tid, name=thread.name if thread else "",
                    state="running" if share >= 0.5 else "idle",
                    unchanged_s=unchanged,
                    top=f"{top.function} ({short_path(top.file)}:{top.line})" if top else "(no Python frames)",
                    wait_reason=verdict.wait_reason,
                    wait_frame=_label(verdict.wait_frame),
                    stuck=verdict.stuck and node != ROOT,
                    node=node,
                    waiting_on=waiting_on,
                    role=roles.get(pid, ""),
                ))
    return sorted(rows, key=lambda r: (not r.stuck, r.pid, r.tid))


def _label(frame) -> str:
    if frame is None:
        return ""
    function, file, line = frame
    return f"{function} ({short_path(file)}:{line})"


def _descendants(profile: Profile) -> dict[int, list[int]]:
    """pid -> every process below it that the profile knows."""
    children: dict[int, list[int]] = {}
    for info in profile.processes.values():
        if info.ppid != info.pid:
            children.setdefault(info.ppid, []).append(info.pid)
    out: dict[int, list[int]] = {}
    for pid in profile.processes:
        found, todo = [], list(children.get(pid, []))
        while todo:
            child = todo.pop()
            if child not in found:
                found.append(child)
                todo += children.get(child, [])
        out[pid] = found
    return out


def _cpu_between(profile: Profile, pid: int, start: float, end: float) -> float:
    """CPU seconds a process used in [start, end], from its readings (0 without two of them)."""
    s = profile.process_series
    mask = s.pid == pid
    t, cpu = s.t[mask], s.cpu_s[mask].astype(np.float64)
    if len(t) < 2:
        return 0.0
    return max(0.0, float(np.interp(end, t, cpu) - np.interp(start, t, cpu)))
