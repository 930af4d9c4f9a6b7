"""Which of our processes is the one the GPU driver names: pids across pid namespaces.

The driver names processes by their pid in the host's pid namespace; we
watch pids in ours. /proc/PID/status NSpid lists a process's pid in each
namespace from /proc's own down to the process's, so where our /proc is the
host's (or an ancestor's) the driver's pid is among them. Where it is not
(gradetop inside a container), nothing matches and the sampler says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


def read_nspid(pid: int) -> list[int]:
    """The pids of `pid` in each pid namespace from /proc's down to its own (NSpid), [] if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


def driver_pid_map(watched: Iterable[int], read: Callable[[int], list[int]] = read_nspid) -> dict[int, int]:
    """Driver pid -> our pid, for every watched process: its own pid and every pid NSpid lists for it.

    The driver names processes by their pid in the host's namespace. Run on
    the host (or with the host's /proc), NSpid lists that pid; run inside a
    container without it, nothing matches, and the caller says so.
    """
    out: dict[int, int] = {}
    for pid in watched:
        out.setdefault(pid, pid)
        for other in read(pid):
            out.setdefault(other, pid)
    return out
