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


def thread_rows(profile: Profile, stuck_after_s: float = STUCK_AFTER_S) -> list[ThreadRow]:
    rows: list[ThreadRow] = []
    with profile.lock:
        tl = profile.timeline
        if len(tl) == 0:
            return rows
        t, stack, pid_col, tid_col = tl.t, tl.stack, tl.pid, tl.tid
        w, active = tl.w, tl.active
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
                verdict = judge([(f.function, f.file, f.line) for f in frames], line or None, ran,
                                unchanged, stuck_after_s)
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
                ))
    return sorted(rows, key=lambda r: (not r.stuck, r.pid, r.tid))


def _label(frame) -> str:
    if frame is None:
        return ""
    function, file, line = frame
    return f"{function} ({short_path(file)}:{line})"
