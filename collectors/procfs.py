"""Readers of /proc: per-thread scheduler times, a zombie's exit status, a source line as the target sees it.

Every function reads one small file (or a few), returns None (or Nones)
where the kernel would not say (no such process, no schedstat, permission),
and never raises for that. Those a sampler calls ten times a second take
its OpenFiles (collectors.open_files), which reads files kept open. Source
files are read through the target's own root (`/proc/PID/root/...`,
`/proc/PID/cwd/...` for relative paths) and then as the path is, so a
process in a container is judged on its own files wherever gradetop runs.

Must never keep state, start processes, nor import psutil, textual or rich.
"""

from __future__ import annotations

import linecache
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from gradetop.collectors.open_files import OpenFiles

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
STATES = {"R": "running", "S": "sleeping", "D": "disk-sleep", "T": "stopped", "t": "tracing-stop", "Z": "zombie",
          "X": "dead", "x": "dead", "K": "wake-kill", "W": "waking", "I": "idle", "P": "parked"}
"""stat's state letters, as psutil names them."""
BOOT_TIME = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
"""When the machine booted, to a millisecond: a process's start (clock ticks after boot) plus this is
its create time. psutil adds /proc/stat's btime, whole seconds: its create times are up to a second
early, and a worker that lived 0.2 s read as 0.7 s."""
HAS_CHILDREN_LISTS = os.path.exists(f"/proc/self/task/{os.getpid()}/children")
"""Whether this kernel lists each thread's children (CONFIG_PROC_CHILDREN)."""


