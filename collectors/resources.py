"""The resource sampler: CPU, memory, IO and threads of every process in the tree, from /proc.

Per thread it also reads /proc/PID/task/TID/schedstat: the nanoseconds the
thread ran plus those it waited for a CPU. That counter is what tells an
active sample from an idle one (py-spy's own flag does not reach its record
files), exactly and for every thread at once (collectors.procfs reads it).

Must never judge what it reads (the model does), nor import textual or rich.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import threading
import time
from collections.abc import Callable

import psutil

from gradetop.collectors.background import Background
from gradetop.collectors.processes import without_gradetop_pids
from gradetop.collectors.exits import EXITS
from gradetop.collectors.open_files import OpenFiles
from gradetop.collectors.procfs import descendants, host_busy_s, io_bytes, process_stat, task_ids, thread_times
from gradetop.model.records import ProcessEnded, ProcessReading, ResourceBatch
from gradetop.model.roles_env import ranks_of


def read_ranks(pid: int) -> tuple[int | None, int | None, int | None]:
    try:
        return ranks_of(psutil.Process(pid).environ())
    except (psutil.Error, OSError):
        return (None, None, None)


def read_cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except (psutil.Error, OSError):
        return []


STILL_READ_EVERY_S = 1.0
"""A process whose CPU ticks did not move since its last full reading has its threads and IO read again
only this often: a waiting pool worker's three threads were six file reads ten times a second for
nothing. (A thread can run a few ms without a tick: the next full reading has it.)"""


def read_process(pid: int, cmdlines: dict[int, tuple[str, list[str]]],
                 ranks: dict[int, tuple[str, tuple]] | None = None,
                 last: tuple[float, ProcessReading] | None = None, files: OpenFiles | None = None,
                 tasks: dict[int, list[int]] | None = None) -> tuple[float, ProcessReading] | None:
    """(when its threads were read, one reading of one process), or None if it vanished or cannot be read;
    `last` is what the previous call returned. `files` keeps the files it reads open for the next call, and
    `tasks` each process's threads as last listed (listed again where their number changed, or one ended).

    Straight from /proc (collectors.procfs): one stat file for the process, one stat and one
    schedstat per thread, its io. psutil read the stat file once per figure, and the tree's
    readings were most of gradetop's own CPU at 16 processes (26 of 50 ticks).
    Its command line and ranks are read once per program it runs (`cmdlines`, `ranks` cache
    them with its name): reading /proc/PID/environ 10 times a second for every process would
    be waste, but an exec (`sh -c 'RANK=1 exec python train.py'`, a launcher) changes both."""
    stat = process_stat(pid, files)
    if stat is None:
        return None
    if tasks is not None and len(tasks.get(pid, ())) != stat.num_threads:
        tasks[pid] = task_ids(pid)
    if last is not None and last[1].cpu_s == stat.cpu_s and time.time() - last[0] < STILL_READ_EVERY_S:
        full_at, still = last
        threads, io = still.thread_times, (still.read_bytes, still.write_bytes)
    else:
        tids = None if tasks is None else tasks[pid]
        threads, io, full_at = thread_times(pid, files, tids) or {}, io_bytes(pid, files), time.time()
        if tasks is not None and len(threads) < len(tids):  # one ended, and another may have begun in its place
            tids = tasks[pid] = task_ids(pid)
            threads.update(thread_times(pid, files, [tid for tid in tids if tid not in threads]) or {})
    known = cmdlines.get(pid)
    if known is None or known[0] != stat.comm or not known[1]:  # empty: read mid-exec, or denied
        known = cmdlines[pid] = (stat.comm, read_cmdline(pid))
    cmdline = known[1]
    rank = (None, None, None)
    if ranks is not None:
        known_rank = ranks.get(pid)
        if known_rank is None or known_rank[0] != stat.comm:
            known_rank = ranks[pid] = (stat.comm, read_ranks(pid))
        rank = known_rank[1]
    return full_at, ProcessReading(
        pid=pid,
        ppid=stat.ppid,
        name=full_name(stat.comm, cmdline),
        cmdline=cmdline,
        create_time=stat.create_time,
        status=stat.status,
        cpu_s=stat.cpu_s,
        rss=stat.rss,
        read_bytes=io[0] if io else -1,
        write_bytes=io[1] if io else -1,
        num_threads=len(threads) or stat.num_threads,
        thread_times=threads,
        ranks=rank,
    )


def full_name(comm: str, cmdline: list[str]) -> str:
    """The kernel keeps 15 characters of a name: where it was cut, the program's own, as psutil does."""
    if len(comm) >= 15 and cmdline:
        program = os.path.basename(cmdline[0])
        if program.startswith(comm):
            return program
    return comm


