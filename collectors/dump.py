"""`py-spy dump` of a process tree, repeated over a watch: which threads are stuck, which processes are in trouble.

Each round dumps the root and each live child by PID (py-spy's -s ignores
children in dump: PYSPY.md), all at once. Per thread the collector keeps
when its current stack was first seen, whether py-spy ever saw it active and
how much CPU the kernel gave it; `model.waits` judges those facts. Per
process it keeps psutil's view: CPU time, zombies (with the exit status the
kernel still holds for them), children that vanished.

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

Never imports textual or rich.
"""

from __future__ import annotations

import json
import linecache
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from gradetop.collectors.pyspy import PySpyMissing, explain_failure, find_pyspy
from gradetop.model.waits import Frame, judge

MIN_INTERVAL_S = 0.25
COST_FACTOR = 10.0
"""Rounds are at least this many times their own wall cost apart: py-spy stays under ~10% of one core."""
RETRY_DELAYS_S = (0.05, 0.1, 0.2, 0.4)
"""A young interpreter is not readable at once (PYSPY.md): retry before saying 'not Python'."""
GIVE_UP_AFTER = len(RETRY_DELAYS_S) + 1
DUMP_TIMEOUT_S = 15.0
IDLE_CPU_FRACTION = 0.01
"""A thread (or process) that got less CPU than this share of the watch did not run."""
IDLE_CPU_FLOOR_S = 0.002
PARENT_WAITS = frozenset({"process join/wait", "pool result wait"})
"""A parent stuck in one of these is waiting on its children."""


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


@dataclass
class FrameReport:
    function: str
    file: str
    line: int
    short_file: str = ""
    native: bool = False
    locals: list[dict] | None = None
    """[{name, repr, arg}] with --locals; arguments first, as py-spy gives them."""

    def to_json(self) -> dict:
        out = {"function": self.function, "file": self.file, "line": self.line, "native": self.native}
        if self.locals is not None:
            out["locals"] = self.locals
        return out


@dataclass
class ThreadReport:
    tid: int
    name: str
    state: str
    """'running' (active), 'holding GIL' (idle but holding it: every other thread waits), or 'idle'."""
    active: bool
    owns_gil: bool
    unchanged_s: float
    stuck: bool
    wait_reason: str | None
    wait_frame: Frame | None
    frames: list[FrameReport]
    """Leaf first, as py-spy prints them."""
    ran: bool
    """It ran during the watch: py-spy saw it active in half the dumps or more, or it had more than 1% of a CPU."""
    cpu_s: float | None
    python_thread_id: int | None = None

    def to_json(self) -> dict:
        return {
            "tid": self.tid,
            "name": self.name,
            "state": self.state,
            "stuck": self.stuck,
            "unchanged_s": round(self.unchanged_s, 3),
            "wait_reason": self.wait_reason,
            "wait_frame": _frame_json(self.wait_frame),
            "active": self.active,
            "owns_gil": self.owns_gil,
            "cpu_s": None if self.cpu_s is None else round(self.cpu_s, 4),
            "python_thread_id": self.python_thread_id,
            "frames": [f.to_json() for f in self.frames],
        }


@dataclass
class ProcessReport:
    pid: int
    ppid: int | None
    cmdline: str
    status: str
    """'running', 'zombie' (exited, not reaped) or 'exited' (gone during the watch)."""
    exit_code: int | None = None
    signal: int | None = None
    cpu_percent: float | None = None
    watched_s: float = 0.0
    """Time between this process's first and last successful dump."""
    error: str | None = None
    error_kind: str | None = None
    note: str | None = None
    trouble: list[str] = field(default_factory=list)
    threads: list[ThreadReport] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "pid": self.pid,
            "ppid": self.ppid,
            "cmdline": self.cmdline,
            "status": self.status,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "cpu_percent": None if self.cpu_percent is None else round(self.cpu_percent, 1),
            "watched_s": round(self.watched_s, 3),
            "error": self.error,
            "note": self.note,
            "trouble": list(self.trouble),
            "threads": [t.to_json() for t in self.threads],
        }