def read_file(path: str, files: OpenFiles | None = None) -> bytes | None:
    """A /proc file's contents, through `files` where given; None where it cannot be read."""
    if files is not None:
        return files.read(path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class ProcessStat:
    """What one read of /proc/PID/stat says of a process."""

    comm: str
    """The kernel's name for it: at most 15 characters."""
    status: str
    ppid: int
    cpu_s: float
    """User + system seconds of all its threads (clock ticks)."""
    num_threads: int
    start_ticks: int
    """Clock ticks after boot when it started (`create_time` says when that was)."""
    rss: int

    @property
    def create_time(self) -> float:
        """When it started, epoch seconds (to a clock tick)."""
        return BOOT_TIME + self.start_ticks / CLOCK_TICKS


def process_stat(pid: int, files: OpenFiles | None = None) -> ProcessStat | None:
    """One read of the process's stat file (psutil reads it for each of name, status, ppid, times...)."""
    data = read_file(f"/proc/{pid}/stat", files)
    if not data:
        return None
    try:
        raw = data.decode(errors="replace")
        close = raw.rindex(")")
        fields = raw[close + 2 :].split()
        return ProcessStat(raw[raw.index("(") + 1 : close], STATES.get(fields[0], fields[0]), int(fields[1]),
                           (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(fields[17]), int(fields[19]),
                           int(fields[21]) * PAGE_SIZE)
    except (ValueError, IndexError):
        return None


def io_bytes(pid: int, files: OpenFiles | None = None) -> tuple[int, int] | None:
    """(bytes read, bytes written) from storage, as /proc/PID/io counts them; None where not allowed."""
    data = read_file(f"/proc/{pid}/io", files)
    if data is None:
        return None
    try:
        fields = dict(line.split(b": ") for line in data.splitlines() if b": " in line)
        return int(fields[b"read_bytes"]), int(fields[b"write_bytes"])
    except (ValueError, KeyError):
        return None


def task_ids(pid: int) -> list[int]:
    """The threads of process `pid` now (none where it is gone)."""
    try:
        return [int(name) for name in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def thread_times(pid: int, files: OpenFiles | None = None,
                 tids: list[int] | None = None) -> dict[int, tuple[float, float]] | None:
    """Per thread (`tids`, else those listed now): (CPU seconds, seconds running or runnable): the active
    time, from schedstat where the kernel keeps it (else the CPU seconds). None if the process cannot be
    read; a thread that ended is left out."""
    if tids is None:
        tids = task_ids(pid)
        if not tids:  # every process has a thread: it is gone
            return None
    times = {}
    for tid in tids:
        fields = _stat_fields(f"/proc/{pid}/task/{tid}/stat", files)
        if fields is None:
            continue  # it ended since the listing
        try:
            cpu_s = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        except (ValueError, IndexError):
            continue
        ns = schedstat_ns(pid, tid, files)
        times[tid] = (cpu_s, cpu_s if ns is None else (ns[0] + ns[1]) / 1e9)
    return times


def schedstat_ns(pid: int, tid: int, files: OpenFiles | None = None) -> tuple[int, int] | None:
    """(ns on a CPU, ns runnable but waiting for one) of a thread, or None where the kernel has no schedstat."""
    data = read_file(f"/proc/{pid}/task/{tid}/schedstat", files)
    if data is None:
        return None
    try:
        fields = data.split()
        return int(fields[0]), int(fields[1])
    except (ValueError, IndexError):
        return None


def thread_cpu_s(pid: int, tid: int) -> float | None:
    """Seconds the thread ran on a CPU (schedstat's first field), else user+system ticks; None if unreadable.

    Not the run-queue time too: a blocking (--native) dump stops every
    thread, and on a loaded machine a deadlocked thread then waits tens of
    milliseconds in the run queue before it goes back to sleep, which would
    count as running.
    """
    times = schedstat_ns(pid, tid)
    if times is not None:
        return times[0] / 1e9
    fields = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
    try:
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (TypeError, ValueError, IndexError):
        return None


def descendants(pid: int, files: OpenFiles | None = None,
                tasks: Callable[[int], list[int]] = task_ids) -> list[int] | None:
    """Every process below `pid`, parents before their children, from the kernel's own lists
    (/proc/PID/task/TID/children, for each thread `tasks` gives); None where the kernel keeps none
    (CONFIG_PROC_CHILDREN).

    psutil's children() reads the stat file of every process on the machine to find them:
    ten times a second, that was most of what reading the tree cost.
    """
    if not HAS_CHILDREN_LISTS:
        return None
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for tid in tasks(parent):
            listed = read_file(f"/proc/{parent}/task/{tid}/children", files)
            try:
                kids = [int(k) for k in listed.split()] if listed else []
            except ValueError:
                continue
            found += kids
            todo += kids
    return found


def host_busy_s(files: OpenFiles | None = None) -> float | None:
    """CPU seconds the whole machine was busy (not idle, not waiting for IO), cumulative, from the first
    line of /proc/stat (the fields psutil.cpu_times() sums); None where it cannot be read."""
    data = read_file("/proc/stat", files)
    if data is None:
        return None
    try:
        fields = [int(f) for f in data.split(b"\n", 1)[0].split()[1:]]
        return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS
    except (ValueError, IndexError):
        return None


def process_active_ns(pid: int) -> int | None:
    """Nanoseconds all threads of a process have run or waited for a CPU (schedstat); None where any
    cannot be read.

    Exact where stat's ticks are not: a thread that ran 1 ms moves it. Unchanged means no
    thread of the process ran, or wanted to, so none of its stacks can have changed. The wait counts:
    on a busy machine a thread that woke waits for a CPU first, and when it woke is told by what it has
    wanted since (run time alone put a wake 0.08 s late, and that time on the stack it slept in)."""
    total = 0
    tids = task_ids(pid)
    if not tids:
        return None
    for tid in tids:
        times = schedstat_ns(pid, tid)
        if times is None:
            return None
        total += times[0] + times[1]
    return total


def process_cpu_s(pid: int) -> float | None:
    """Seconds all threads of a process ran (user + system, in clock ticks); None if unreadable."""
    stat = process_stat(pid)
    return None if stat is None else stat.cpu_s


def zombie_exit(pid: int) -> tuple[int | None, int | None]:
    """(exit code, signal) the kernel keeps for a zombie: the last field of /proc/PID/stat, in waitpid form."""
    fields = _stat_fields(f"/proc/{pid}/stat")
    try:
        status = int(fields[-1])
    except (TypeError, ValueError, IndexError):
        return None, None
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status), None
    return None, None


def source_line(pid: int, file: str, line: int) -> str | None:
    """The text of `file:line` as the target sees it (its own root and cwd: containers), else as we do."""
    if not file or line <= 0:
        return None
    if os.path.isabs(file):
        candidates = [f"/proc/{pid}/root{file}", file]
    else:
        candidates = [f"/proc/{pid}/cwd/{file}", file]
    for path in candidates:
        text = linecache.getline(path, line)
        if text:
            return text.rstrip("\n")
    return None


def _stat_fields(path: str, files: OpenFiles | None = None) -> list[str] | None:
    """The fields of a stat file after the command name (which may hold spaces and parentheses)."""
    data = read_file(path, files)
    if data is None:
        return None
    try:
        raw = data.decode(errors="replace")
        return raw[raw.rindex(")") + 2 :].split()
    except ValueError:
        return None
