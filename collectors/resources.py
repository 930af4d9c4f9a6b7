"""The resource sampler: CPU, memory, IO and threads of every process in the tree, via psutil.

Per thread it also reads /proc/PID/task/TID/schedstat: the nanoseconds the
thread ran plus those it waited for a CPU. That counter is what tells an
active sample from an idle one (py-spy's own flag does not reach its record
files), exactly and for every thread at once (collectors.procfs reads it).

Must never judge what it reads (the model does), nor import textual or rich.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psutil

from gradetop.collectors.background import Background
from gradetop.collectors.procfs import schedstat_ns
from gradetop.model.records import ProcessEnded, ProcessReading, ResourceBatch


RANK_VARIABLES = (("RANK", "SLURM_PROCID"), ("LOCAL_RANK", "SLURM_LOCALID"), ("WORLD_SIZE", "SLURM_NTASKS"))
"""Where torchrun, torch.distributed launchers and Slurm put a process's place in a job; first set wins."""


def ranks_of(environ: dict[str, str]) -> tuple[int | None, int | None, int | None]:
    """(rank, local rank, world size) from a process's environment; None where unset or not a number."""
    found = []
    for names in RANK_VARIABLES:
        value = None
        for name in names:
            try:
                value = int(environ[name])
                break
            except (KeyError, ValueError):
                continue
        found.append(value)
    return tuple(found)


def read_ranks(proc: psutil.Process) -> tuple[int | None, int | None, int | None]:
    try:
        return ranks_of(proc.environ())
    except (psutil.Error, OSError):
        return (None, None, None)


def read_process(proc: psutil.Process, cmdlines: dict[int, list[str]],
                 ranks: dict[int, tuple] | None = None) -> ProcessReading | None:
    """One reading of one process, or None if it vanished or cannot be read.

    Its command line and ranks are read once (`cmdlines`, `ranks` cache them): a process's
    environment does not change what launched it, and reading /proc/PID/environ 10 times a
    second for every process would be waste."""
    try:
        with proc.oneshot():
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
            cmdline = cmdlines.get(proc.pid)
            if cmdline is None:
                try:
                    cmdline = cmdlines[proc.pid] = proc.cmdline()
                except psutil.AccessDenied:
                    cmdline = cmdlines[proc.pid] = []
            rank = (None, None, None)
            if ranks is not None:
                rank = ranks.get(proc.pid)
                if rank is None:
                    rank = ranks[proc.pid] = read_ranks(proc)
            return ProcessReading(
                pid=proc.pid,
                ppid=proc.ppid(),
                name=proc.name(),
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


class ResourceSampler(Background):
    """Reads the process tree under `root_pid` every 1/rate_hz seconds, in its own thread."""

    def __init__(self, root_pid: int, emit: Callable[[object], None], rate_hz: float = 10.0) -> None:
        super().__init__(f"gradetop-resources-{root_pid}")
        self.root_pid = root_pid
        self.emit = emit
        self.interval = 1.0 / rate_hz
        self._procs: dict[int, psutil.Process] = {}
        self._cmdlines: dict[int, list[str]] = {}
        self._ranks: dict[int, tuple] = {}
        self.root_gone = threading.Event()

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
                tree += root.children(recursive=True)
            else:
                tree = []
        except psutil.Error:
            tree = []
        if not tree:
            self.root_gone.set()
        for proc in tree:
            # Reuse Process objects: psutil keeps CPU-percent state and pid-reuse checks on them.
            self._procs.setdefault(proc.pid, proc)
        readings = []
        for pid in list(self._procs):
            proc = self._procs[pid]
            reading = read_process(proc, self._cmdlines, self._ranks) if proc in tree or pid == root.pid else None
            if reading is None or reading.status == psutil.STATUS_ZOMBIE:
                del self._procs[pid]
                self._cmdlines.pop(pid, None)
                self._ranks.pop(pid, None)
                self.emit(ProcessEnded(pid, now, None))
                continue
            readings.append(reading)
        self.emit(ResourceBatch(now, readings))
