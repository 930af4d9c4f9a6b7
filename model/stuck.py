"""The verdicts of a dump watch: did each thread run, is it stuck, and which processes are in trouble.

collectors.dump measures; this module judges what it measured, so the
verdicts can be tested on facts written by hand. One stack's wait is
model.waits' judgement; here it is applied to a whole watch (how long the
stack did not move, whether the thread ran), and the process verdicts are
added: a zombie, a child that exited during the watch, a child idle for the
whole watch while its parent waits on it.

Must never read processes or files, nor import textual or rich.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from gradetop.model.dump_report import FrameReport, ProcessReport, ThreadReport
from gradetop.model.waits import Frame, children_move, judge

IDLE_CPU_FRACTION = 0.01
"""A thread (or process) that got less CPU than this share of the watch did not run."""
IDLE_CPU_FLOOR_S = 0.002
PARENT_WAITS = frozenset({"process join/wait", "pool result wait"})
"""A parent stuck in one of these is waiting on its children."""


@dataclass(frozen=True)
class ThreadFacts:
    """What the watch measured of one thread, as of its last dump."""

    tid: int
    name: str
    frames: list[FrameReport]
    """Leaf first, as py-spy prints them."""
    source_line: str | None
    """The text of the top Python frame's line, as the target sees it."""
    active: bool
    owns_gil: bool
    dumps: int
    active_dumps: int
    """Dumps that saw it active (py-spy's flag: one instant per dump)."""
    cpu_s: float | None
    """Seconds it ran on a CPU during the watch (kernel schedstat), None where unreadable."""
    unchanged_s: float
    """Time since its current stack was first seen."""
    python_thread_id: int | None = None


@dataclass(frozen=True)
class ProcessFacts:
    """What the watch measured of one process, beyond its report."""

    whole_watch: bool
    """It was seen alive from the first round to the last."""
    cpu_used_s: float
    """CPU seconds it used while seen."""


def ran(dumps: int, active_dumps: int, cpu_s: float | None, span: float) -> bool:
    """Active in half the dumps or more, or more than 1% of a CPU (and a floor) over the watch."""
    seen_active = active_dumps * 2 >= max(dumps, 1) and active_dumps > 0
    if cpu_s is not None and span > 0:
        return seen_active or cpu_s > max(IDLE_CPU_FLOOR_S, IDLE_CPU_FRACTION * span)
    return seen_active


def judge_thread(facts: ThreadFacts, span: float, running: bool) -> ThreadReport:
    """A thread's report: its wait, and stuck when its stack sat in that wait, unrun, for the whole `span`.

    An exited process's last stacks are shown, never judged (`running`
    False): nothing there waits any more.
    """
    root_first = [(f.function, f.file, f.line) for f in reversed(facts.frames)]
    did_run = ran(facts.dumps, facts.active_dumps, facts.cpu_s, span)
    verdict = judge(root_first, facts.source_line, did_run, facts.unchanged_s, span if running else 0.0)
    state = "running" if facts.active else ("holding GIL" if facts.owns_gil else "idle")
    return ThreadReport(
        tid=facts.tid,
        name=facts.name,
        state=state,
        active=facts.active,
        owns_gil=facts.owns_gil,
        unchanged_s=facts.unchanged_s,
        stuck=verdict.stuck,
        wait_reason=verdict.wait_reason,
        wait_frame=verdict.wait_frame,
        frames=facts.frames,
        ran=did_run,
        cpu_s=facts.cpu_s,
        python_thread_id=facts.python_thread_id,
    )


def judge_processes(reports: list[ProcessReport], facts: dict[int, ProcessFacts], root: int, watch_s: float) -> None:
    """Fill each report's `trouble` (its threads already judged): parents are looked up among `reports`.

    First, a thread found stuck in a wait its children can end is waiting, not stuck, when its
    descendants used CPU during the watch (the same rule as the live view, model.waits.children_move).
    """
    by_pid = {r.pid: r for r in reports}
    children: dict[int, list[int]] = {}
    for r in reports:
        if r.ppid is not None and r.ppid != r.pid:
            children.setdefault(r.ppid, []).append(r.pid)
    for r in reports:
        below, todo = [], list(children.get(r.pid, []))
        while todo:
            pid = todo.pop()
            if pid not in below:
                below.append(pid)
                todo += children.get(pid, [])
        cpu = sum(facts[p].cpu_used_s for p in below if p in facts)
        for t in r.threads:
            if t.stuck and children_move(t.wait_reason, cpu, watch_s):
                t.stuck = False
                t.waiting_on = (f"its {len(below)} child process{'es' if len(below) > 1 else ''}, which used "
                                f"{cpu:.1f} CPU s in {watch_s:.1f} s")
    for r in reports:
        parent = by_pid.get(r.ppid) if r.ppid is not None else None
        r.trouble.extend(process_trouble(r, facts[r.pid], parent, watch_s, is_root=r.pid == root))


def process_trouble(r: ProcessReport, facts: ProcessFacts, parent: ProcessReport | None, watch_s: float,
                    is_root: bool) -> list[str]:
    """One line per problem: not reaped, exited during the watch, or idle while its parent waits on it."""
    if r.status == "zombie":
        return [f"{exit_words(r.exit_code, r.signal)}; zombie: its parent {r.ppid} has not reaped it"]
    if r.status == "exited":
        if r.exit_code is not None or r.signal is not None:
            return [f"{exit_words(r.exit_code, r.signal)} during the watch"]
        return ["exited during the watch (exit status unknown: its parent reaped it)"]
    if is_root or parent is None or r.cpu_percent is None or watch_s <= 0:
        return []
    waiting = [t for t in parent.threads if (t.stuck or t.waiting_on) and t.wait_reason in PARENT_WAITS]
    idle = facts.whole_watch and facts.cpu_used_s <= max(IDLE_CPU_FLOOR_S, IDLE_CPU_FRACTION * watch_s)
    if not (idle and waiting):
        return []
    t = waiting[0]
    where = f" at {_short(t.wait_frame)}" if t.wait_frame else ""
    return [f"0% CPU for the whole watch ({watch_s:.1f} s) while its parent {parent.pid} "
            f"waits on it ({t.wait_reason}{where})"]


def exit_words(exit_code: int | None, signal_number: int | None) -> str:
    """'killed by SIGKILL', 'exited with status 3', or 'exit status unknown'."""
    if signal_number is not None:
        try:
            name = signal.Signals(signal_number).name
        except ValueError:
            name = f"signal {signal_number}"
        return f"killed by {name}"
    if exit_code is not None:
        return f"exited with status {exit_code}"
    return "exit status unknown"


def _short(frame: Frame | None) -> str:
    if frame is None:
        return "?"
    return f"{os.path.basename(frame[1])}:{frame[2]}"
