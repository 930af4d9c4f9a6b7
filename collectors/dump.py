"""`py-spy dump` of a process tree, repeated over a watch: which threads are stuck, which processes are in trouble.

Each round dumps the root and each live child by PID (py-spy's -s ignores
children in dump: PYSPY.md), all at once. Per thread the collector keeps
when its current stack was first seen, whether py-spy ever saw it active and
how much CPU the kernel gave it (collectors.procfs). Per process it keeps
psutil's view: CPU time, zombies (with the exit status the kernel still
holds for them), children that vanished. `model.stuck` judges those facts
into the records of `model.dump_report` (re-exported here for callers).

Measured on our 2-core machine (shared with other jobs, so wall times vary
2-5x; py-spy's own CPU time is the steady number):
- a `dump --json` costs ~10 ms of py-spy CPU on a 5-thread target and ~24 ms
  on a 65-thread one, the same with or without --nonblocking; wall time
  13-25 ms (5 threads) and 50-120 ms (65 threads).
- Rounds are therefore spaced by 10x the wall cost of the last round, and
  never closer than 0.25 s: py-spy takes at most ~10% of one core, and a
  2 s watch of one process is 9 dumps (unchanged times to 0.25 s).
- Watch rounds use --nonblocking. A stuck thread does not move, so reading
  it without pausing is exact; only moving threads can be read torn, and
  for them a torn read correctly counts as "changed". Pausing buys nothing
  here and costs what PYSPY.md warns of (every thread of a torch job
  stopped at each dump); and blocking dumps wake waiting threads: in one
  run of 60 blocking --native dumps, a thread deadlocked on a lock was
  reported active once. py-spy refuses --native with --nonblocking, so
  --native (and --locals, which is 1.5-2x slower) are asked only of the
  last round: the target is paused at most once, for the dump the user
  reads.
- "Did it run" is judged from the kernel's count of each thread's time on a
  CPU (schedstat), not only from py-spy's active flag, which is one instant
  per dump: a deadlocked thread ran 0.0-0.1 ms in a 1.5 s watch, a busy one
  0.7 s on a loaded machine. Run-queue time is left out: after the one
  blocking dump a deadlocked thread waited 15-40 ms for a CPU just to go
  back to sleep.

Must never judge what it measured (model.stuck does), nor import textual
or rich.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from gradetop.collectors.processes import without_gradetop
from gradetop.collectors.procfs import source_line, thread_cpu_s, zombie_exit
from gradetop.collectors.pyspy import explain_failure
from gradetop.collectors.window import PySpyMissing, find_pyspy
from gradetop.model.dump_report import DumpResult, FrameReport, ProcessReport, ThreadReport
from gradetop.model.stuck import ProcessFacts, ThreadFacts, exit_words, judge_processes, judge_thread
from gradetop.model.waits import Frame

__all__ = ["DumpError", "DumpOptions", "DumpResult", "FrameReport", "ProcessReport", "ThreadReport", "dump"]

MIN_INTERVAL_S = 0.25
COST_FACTOR = 10.0
"""Rounds are at least this many times their own wall cost apart: py-spy stays under ~10% of one core."""
RETRY_DELAYS_S = (0.05, 0.1, 0.2, 0.4)
"""A young interpreter is not readable at once (PYSPY.md): retry before saying 'not Python'."""
GIVE_UP_AFTER = len(RETRY_DELAYS_S) + 1
DUMP_TIMEOUT_S = 15.0


class DumpError(Exception):
    """Nothing could be dumped; `kind` as explain_failure's, the message one line for the user."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class DumpOptions:
    watch_s: float = 2.0
    subprocesses: bool = True
    native: bool = False
    locals: bool = False