class MonitorCpu:
    """CPU seconds of gradetop and its helpers (py-spy windows, dumps), cumulative: what monitoring costs.

    Its own threads, the helpers it has reaped (the kernel's RUSAGE_CHILDREN: each window's CPU whole,
    attach included, once it ends) and the py-spy helpers running now. Reading only the running ones
    (as before) missed most of it: a window lives 0.5 s and was seen at most once, part way, so a
    DataLoader job's verdicts said 'gradetop and its samplers 0.0' and blamed 'other programs'.
    A workflow gradetop started is its child too, and lands in RUSAGE_CHILDREN once reaped: the
    resource sampler reads this before the workflow's own reading, which fails once it is reaped, so
    no reading carries it. Read once a second: it says who else held the cores, not what the job did.
    """

    EVERY_S = 1.0

    def __init__(self) -> None:
        self.me = psutil.Process()
        self._helpers: dict[int, psutil.Process] = {}
        self._last: float | None = None

    def read(self, workflow: set[int]) -> float:
        """The total now, or -1.0 (not read) within EVERY_S of the last read. Not the last value again:
        a series of repeated values is a staircase, and a 50 ms phase on a step got a whole second's
        CPU (a DataLoader job's verdict said gradetop used 3.8 cores)."""
        now = time.monotonic()
        if self._last is not None and now - self._last < self.EVERY_S:
            return -1.0
        self._last = now
        return self._read(workflow)

    def _read(self, workflow: set[int]) -> float:
        try:
            own = sum(self.me.cpu_times()[:2])
            for child in _children(self.me):
                if child.pid not in workflow and child.pid not in self._helpers:
                    try:
                        if "py-spy" in child.name():
                            self._helpers[child.pid] = child
                    except psutil.Error:
                        pass
        except psutil.Error:
            return -1.0
        # Reaped ones first: a helper reaped after its reading would otherwise be counted twice.
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        running = 0.0
        for pid, proc in list(self._helpers.items()):
            try:
                running += sum(proc.cpu_times()[:2])
            except psutil.Error:
                del self._helpers[pid]  # ended: RUSAGE_CHILDREN has it, or will once reaped
        return own + reaped.ru_utime + reaped.ru_stime + running


