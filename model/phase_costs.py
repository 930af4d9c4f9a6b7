"""What each phase cost, and a bottleneck verdict in words with its evidence.

Attribution is direct: a sample says which thread was where, and each
process's counters say what it used meanwhile. Per thread, prefix sums of
the sample columns make any interval's cost two lookups, so thousands of
short phases (a forward pass per step) cost little more than one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

import numpy as np

from gradetop.model.activity import node_wait_reason
from gradetop.model.breakdown import INPUT, Parts, headline, training_like, what_if
from gradetop.model.phases import Phase, PhaseCost
from gradetop.model.phases.naming import Namer, UserCode
from gradetop.model.processes import HOST_PID, MONITOR_PID
from gradetop.model.profile import Profile
from gradetop.model.roles import DATALOADER, MAIN, process_roles
from gradetop.model.stacks import ROOT, short_path
from gradetop.model.waits import children_move

CPU_BOUND = 0.8
"""Running (or runnable) this share of the time: CPU-bound."""
STALLED = 0.3
"""Idle this share of the time in Python code that is no wait: the GIL is the likely holder-up."""
WAITING = 0.6
"""Idle in waits this share of the time: blocked, waiting on input, or on IO."""
BUSY_CHILDREN = 0.5
"""Descendants using half a core or more while the phase waits: they are the work (data loading)."""
IO_RATE = 20e6
"""Bytes per second of disk IO that make a waiting phase IO-bound."""
IO_REASONS = frozenset({"read", "socket recv"})
"""Waits (model.waits reasons) that are IO."""
INPUT_WAIT = 0.5
"""Idle this share of the time while its workers are busy: the thread waits on their input."""
STARVED = 0.7
"""A runnable thread that got less than this share of CPU while it wanted one is starved, not CPU-bound."""
HELPERS = 0.3
"""Threads py-spy cannot see (torch's intra-op / OpenMP pool) computing this many CPU seconds per second
the Python thread sat in a native call: that call waited for them, it was not blocked."""
TASK_WAITS = frozenset({"queue.get", "connection recv", "select/poll", "condition wait"})
"""Where a worker process waits for its next task (its index or call queue)."""
IDLE_CORE = 0.5
"""Cores the machine left idle, on average over a phase, that make a thread short of CPU not starved."""
_RULE_PARTS = frozenset({"forward", "backward", "optimizer step", "data loading"})
_IMPORT = re.compile(r"(?:^|: )import (\S+)$")


@dataclass
class _ThreadSums:
    t: np.ndarray
    w: np.ndarray
    w_each: np.ndarray
    active: np.ndarray
    waiting: np.ndarray
    stalled: np.ndarray
    nodes: np.ndarray
    idle: np.ndarray
    waiting_mask: np.ndarray


class PhaseCoster:
    """Costs phases of one profile; build once, then cost any number of phases."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._threads: dict[tuple[int, int], _ThreadSums] = {}
        self._reasons: dict[int, str | None] = {}
        self._series: dict[int, dict[str, np.ndarray]] = {}
        self._thread_cpu: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._children: dict[int, list[int]] = {}
        for info in profile.processes.values():
            self._children.setdefault(info.ppid, []).append(info.pid)
        user = UserCode(tuple(profile.meta.options.get("user_code") or ()))
        self.parts = Parts(profile.stacks, user)
        self.namer = Namer(profile.stacks, user)
        self.roles = process_roles(profile)
        self.cores = int(profile.meta.options.get("cpus") or os.cpu_count() or 1)
        self._helpers: dict[int, list[int]] = {}

    # ---- inputs ---------------------------------------------------------------------------

    def reason(self, node: int) -> str | None:
        """Why a thread in this stack would be idle: a wait's name, or None (Python code: the GIL)."""
        if node not in self._reasons:
            self._reasons[node] = node_wait_reason(self.profile.stacks, node, active=False)
        return self._reasons[node]

    def thread(self, pid: int, tid: int) -> _ThreadSums:
        key = (pid, tid)
        if key not in self._threads:
            tl = self.profile.timeline
            idx = np.flatnonzero((tl.pid == pid) & (tl.tid == tid))
            idx = idx[np.argsort(tl.t[idx], kind="stable")]
            w = tl.w[idx].astype(np.float64)
            active = np.minimum(tl.active[idx].astype(np.float64), w)
            idle = w - active
            nodes = tl.stack[idx]
            waits = np.array([self.reason(int(n)) is not None for n in np.unique(nodes)], dtype=bool)
            waiting_mask = waits[np.searchsorted(np.unique(nodes), nodes)] if len(nodes) else np.zeros(0, bool)
            self._threads[key] = _ThreadSums(
                t=tl.t[idx],
                w=np.r_[0.0, np.cumsum(w)],
                w_each=w,
                active=np.r_[0.0, np.cumsum(active)],
                waiting=np.r_[0.0, np.cumsum(np.where(waiting_mask, idle, 0.0))],
                stalled=np.r_[0.0, np.cumsum(np.where(waiting_mask, 0.0, idle))],
                nodes=nodes,
                idle=idle,
                waiting_mask=waiting_mask,
            )
        return self._threads[key]

    def series(self, pid: int) -> dict[str, np.ndarray]:
        if pid not in self._series:
            s = self.profile.process_series
            mask = s.pid == pid
            cols = {name: getattr(s, name)[mask] for name in ("t", "cpu_s", "rss", "read_bytes", "write_bytes",
                                                              "threads")}
            info = self.profile.processes.get(pid)
            if info is not None and len(cols["t"]) and 0 < info.create_time < cols["t"][0]:
                # Counters start at zero when the process does: what it used before its first
                # reading belongs to the phases that ran then.
                cols = {name: np.r_[info.create_time if name == "t" else 0, col] for name, col in cols.items()}
                cols["rss"][0] = cols["rss"][1]
            self._series[pid] = cols
        return self._series[pid]

    def thread_cpu(self, pid: int, tid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The thread's counters: reading times, CPU seconds, and seconds running or waiting for a CPU."""
        key = (pid, tid)
        if key not in self._thread_cpu:
            s = self.profile.thread_series
            mask = (s.pid == pid) & (s.tid == tid)
            self._thread_cpu[key] = (s.t[mask], s.cpu_s[mask], s.active_s[mask])
        return self._thread_cpu[key]

    def descendants(self, pid: int) -> list[int]:
        out, todo = [], list(self._children.get(pid, []))
        while todo:
            child = todo.pop()
            if child != pid and child not in out:
                out.append(child)
                todo += self._children.get(child, [])
        return out

    # ---- costing ------------------------------------------------------------------------------

    def cost(self, phase: Phase) -> PhaseCost:
        th = self.thread(phase.pid, phase.tid)
        i0, i1 = np.searchsorted(th.t, [phase.start, phase.end])
        sampled = th.w[i1] - th.w[i0]
        active = th.active[i1] - th.active[i0]
        waiting = th.waiting[i1] - th.waiting[i0]
        stalled = th.stalled[i1] - th.stalled[i0]
        idle, nodes, mask = th.idle[i0:i1], th.nodes[i0:i1], th.waiting_mask[i0:i1]
        top_wait = self._heaviest(nodes[mask], idle[mask], with_reason=True) if waiting > 0 else ""
        top_node = self._heaviest_node(nodes[mask], idle[mask]) if waiting > 0 else ROOT
        reason = (self.reason(top_node) or "") if top_node > ROOT else ""
        stalled_at = self._heaviest(nodes[~mask], idle[~mask], with_reason=False) if stalled > 0 else ""
        s = self.series(phase.pid)
        cpu = _delta(s["t"], s["cpu_s"], phase.start, phase.end)
        rss = _peak(s["t"], s["rss"], phase.start, phase.end)
        read = max(0.0, _delta(s["t"], s["read_bytes"], phase.start, phase.end))
        write = max(0.0, _delta(s["t"], s["write_bytes"], phase.start, phase.end))
        tt, tc, ta = self.thread_cpu(phase.pid, phase.tid)
        thread_cpu = _delta(tt, tc, phase.start, phase.end)
        thread_active = _delta(tt, ta, phase.start, phase.end) if len(tt) >= 2 else None
        children = 0.0
        for child in self.descendants(phase.pid):
            cs = self.series(child)
            children += _delta(cs["t"], cs["cpu_s"], phase.start, phase.end)
        cost = PhaseCost(phase, float(sampled), float(active), float(waiting), float(stalled), cpu, thread_cpu,
                         children, int(rss), int(read), int(write), top_wait, reason, stalled_at,
                         thread_active_s=thread_active)
        extra: dict = {"helper_cpu_s": self.helper_cpu(phase), "role": self.roles.get(phase.pid, ""),
                       "children": sum(1 for p in self.descendants(phase.pid)
                                       if self.roles.get(p) in ("worker", "DataLoader worker"))}
        if cpu_got(cost) < STARVED:
            extra["holders"] = self.cpu_holders(phase)
        if not (phase.source == "rule" and phase.name in _RULE_PARTS) and i1 - i0 >= 10:
            parts = self.parts.breakdown(nodes, th.w_each[i0:i1], phase.duration)
            if training_like(parts):
                extra["breakdown"] = parts
        kind, words = verdict(cost, self.other_threads_active(phase), extra)
        words = self.import_words(phase, nodes, words)
        detail = [words]
        if "breakdown" in extra:
            workers = [p for p in self.descendants(phase.pid) if self.roles.get(p) == DATALOADER]
            short = phase.name.rsplit(": ", 1)[-1]
            detail.append(headline(short, extra["breakdown"], "waiting for DataLoader workers" if workers
                                   else "waiting for input"))
            extra["headline"] = detail[-1]
            gain = what_if(short, extra["breakdown"], phase.duration)
            if gain:
                detail.append(gain)
                extra["what_if"] = gain
        extra["detail"] = "; ".join(d for d in detail if d)
        return replace(cost, verdict=words, verdict_kind=kind, extra=extra)

    def import_words(self, phase: Phase, nodes: np.ndarray, words: str) -> str:
        """An import phase says so first, and where it ran: `import sklearn (worker, receiving its first task)`."""
        found = _IMPORT.search(phase.name)
        if not found:
            return words
        where = []
        role = self.roles.get(phase.pid, "")
        if role and role != MAIN:
            where.append(role)
        if len(nodes) and any(self.namer.import_context(int(n)) == "task" for n in np.unique(nodes)):
            where.append("receiving its first task")
        return f"import {found.group(1)}" + (f" ({', '.join(where)})" if where else "") + f": {words}"

    def helper_cpu(self, phase: Phase) -> float:
        """CPU seconds, in the phase, of the process's threads that run no Python (torch's intra-op pool)."""
        total = 0.0
        for tid in self.helper_tids(phase.pid):
            tt, tc, _ = self.thread_cpu(phase.pid, tid)
            total += _delta(tt, tc, phase.start, phase.end)
        return max(0.0, total)

    def helper_tids(self, pid: int) -> list[int]:
        """Threads of the process the kernel counted but py-spy never sampled: they run no Python."""
        if pid not in self._helpers:
            s = self.profile.thread_series
            python = {tid for (p, tid) in self.profile.threads if p == pid}
            tids = np.unique(s.tid[s.pid == pid]) if len(s) else []
            self._helpers[pid] = [int(t) for t in tids if int(t) not in python]
        return self._helpers[pid]

    def cpu_holders(self, phase: Phase) -> dict:
        """Who used the CPUs during the phase, in cores: `workflow` [(who, cores)] of the workflow's other
        processes by role and this process's other threads, busiest first; where the recording read the
        machine (model.processes.HOST_PID / MONITOR_PID), its `cores`, `busy` cores, gradetop's own
        `monitor` cores and the `others` left to programs outside the workflow."""
        wall = phase.duration
        out: dict = {"workflow": [], "cores": self.cores}
        if wall <= 0:
            return out
        by_role: dict[str, float] = {}
        everything = 0.0
        for pid in self.profile.processes:
            s = self.series(pid)
            used = _delta(s["t"], s["cpu_s"], phase.start, phase.end)
            everything += max(0.0, used)
            if pid == phase.pid:
                tt, tc, _ = self.thread_cpu(phase.pid, phase.tid)
                used -= _delta(tt, tc, phase.start, phase.end)
                helpers = min(max(0.0, used), self.helper_cpu(phase))
                if helpers > 0.05 * wall:
                    # Threads that run no Python in the process: torch's intra-op (OpenMP) pool, BLAS.
                    by_role["its intra-op (non-Python) threads"] = helpers / wall
                used -= helpers
                who = "its other Python threads"
            else:
                role = self.roles.get(pid, "child")
                who = f"{role}s" if role in ("worker", "DataLoader worker", "child") else role
            if used > 0.05 * wall:
                by_role[who] = by_role.get(who, 0.0) + used / wall
        out["workflow"] = sorted(by_role.items(), key=lambda kv: -kv[1])
        host, monitor = self.series(HOST_PID), self.series(MONITOR_PID)
        if len(host["t"]) >= 2:
            cores = int(host["threads"][-1]) if "threads" in host and len(host["threads"]) else self.cores
            busy = max(0.0, _delta(host["t"], host["cpu_s"], phase.start, phase.end)) / wall
            mon = max(0.0, _delta(monitor["t"], monitor["cpu_s"], phase.start, phase.end)) / wall
            out.update(cores=cores or self.cores, busy=min(busy, float(cores or self.cores)), monitor=mon,
                       others=max(0.0, busy - everything / wall - mon))
        return out

    @staticmethod
    def _heaviest_node(nodes: np.ndarray, weights: np.ndarray) -> int:
        return int(np.bincount(nodes, weights=weights).argmax()) if len(nodes) else ROOT

    def _heaviest(self, nodes: np.ndarray, weights: np.ndarray, with_reason: bool) -> str:
        """The leaf frame holding the most of `weights`, as 'function (file:line)' or 'function (reason)'."""
        top = self._heaviest_node(nodes, weights)
        if top <= ROOT:
            return ""
        frame = self.profile.stacks.frames_of(top)[-1]
        if with_reason:
            return f"{frame.function} ({self.reason(top)})"
        return f"{frame.function} at {short_path(frame.file)}:{frame.line}"

    def other_threads_active(self, phase: Phase) -> float:
        """Seconds other threads of the process were running during the phase."""
        total = 0.0
        for (pid, tid) in self.profile.threads:
            if pid != phase.pid or tid == phase.tid:
                continue
            th = self.thread(pid, tid)
            i0, i1 = np.searchsorted(th.t, [phase.start, phase.end])
            total += th.active[i1] - th.active[i0]
        return float(total)


def _delta(t: np.ndarray, values: np.ndarray, start: float, end: float) -> float:
    """How much a cumulative counter grew over [start, end] (0 without readings)."""
    if len(t) < 2:
        return 0.0
    values = values.astype(np.float64)
    if values.min() < 0:
        return 0.0
    return float(np.interp(end, t, values) - np.interp(start, t, values))


def _peak(t: np.ndarray, values: np.ndarray, start: float, end: float) -> float:
    if len(t) == 0:
        return 0.0
    i0 = max(int(np.searchsorted(t, start)) - 1, 0)
    i1 = min(int(np.searchsorted(t, end)) + 1, len(t))
    return float(values[i0:i1].max()) if i1 > i0 else 0.0


COUNTER_SPAN_S = 0.3
"""Shortest phase whose process CPU, from counters read at 10 Hz, is worth saying."""

def cpu_got(c: PhaseCost) -> float:
    """Of the time the thread wanted a CPU, the share it ran: one counter over the other, cut alike."""
    wanted = c.thread_active_s if c.thread_active_s is not None else c.active_s
    return c.thread_cpu_s / wanted if wanted > 0 else 1.0


def verdict(c: PhaseCost, others_active_s: float, extra: dict | None = None) -> tuple[str, str]:
    """(kind, words): the bottleneck of one phase, named with the numbers that show it.

    `extra` is what the coster learnt beyond the thread: `helper_cpu_s` (CPU of the process's threads
    that run no Python: torch's intra-op pool), `holders` ((who, cores) that used CPU meanwhile),
    `breakdown` ({part: seconds} of a training-like phase), `role`.
    """
    extra = extra or {}
    s = c.sampled_s
    if s <= 0:
        return "unknown", "no samples in this phase"
    wall = c.phase.duration or s
    running, waiting, stalled = c.active_s / s, c.waiting_s / s, c.stalled_s / s
    io_rate = (c.read_bytes + c.write_bytes) / wall if wall > 0 else 0.0
    helpers = float(extra.get("helper_cpu_s", 0.0))
    parts = extra.get("breakdown") or {}
    if running >= CPU_BOUND:
        cores = c.cpu_s / wall if wall > 0 else 0.0
        got = cpu_got(c)
        if got < STARVED:
            holders = extra.get("holders") or {}
            wanted = f"the thread wanted a CPU {running:.0%} of {_dur(wall)} but ran only {got:.0%} of that"
            idle = holders.get("cores", 0) - holders.get("busy", holders.get("cores", 0))
            if "busy" in holders and idle >= IDLE_CORE:
                # Not starved: a core sat idle. Something other than the machine's load holds it back.
                return "limited", (f"CPU-limited: {wanted}, while the machine had {idle:.1f} of its "
                                   f"{holders['cores']} cores idle: a CPU quota (cgroup) or affinity holds it back")
            return "starved", f"CPU-starved: {wanted}; {_holders_words(holders)}"
        if wall < COUNTER_SPAN_S:  # the process's counter, read at 10 Hz, cannot say what a 17 ms phase used
            return "cpu", f"CPU-bound: the thread ran {running:.0%} of {_dur(wall)}"
        return "cpu", (f"CPU-bound: the thread ran {running:.0%} of {_dur(wall)}; "
                       f"the process used {cores:.1f} cores")
    if parts and parts.get(INPUT, 0.0) >= INPUT_WAIT * sum(parts.values()):
        share = parts[INPUT] / sum(parts.values())
        return "input", (f"input-bound: waited {share:.0%} of {_dur(wall)} for the next batch "
                         f"while its workers used {c.children_cpu_s / wall:.1f} cores")
    if stalled >= STALLED and helpers >= HELPERS * c.stalled_s and c.stalled_s > 0:
        return "helpers", (f"computing on torch's intra-op threads: the thread sat {stalled:.0%} of {_dur(wall)} in "
                           f"{_function(c.stalled_at) or 'a native call'} while the process's non-Python threads "
                           f"used {helpers:.1f} CPU s ({helpers / wall:.1f} cores)")
    if stalled >= STALLED and others_active_s > 0.2 * wall:
        return "gil", (f"GIL-contended: {stalled:.0%} of the time the thread was in Python code but not running, "
                       f"while its other threads ran {others_active_s:.1f} s")
    if (waiting + stalled >= INPUT_WAIT and c.wait_reason == "DataLoader wait"
            and c.waiting_s >= INPUT_WAIT * s):
        return "input", (f"input-bound: waited {waiting:.0%} of {_dur(wall)} for the next batch "
                         f"while its workers used {c.children_cpu_s / wall:.1f} cores")
    role = extra.get("role", "")
    if role in (DATALOADER, "worker") and waiting >= WAITING and c.wait_reason in TASK_WAITS:
        consumer = "the main process takes batches" if role == DATALOADER else "its parent hands out tasks"
        return "idle", (f"idle, waiting for work: waited {waiting:.0%} of {_dur(wall)} in "
                        f"{c.top_wait or 'its task queue'}; {consumer} slower than it could serve them")
    if waiting >= WAITING and children_move(c.wait_reason, c.children_cpu_s, wall):
        # The same rule as the stuck judgement: a wait its children end, while they compute, is progress.
        kids = extra.get("children", 0)
        whom = f"its {kids} worker processes" if kids else "its worker processes"
        return "input", (f"waiting on {whom}: waited {waiting:.0%} of {_dur(wall)} in {c.top_wait or 'a wait'} "
                         f"while they used {c.children_cpu_s / wall:.1f} cores")
    if waiting + stalled >= INPUT_WAIT and c.children_cpu_s >= BUSY_CHILDREN * wall:
        return "input", (f"waiting on its worker processes (input): waited {waiting + stalled:.0%} of the time "
                         f"in {c.top_wait or c.stalled_at or 'a wait'} while they used {c.children_cpu_s / wall:.1f} cores")
    if (waiting >= WAITING or stalled >= STALLED) and (io_rate >= IO_RATE or c.wait_reason in IO_REASONS):
        return "io", (f"I/O-bound: {io_rate / 1e6:.0f} MB/s read+written, the thread waited {waiting:.0%} "
                      f"of the time in {c.top_wait or 'IO'}")
    if waiting >= WAITING:
        return "blocked", f"blocked: waited {waiting:.0%} of {_dur(wall)} in {c.top_wait or 'a wait'}"
    if stalled >= STALLED:
        # Idle in a line that is no known wait, with no other thread running: a blocking native call.
        return "blocked", (f"blocked: idle {stalled:.0%} of {_dur(wall)} in a native call "
                           f"({c.stalled_at or 'unknown'}); no other thread of the process computed meanwhile "
                           f"({helpers:.1f} CPU s)")
    return "mixed", f"mixed: ran {running:.0%}, waited {waiting:.0%}, stalled {stalled:.0%}"


def _dur(seconds: float) -> str:
    """A phase's length in words: '1.4 s', or '15 ms' for one too short for a tenth of a second."""
    return f"{seconds:.1f} s" if seconds >= 0.095 else f"{seconds * 1000:.0f} ms"


def _function(where: str) -> str:
    return where.split(" at ", 1)[0]


def _holders_words(holders: dict) -> str:
    """Who held the CPUs: the machine's load where it was read, the workflow's own processes by role."""
    inside = ", ".join(f"{who} {cores:.1f}" for who, cores in holders.get("workflow", [])[:3])
    mine = sum(c for _, c in holders.get("workflow", []))
    if "busy" in holders:
        return (f"the machine's {holders['cores']} cores were {holders['busy'] / holders['cores']:.0%} busy: "
                f"the workflow's other work {mine:.1f}" + (f" ({inside})" if inside else "")
                + f", gradetop and its samplers {holders['monitor']:.1f}, other programs {holders['others']:.1f}")
    if not inside:
        return ("the workflow's other processes used no CPU meanwhile: processes outside it held the cores "
                "(other jobs, gradetop's own samplers)")
    return (f"meanwhile the workflow used {mine:.1f} cores elsewhere ({inside}); "
            f"the rest went to processes outside it (other jobs, gradetop's own samplers)")


def cost_phases(profile: Profile, phases: list[Phase]) -> list[PhaseCost]:
    with profile.lock:
        coster = PhaseCoster(profile)
        return [coster.cost(p) for p in phases]