def dump(pid: int, options: DumpOptions | None = None, *, clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> DumpResult:
    """Watch process `pid` (and its children) for `options.watch_s` seconds; raise DumpError if nothing could be read."""
    return _Watch(pid, options or DumpOptions(), clock, sleep).run()


# ---------------------------------------------------------------------------


@dataclass
class _ThreadWatch:
    key: tuple[Frame, ...]
    since: float
    """Round time at which the current Python stack was first seen."""
    cpu_first: float | None
    cpu_last: float | None
    dumps: int = 0
    active_dumps: int = 0
    last: dict = field(default_factory=dict)


@dataclass
class _ProcessWatch:
    pid: int
    proc: psutil.Process | None
    ppid: int | None
    cmdline: str
    cpu_first: float | None
    cpu_last: float | None = None
    seen_first: float = 0.0
    seen_last: float = 0.0
    first_ok: float | None = None
    last_ok: float | None = None
    attempts: int = 0
    failure: tuple[str, str] | None = None
    status: str = "running"
    exit_code: int | None = None
    signal: int | None = None
    note: str | None = None
    threads: dict[int, _ThreadWatch] = field(default_factory=dict)


class _Watch:
    def __init__(self, pid: int, options: DumpOptions, clock, sleep) -> None:
        self.root = pid
        self.options = options
        self.clock = clock
        self.sleep = sleep
        self.processes: dict[int, _ProcessWatch] = {}
        self.rounds = 0
        self.blocking_rounds = 0
        self.t_first: float | None = None
        self.t_last: float | None = None
        try:
            self.pyspy = find_pyspy()
        except PySpyMissing as exc:
            raise DumpError("error", str(exc)) from None

    def run(self) -> DumpResult:
        root = self._track(self.root, self.clock())
        if root is None:
            raise DumpError("gone", f"no process with pid {self.root}")
        if root.status == "zombie":
            raise DumpError("gone", f"process {self.root} has already exited ({_exit_words(root)}) and is a "
                                    f"zombie: its parent {root.ppid} has not reaped it")
        watch = max(0.0, self.options.watch_s)
        start = self.clock()
        end = start + watch
        last = watch == 0
        while True:
            cost = self._round(last)
            if self.rounds == 1:
                self._check_root()
            if last:
                break
            now = self.clock()
            next_t = max(self.t_last + max(MIN_INTERVAL_S, COST_FACTOR * cost), now)
            if next_t >= end - MIN_INTERVAL_S / 2:
                next_t = max(end, now)
                last = True
            self.sleep(max(0.0, next_t - self.clock()))
        self._retry_unread()
        return self._result()

    # -- rounds --------------------------------------------------------------

    def _round(self, last: bool) -> float:
        t = self.clock()
        self.t_first = t if self.t_first is None else self.t_first
        self.t_last = t
        self.rounds += 1
        self._discover(t)
        extras = last and (self.options.native or self.options.locals)
        # A child never read after GIVE_UP_AFTER tries is not Python (a shell, ffmpeg): stop paying for it.
        targets = [w for w in self.processes.values()
                   if w.status == "running" and (w.first_ok is not None or w.attempts < GIVE_UP_AFTER)]
        results = self._dump_all([w.pid for w in targets], extras=extras)
        if extras and self.options.native:
            self.blocking_rounds += 1
        for w in targets:
            ok, payload = results[w.pid]
            if not ok and extras:
                # --native can fail where a plain dump works (no unwind info): keep the stacks, say why.
                kind, message = explain_failure(payload, w.pid)
                if kind not in ("gone", "permission"):
                    ok, payload = self._dump_all([w.pid], extras=False)[w.pid]
                    w.note = f"without native frames or locals: {message}"
            self._record(w, t, ok, payload)
        return self.clock() - t

    def _dump_all(self, pids: list[int], extras: bool) -> dict[int, tuple[bool, object]]:
        """{pid: (True, parsed JSON) or (False, stderr)}, every py-spy started at once."""
        args = ["dump", "--json"]
        if extras and self.options.native:
            args.append("--native")  # py-spy cannot unwind native stacks without pausing the target
        else:
            args.append("--nonblocking")
        if extras and self.options.locals:
            args.append("--locals")
        running = {}
        for pid in pids:
            running[pid] = subprocess.Popen([self.pyspy, *args, "-p", str(pid)], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        out = {}
        for pid, proc in running.items():
            try:
                stdout, stderr = proc.communicate(timeout=DUMP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                out[pid] = (False, f"Error: py-spy did not answer within {DUMP_TIMEOUT_S:.0f} s")
                continue
            if proc.returncode == 0:
                try:
                    out[pid] = (True, json.loads(stdout))
                except ValueError:
                    out[pid] = (False, "Error: py-spy printed something that is not JSON")
            else:
                out[pid] = (False, stderr.decode(errors="replace"))
        return out

    def _record(self, w: _ProcessWatch, t: float, ok: bool, payload) -> None:
        w.attempts += 1
        if not ok:
            w.failure = explain_failure(payload, w.pid)
            return
        w.failure = None
        if w.first_ok is None:
            w.first_ok = t
        w.last_ok = t
        seen = set()
        for thread in payload:
            tid = thread.get("os_thread_id") or thread.get("thread_id")
            if tid is None:
                continue
            seen.add(tid)
            key = tuple((f.get("name", ""), f.get("filename") or "", int(f.get("line") or 0))
                        for f in reversed(thread.get("frames", [])) if not f.get("module"))
            cpu = thread_cpu_s(w.pid, tid)
            tw = w.threads.get(tid)
            if tw is None or tw.key != key:
                # New thread, or its stack moved: the unchanged time starts again now.
                keep_cpu = tw.cpu_first if tw is not None else cpu
                tw = w.threads[tid] = _ThreadWatch(key, t, cpu_first=keep_cpu, cpu_last=cpu,
                                                   dumps=tw.dumps if tw else 0,
                                                   active_dumps=tw.active_dumps if tw else 0)
            tw.cpu_last = cpu
            tw.dumps += 1
            tw.active_dumps += bool(thread.get("active"))
            tw.last = thread
        for tid in list(w.threads):
            if tid not in seen:
                del w.threads[tid]  # the thread ended; a reused tid starts afresh

    def _discover(self, t: float) -> None:
        """Track new children, and note the ones that became zombies or went away."""
        root = self.processes[self.root]
        if root.proc is not None and self.options.subprocesses and root.status == "running":
            try:
                children = without_gradetop(root.proc.children(recursive=True))
            except psutil.Error:
                children = []
            for child in children:
                if child.pid not in self.processes:
                    self._track(child.pid, t, child)
        for w in self.processes.values():
            if w.status == "exited":
                continue
            self._refresh(w, t)

    def _track(self, pid: int, t: float, proc: psutil.Process | None = None) -> _ProcessWatch | None:
        try:
            proc = proc or psutil.Process(pid)
            with proc.oneshot():
                ppid = proc.ppid()
                try:
                    cmdline = " ".join(proc.cmdline()) or proc.name()
                except (psutil.AccessDenied, psutil.ZombieProcess):
                    cmdline = proc.name()
                cpu = _cpu(proc)
        except psutil.NoSuchProcess:
            return None
        except psutil.AccessDenied:
            ppid, cmdline, cpu = None, "", None
        w = self.processes[pid] = _ProcessWatch(pid, proc, ppid, cmdline, cpu, cpu_last=cpu, seen_first=t, seen_last=t)
        self._refresh(w, t)
        return w

    def _refresh(self, w: _ProcessWatch, t: float) -> None:
        try:
            if w.proc is None or not w.proc.is_running():
                raise psutil.NoSuchProcess(w.pid)
            status = w.proc.status()
            if status == psutil.STATUS_ZOMBIE:
                if w.status != "zombie":
                    w.status = "zombie"
                    w.exit_code, w.signal = zombie_exit(w.pid)
                return
            w.cpu_last = _cpu(w.proc) if w.cpu_first is not None else None
            w.seen_last = t
        except psutil.NoSuchProcess:
            w.status = "exited"
        except psutil.AccessDenied:
            w.seen_last = t

    def _check_root(self) -> None:
        """After the first round: fail now if nothing at all could be read (ptrace denied, not Python)."""
        root = self.processes[self.root]
        if root.first_ok is not None or root.failure is None:
            return
        if root.failure[0] == "not-python":
            # A young interpreter is not readable at once (PYSPY.md): try again before saying so,
            # children too (a shell shim's Python child may be as young).
            for delay in RETRY_DELAYS_S:
                unread = [w for w in self.processes.values() if w.first_ok is None and w.status == "running"]
                if not unread or any(w.first_ok is not None for w in self.processes.values()):
                    break
                self.sleep(delay)
                t = self.clock()
                for w in unread:
                    self._refresh(w, t)
                results = self._dump_all([w.pid for w in unread if w.status == "running"], extras=False)
                for w in unread:
                    if w.pid in results:
                        self._record(w, t, *results[w.pid])
        if root.first_ok is not None:
            return
        kind, message = root.failure
        if root.status != "running":
            raise DumpError("gone", f"process {self.root} exited before it could be read ({_exit_words(root)})")
        if kind == "permission" or not any(w.first_ok is not None for w in self.processes.values()):
            raise DumpError(kind, message)

    def _retry_unread(self) -> None:
        """Children still unread after the watch (too young at each round) get the retries the root got."""
        for w in self.processes.values():
            if w.first_ok is not None or w.status != "running" or not w.failure or w.failure[0] != "not-python":
                continue
            if w.attempts > len(RETRY_DELAYS_S):
                continue
            for delay in RETRY_DELAYS_S:
                self.sleep(delay)
                ok, payload = self._dump_all([w.pid], extras=False)[w.pid]
                self._record(w, self.clock(), ok, payload)
                if ok:
                    break

    # -- the report ------------------------------------------------------------

    def _result(self) -> DumpResult:
        watch = (self.t_last - self.t_first) if self.t_first is not None else 0.0
        # The root first, then children in the order they were found.
        reports = [self._process_report(w) for w in self.processes.values()]
        facts = {w.pid: self._process_facts(w) for w in self.processes.values()}
        judge_processes(reports, facts, self.root, watch)
        return DumpResult(self.root, watch, self.rounds, self.blocking_rounds, reports)

    def _process_report(self, w: _ProcessWatch) -> ProcessReport:
        span = (w.last_ok - w.first_ok) if w.first_ok is not None else 0.0
        seen = w.seen_last - w.seen_first
        cpu_percent = None
        if w.cpu_first is not None and w.cpu_last is not None and seen > 0:
            cpu_percent = 100.0 * (w.cpu_last - w.cpu_first) / seen
        report = ProcessReport(w.pid, w.ppid, w.cmdline, w.status, w.exit_code, w.signal, cpu_percent, span,
                               note=w.note)
        if w.first_ok is None and w.failure:
            report.error_kind, report.error = w.failure
        if w.status != "running" and w.threads:
            report.note = "stacks as last seen, before it exited"
        for tid, tw in w.threads.items():
            report.threads.append(judge_thread(self._thread_facts(w, tid, tw), span, w.status == "running"))
        report.threads.sort(key=lambda r: (r.tid != w.pid, r.tid))
        return report

    def _process_facts(self, w: _ProcessWatch) -> ProcessFacts:
        whole_watch = w.seen_first <= self.t_first and w.seen_last >= self.t_last
        return ProcessFacts(whole_watch, (w.cpu_last or 0.0) - (w.cpu_first or 0.0))

    def _thread_facts(self, w: _ProcessWatch, tid: int, tw: _ThreadWatch) -> ThreadFacts:
        last = tw.last
        frames = [_frame_report(f) for f in last.get("frames", [])]
        top = next((f for f in frames if not f.native), None)
        cpu = None
        if tw.cpu_first is not None and tw.cpu_last is not None:
            cpu = max(0.0, tw.cpu_last - tw.cpu_first)
        return ThreadFacts(
            tid=tid,
            name=last.get("thread_name") or "",
            frames=frames,
            source_line=source_line(w.pid, top.file, top.line) if top else None,
            active=bool(last.get("active")),
            owns_gil=bool(last.get("owns_gil")),
            dumps=tw.dumps,
            active_dumps=tw.active_dumps,
            cpu_s=cpu,
            # `since` is the first dump that saw this stack: unchanged == span exactly when it was there from the start.
            unchanged_s=w.last_ok - tw.since,
            python_thread_id=last.get("thread_id"),
        )


def _cpu(proc: psutil.Process) -> float | None:
    try:
        times = proc.cpu_times()
        return times.user + times.system
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _exit_words(w: _ProcessWatch) -> str:
    return exit_words(w.exit_code, w.signal)


def _frame_report(f: dict) -> FrameReport:
    locals_ = f.get("locals")
    if locals_ is not None:
        locals_ = [{"name": v.get("name"), "repr": v.get("repr"), "arg": bool(v.get("arg"))} for v in locals_]
    return FrameReport(
        function=f.get("name") or "?",
        file=f.get("filename") or "",
        line=int(f.get("line") or 0),
        short_file=f.get("short_filename") or os.path.basename(f.get("filename") or ""),
        native=bool(f.get("module")),
        locals=locals_,
    )
