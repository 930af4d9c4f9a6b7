"""Readers of /proc: per-thread scheduler times, a zombie's exit status, a source line as the target sees it.

Every function reads one small file, returns None (or Nones) where the
kernel would not say (no such process, no schedstat, permission), and never
raises for that. Source files are read through the target's own root
(`/proc/PID/root/...`, `/proc/PID/cwd/...` for relative paths) and then as
the path is, so a process in a container is judged on its own files
wherever gradetop runs.

Must never keep state, start processes, nor import psutil, textual or rich.
"""

from __future__ import annotations

import linecache
import os


def schedstat_ns(pid: int, tid: int) -> tuple[int, int] | None:
    """(ns on a CPU, ns runnable but waiting for one) of a thread, or None where the kernel has no schedstat."""
    try:
        with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
            fields = f.read().split()
        return int(fields[0]), int(fields[1])
    except (OSError, ValueError, IndexError):
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
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (TypeError, ValueError, IndexError):
        return None


def descendants(pid: int) -> list[int] | None:
    """Every process below `pid`, parents before their children, from the kernel's own lists
    (/proc/PID/task/TID/children); None where the kernel keeps none (CONFIG_PROC_CHILDREN).

    psutil's children() reads the stat file of every process on the machine to find them:
    ten times a second, that was most of what reading the tree cost.
    """
    if not os.path.exists(f"/proc/{pid}/task/{pid}/children"):
        return None if os.path.exists(f"/proc/{pid}") else []
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tids = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{parent}/task/{tid}/children", "rb") as f:
                    kids = [int(k) for k in f.read().split()]
            except (OSError, ValueError):
                continue
            found += kids
            todo += kids
    return found


def process_run_ns(pid: int) -> int | None:
    """Nanoseconds all threads of a process have run (schedstat); None where any cannot be read.

    Exact where stat's ticks are not: a thread that ran 1 ms moves it. Unchanged means no
    thread of the process ran at all, so none of its stacks can have changed."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        times = schedstat_ns(pid, int(tid))
        if times is None:
            return None
        total += times[0]
    return total


def process_cpu_s(pid: int) -> float | None:
    """Seconds all threads of a process ran (user + system, in clock ticks); None if unreadable."""
    fields = _stat_fields(f"/proc/{pid}/stat")
    try:
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (TypeError, ValueError, IndexError):
        return None


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


def _stat_fields(path: str) -> list[str] | None:
    """The fields of a stat file after the command name (which may hold spaces and parentheses)."""
    try:
        with open(path, "rb") as f:
            raw = f.read().decode(errors="replace")
        return raw[raw.rindex(")") + 2 :].split()
    except (OSError, ValueError):
        return None