@dataclass
class DumpResult:
    pid: int
    watch_s: float
    """Seconds between the first and the last round."""
    dumps: int
    """Rounds made (each dumps every live process once)."""
    blocking_rounds: int
    processes: list[ProcessReport]

    def stuck(self) -> list[tuple[ProcessReport, ThreadReport]]:
        return [(p, t) for p in self.processes for t in p.threads if t.stuck]

    def trouble(self) -> list[tuple[ProcessReport, str]]:
        return [(p, line) for p in self.processes for line in p.trouble]

    def to_json(self) -> dict:
        return {
            "pid": self.pid,
            "watch_s": round(self.watch_s, 3),
            "dumps": self.dumps,
            "blocking_dumps": self.blocking_rounds,
            "stuck": [{"pid": p.pid, "tid": t.tid} for p, t in self.stuck()],
            "processes": [p.to_json() for p in self.processes],
        }


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
            cpu = _thread_cpu(w.pid, tid)
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
                children = root.proc.children(recursive=True)
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
                    w.exit_code, w.signal = _zombie_exit(w.pid)
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

    # -- the verdicts ----------------------------------------------------------

    def _result(self) -> DumpResult:
        reports = []
        for w in self.processes.values():
            reports.append(self._process_report(w))
        by_pid = {r.pid: r for r in reports}
        watch = (self.t_last - self.t_first) if self.t_first is not None else 0.0
        for r in reports:
            self._trouble(r, by_pid, watch)
        # The root first, then children in the order they were found.
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
            report.threads.append(self._thread_report(w, tid, tw, span))
        report.threads.sort(key=lambda r: (r.tid != w.pid, r.tid))
        return report

    def _thread_report(self, w: _ProcessWatch, tid: int, tw: _ThreadWatch, span: float) -> ThreadReport:
        last = tw.last
        frames = [_frame_report(f) for f in last.get("frames", [])]
        root_first = [(f.function, f.file, f.line) for f in reversed(frames)]
        top = next((f for f in frames if not f.native), None)
        source = _source_line(w.pid, top.file, top.line) if top else None
        cpu = None
        if tw.cpu_first is not None and tw.cpu_last is not None:
            cpu = max(0.0, tw.cpu_last - tw.cpu_first)
        # `since` is the first dump that saw this stack: unchanged == span exactly when it was there from the start.
        unchanged = w.last_ok - tw.since
        ran = tw.active_dumps * 2 >= max(tw.dumps, 1) and tw.active_dumps > 0
        if cpu is not None and span > 0:
            ran = ran or cpu > max(IDLE_CPU_FLOOR_S, IDLE_CPU_FRACTION * span)
        # An exited process's last stacks are shown, never judged: nothing there waits any more.
        watch = span if w.status == "running" else 0.0
        verdict = judge(root_first, source, ran, unchanged, watch)
        active, owns_gil = bool(last.get("active")), bool(last.get("owns_gil"))
        state = "running" if active else ("holding GIL" if owns_gil else "idle")
        return ThreadReport(
            tid=tid,
            name=last.get("thread_name") or "",
            state=state,
            active=active,
            owns_gil=owns_gil,
            unchanged_s=unchanged,
            stuck=verdict.stuck,
            wait_reason=verdict.wait_reason,
            wait_frame=verdict.wait_frame,
            frames=frames,
            ran=ran,
            cpu_s=cpu,
            python_thread_id=last.get("thread_id"),
        )

    def _trouble(self, r: ProcessReport, by_pid: dict[int, ProcessReport], watch: float) -> None:
        w = self.processes[r.pid]
        parent = by_pid.get(r.ppid) if r.ppid is not None else None
        if r.status == "zombie":
            r.trouble.append(f"{_exit_words(w)}; zombie: its parent {r.ppid} has not reaped it")
        elif r.status == "exited":
            if w.exit_code is not None or w.signal is not None:
                r.trouble.append(f"{_exit_words(w)} during the watch")
            else:
                r.trouble.append("exited during the watch (exit status unknown: its parent reaped it)")
        elif r.pid != self.root and parent is not None and r.cpu_percent is not None and watch > 0:
            idle = w.seen_first <= self.t_first and w.seen_last >= self.t_last
            used = (w.cpu_last or 0.0) - (w.cpu_first or 0.0)
            waiting = [t for t in parent.threads if t.stuck and t.wait_reason in PARENT_WAITS]
            if idle and used <= max(IDLE_CPU_FLOOR_S, IDLE_CPU_FRACTION * watch) and waiting:
                t = waiting[0]
                where = f" at {_short(t.wait_frame)}" if t.wait_frame else ""
                r.trouble.append(f"0% CPU for the whole watch ({watch:.1f} s) while its parent {parent.pid} "
                                 f"waits on it ({t.wait_reason}{where})")


def _cpu(proc: psutil.Process) -> float | None:
    try:
        times = proc.cpu_times()
        return times.user + times.system
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _thread_cpu(pid: int, tid: int) -> float | None:
    """Seconds the thread ran on a CPU (schedstat's first field), else user+system ticks; None if unreadable.

    Not resources.read_schedstat, which adds the time spent waiting for a CPU:
    a blocking (--native) dump stops every thread, and on a loaded machine a
    deadlocked thread then waits tens of milliseconds in the run queue
    before it goes back to sleep, which would count as running.
    """
    try:
        with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
        fields = raw[raw.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _zombie_exit(pid: int) -> tuple[int | None, int | None]:
    """(exit code, signal) the kernel keeps for a zombie: field 52 of /proc/PID/stat, in waitpid form."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
        status = int(raw[raw.rindex(")") + 2 :].split()[-1])
    except (OSError, ValueError, IndexError):
        return None, None
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status), None
    return None, None


def _exit_words(w) -> str:
    if w.signal is not None:
        try:
            name = signal.Signals(w.signal).name
        except ValueError:
            name = f"signal {w.signal}"
        return f"killed by {name}"
    if w.exit_code is not None:
        return f"exited with status {w.exit_code}"
    return "exit status unknown"


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


def _source_line(pid: int, file: str, line: int) -> str | None:
    """The text of `file:line` as the target sees it (its own root and cwd: containers), else as we do."""
    if not file or line <= 0:
        return None
    candidates = []
    if os.path.isabs(file):
        candidates.append(f"/proc/{pid}/root{file}")
    else:
        candidates.append(f"/proc/{pid}/cwd/{file}")
    candidates.append(file)
    for path in candidates:
        text = linecache.getline(path, line)
        if text:
            return text.rstrip("\n")
    return None


def _short(frame: Frame | None) -> str:
    if frame is None:
        return "?"
    return f"{os.path.basename(frame[1])}:{frame[2]}"


def _frame_json(frame: Frame | None) -> dict | None:
    if frame is None:
        return None
    return {"function": frame[0], "file": frame[1], "line": frame[2]}
