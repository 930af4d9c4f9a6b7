"""The resource sampler: CPU, memory, IO and threads of every process in the tree, via psutil.

Per thread it also reads /proc/PID/task/TID/schedstat: the nanoseconds the
thread ran plus those it waited for a CPU. That counter is what tells an
active sample from an idle one (py-spy's own flag does not reach its record
files), exactly and for every thread at once (collectors.procfs reads it).

Must never judge what it reads (the model does), nor import textual or rich.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import psutil

from gradetop.collectors.background import Background
from gradetop.collectors.processes import without_gradetop
from gradetop.collectors.procfs import descendants, schedstat_ns
from gradetop.model.records import ProcessEnded, ProcessReading, ResourceBatch
from gradetop.model.roles_env import ranks_of


def read_ranks(proc: psutil.Process) -> tuple[int | None, int | None, int | None]:
    try:
        return ranks_of(proc.environ())
    except (psutil.Error, OSError):
        return (None, None, None)


def read_process(proc: psutil.Process, cmdlines: dict[int, tuple[str, list[str]]],
                 ranks: dict[int, tuple[str, tuple]] | None = None) -> ProcessReading | None:
    """One reading of one process, or None if it vanished or cannot be read.

    Its command line and ranks are read once per program it runs (`cmdlines`, `ranks` cache
    them with its name): reading /proc/PID/environ 10 times a second for every process would
    be waste, but an exec (`sh -c 'RANK=1 exec python train.py'`, a launcher) changes both."""
    try:
        with proc.oneshot():
            name = proc.name()
            cpu = proc.cpu_times()
            mem = proc.memory_info()
            try:
                io = proc.io_counters()
                read_bytes, write_bytes = io.read_bytes, io.write_bytes
            except (psutil.AccessDenied, AttributeError):
                read_bytes = write_bytes = -1
            threads = {}
            for t in proc.threads():
                cpu_s = t.user_time + t.system_time
                ns = schedstat_ns(proc.pid, t.id)
                # Running or runnable: what py-spy would call active.
                threads[t.id] = (cpu_s, cpu_s if ns is None else (ns[0] + ns[1]) / 1e9)
            known = cmdlines.get(proc.pid)
            if known is None or known[0] != name or not known[1]:  # empty: read mid-exec, or denied
                try:
                    known = cmdlines[proc.pid] = (name, proc.cmdline())
                except psutil.AccessDenied:
                    known = cmdlines[proc.pid] = (name, [])
            cmdline = known[1]
            rank = (None, None, None)
            if ranks is not None:
                known_rank = ranks.get(proc.pid)
                if known_rank is None or known_rank[0] != name:
                    known_rank = ranks[proc.pid] = (name, read_ranks(proc))
                rank = known_rank[1]
            return ProcessReading(
                pid=proc.pid,
                ppid=proc.ppid(),
                name=name,
                cmdline=cmdline,
                create_time=proc.create_time(),
                status=proc.status(),
                cpu_s=cpu.user + cpu.system,
                rss=mem.rss,
                read_bytes=read_bytes,
                write_bytes=write_bytes,
                num_threads=len(threads) or proc.num_threads(),
                thread_times=threads,
                ranks=rank,
            )
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return None


class MonitorCpu:
    """CPU seconds of gradetop and its py-spy samplers, cumulative: what the monitoring itself costs.

    A sampler that ended keeps the CPU it was last seen with, so the sum never goes back.
    Read once a second: it says who else held the cores, not what the job did.
    """

    EVERY_S = 1.0

    def __init__(self) -> None:
        self.me = psutil.Process()
        self._samplers: dict[int, tuple[psutil.Process, float]] = {}
        self._gone_s = 0.0
        self._last: tuple[float, float] | None = None

    def read(self, workflow: set[int]) -> float:
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < self.EVERY_S:
            return self._last[1]
        total = self._read(workflow)
        self._last = (now, total)
        return total

    def _read(self, workflow: set[int]) -> float:
        try:
            times = self.me.cpu_times()
            total = times.user + times.system
            for child in _children(self.me):
                if child.pid not in workflow and child.pid not in self._samplers:
                    try:
                        if "py-spy" in child.name():
                            self._samplers[child.pid] = (child, 0.0)
                    except psutil.Error:
                        pass
        except psutil.Error:
            return -1.0
        for pid, (proc, last) in list(self._samplers.items()):
            try:
                cpu = proc.cpu_times()
                self._samplers[pid] = (proc, cpu.user + cpu.system)
            except psutil.Error:
                self._gone_s += last
                del self._samplers[pid]
        return total + self._gone_s + sum(last for _, last in self._samplers.values())


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


def host_busy_s() -> float:
    """CPU seconds the whole machine was busy (not idle, not waiting for IO), cumulative."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