def _descendants(pid: int, files: OpenFiles | None = None, tasks: dict[int, list[int]] | None = None) -> list[int]:
    """The processes below `pid`, from the kernel's lists where it keeps them (procfs.descendants): of each
    process's threads as `tasks` last listed them (a thread born since forks a child seen a reading later)."""
    def listed(p: int) -> list[int]:
        tids = tasks.get(p)
        if tids is None:
            tids = tasks[p] = task_ids(p)
        return tids

    pids = descendants(pid, files, task_ids if tasks is None else listed)
    if pids is None:
        try:
            return [p.pid for p in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return []
    return pids


def _children(proc: psutil.Process) -> list[psutil.Process]:
    """The processes below `proc`, from the kernel's lists where it keeps them (procfs.descendants)."""
    pids = descendants(proc.pid)
    if pids is None:
        return proc.children(recursive=True)
    found = []
    for pid in pids:
        try:
            found.append(psutil.Process(pid))
        except psutil.Error:
            pass
    return found


class ResourceSampler(Background):
    """Reads the process tree under `root_pid` every 1/rate_hz seconds, in its own thread."""

    def __init__(self, root_pid: int, emit: Callable[[object], None], rate_hz: float = 10.0) -> None:
        super().__init__(f"gradetop-resources-{root_pid}")
        self.root_pid = root_pid
        self.emit = emit
        self.interval = 1.0 / rate_hz
        self._born: dict[int, float] = {}
        """Create time of each process of the tree read so far: another there is a reused pid."""
        self._last: dict[int, tuple[float, ProcessReading]] = {}
        """Each process's last reading, and when its threads were read (STILL_READ_EVERY_S)."""
        self._cmdlines: dict[int, tuple[str, list[str]]] = {}
        self._files = OpenFiles()
        self._tasks: dict[int, list[int]] = {}
        """Each process's threads, as last listed."""
        self._monitor: MonitorCpu | None = None
        self._ranks: dict[int, tuple[str, tuple]] = {}
        self._cores = psutil.cpu_count() or 1
        self.root_gone = threading.Event()

    def pids(self) -> list[int]:
        """The processes of the tree as last read (any thread may ask: a copy of the keys)."""
        return list(self._born)

    def run(self) -> None:
        if process_stat(self.root_pid) is None:
            self.root_gone.set()
            return
        next_at = time.monotonic()
        while not self._stopping.is_set():
            self.sample_once()
            if self.root_gone.is_set() and len(self._born) == 0:
                return
            next_at += self.interval
            # Late (a slow /proc under load): skip ahead rather than burst.
            next_at = max(next_at, time.monotonic())
            self._stopping.wait(next_at - time.monotonic())
        # One last reading so the final counters reach the model.
        self.sample_once()
        self._files.close()

    def sample_once(self) -> None:
        now = time.time()
        root = self.root_pid
        tree = {pid: None for pid in [root, *without_gradetop_pids(_descendants(root, self._files, self._tasks))]}
        self._files.keep_only(tree)
        for pid in [p for p in self._tasks if p not in tree]:
            del self._tasks[pid]
        readings = []
        host = self._host_figures(set(self._born))
        for pid in [*tree, *(p for p in self._born if p not in tree)]:  # the tree, then those gone from it
            read = (read_process(pid, self._cmdlines, self._ranks, self._last.get(pid), self._files, self._tasks)
                    if pid in tree else None)
            reading = read[1] if read else None
            born = self._born.get(pid)
            if reading is not None and born is not None and abs(reading.create_time - born) > 0.01:
                reading = None  # a new process got the pid: the old one ended, the new one is read next time
            if reading is None or reading.status == "zombie":
                if born is not None or (pid == root and not self.root_gone.is_set()):
                    self._born.pop(pid, None)
                    self._last.pop(pid, None)
                    self._cmdlines.pop(pid, None)
                    self._ranks.pop(pid, None)
                    self._tasks.pop(pid, None)
                    self._files.forget(pid)
                    # The kernel's word (collectors.exits); now, a reading late at most, where it had none.
                    self.emit(ProcessEnded(pid, EXITS.exited_at(pid) or now, None))
                if pid == root:
                    self.root_gone.set()
                continue
            if born is None:
                EXITS.watch(pid)  # when it ends, to the millisecond, sampled or not
            self._born[pid] = reading.create_time
            self._last[pid] = read
            if pid == root:
                reading = dataclasses.replace(reading, **host)
            readings.append(reading)
        self.emit(ResourceBatch(now, readings))

    def _host_figures(self, workflow: set[int]) -> dict:
        """The machine's busy CPU and gradetop's own (who else held the cores), for the root's reading.
        Read before the root is: once a workflow gradetop started is reaped, its CPU is gradetop's
        RUSAGE_CHILDREN (MonitorCpu), and the root can no longer be read to carry it."""
        busy = host_busy_s(self._files)
        if busy is None:
            return {}
        try:
            if self._monitor is None:
                self._monitor = MonitorCpu()
            return {"host_busy_s": busy, "host_cores": self._cores, "monitor_cpu_s": self._monitor.read(workflow)}
        except (psutil.Error, OSError):
            return {}