class ResourceSampler(Background):
    """Reads the process tree under `root_pid` every 1/rate_hz seconds, in its own thread."""

    def __init__(self, root_pid: int, emit: Callable[[object], None], rate_hz: float = 10.0) -> None:
        super().__init__(f"gradetop-resources-{root_pid}")
        self.root_pid = root_pid
        self.emit = emit
        self.interval = 1.0 / rate_hz
        self._procs: dict[int, psutil.Process] = {}
        self._cmdlines: dict[int, tuple[str, list[str]]] = {}
        self._monitor: MonitorCpu | None = None
        self._ranks: dict[int, tuple[str, tuple]] = {}
        self._cores = psutil.cpu_count() or 1
        self.root_gone = threading.Event()

    def pids(self) -> list[int]:
        """The processes of the tree as last read (any thread may ask: a copy of the keys)."""
        return list(self._procs)

    def run(self) -> None:
        try:
            root = psutil.Process(self.root_pid)
        except psutil.Error:
            self.root_gone.set()
            return
        self._procs[root.pid] = root
        next_at = time.monotonic()
        while not self._stopping.is_set():
            self.sample_once(root)
            if self.root_gone.is_set() and len(self._procs) == 0:
                return
            next_at += self.interval
            # Late (a slow /proc under load): skip ahead rather than burst.
            next_at = max(next_at, time.monotonic())
            self._stopping.wait(next_at - time.monotonic())
        # One last reading so the final counters reach the model.
        self.sample_once(root)

    def sample_once(self, root: psutil.Process) -> None:
        now = time.time()
        tree = [root]
        try:
            if root.is_running() and root.status() != psutil.STATUS_ZOMBIE:
                tree += without_gradetop(_children(root))
            else:
                tree = []
        except psutil.Error:
            tree = []
        if not tree:
            self.root_gone.set()
        in_tree = set()
        for proc in tree:
            # Reuse Process objects: psutil keeps CPU-percent state and pid-reuse checks on them. A
            # known one that is not equal to the one found (pid and start time) is a reused pid.
            if self._procs.setdefault(proc.pid, proc) == proc:
                in_tree.add(proc.pid)
        readings = []
        for pid in list(self._procs):
            proc = self._procs[pid]
            reading = read_process(proc, self._cmdlines, self._ranks) if pid in in_tree or pid == root.pid else None
            if reading is None or reading.status == psutil.STATUS_ZOMBIE:
                del self._procs[pid]
                self._cmdlines.pop(pid, None)
                self._ranks.pop(pid, None)
                self.emit(ProcessEnded(pid, now, None))
                continue
            if pid == root.pid:
                reading = self._with_host(reading, {p.pid for p in tree})
            readings.append(reading)
        self.emit(ResourceBatch(now, readings))

    def _with_host(self, reading: ProcessReading, workflow: set[int]) -> ProcessReading:
        """The root's reading, with the machine's busy CPU and gradetop's own (who else held the cores)."""
        try:
            if self._monitor is None:
                self._monitor = MonitorCpu()
            return dataclasses.replace(reading, host_busy_s=host_busy_s(), host_cores=self._cores,
                                       monitor_cpu_s=self._monitor.read(workflow))
        except (psutil.Error, OSError):
            return reading
