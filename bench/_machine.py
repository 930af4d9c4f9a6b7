"""What else the machine is doing: benchmarks on a shared box should say so next to their numbers."""

from __future__ import annotations

import os
import time


def _cpu_times() -> tuple[float, float]:
    with open("/proc/stat") as f:
        fields = [float(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields), idle


def busy_share(seconds: float = 0.5) -> float:
    """Share of all CPUs busy over `seconds` (0..1); NaN where /proc/stat is unreadable."""
    try:
        total0, idle0 = _cpu_times()
        time.sleep(seconds)
        total1, idle1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return float("nan")
    total = total1 - total0
    return (total - (idle1 - idle0)) / total if total > 0 else float("nan")


def compile_gradetop() -> None:
    """Byte-compile gradetop's modules, as an installed gradetop runs them: pip compiles them at install, and
    a first run writes them. A machine that sets PYTHONDONTWRITEBYTECODE (our CI and test machines do) would
    otherwise time the compiler at every start of gradetop: 0.05 CPU-s of its 0.15 CPU-s start."""
    import compileall

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for package in ("gradetop", "model", "collectors", "cli", "tui"):
        compileall.compile_dir(os.path.join(root, package), quiet=2)


def describe(seconds: float = 0.5) -> str:
    """One line: CPUs, load average and how busy the machine is before the benchmark starts. Every script
    calls it first: it byte-compiles gradetop first (`compile_gradetop`)."""
    compile_gradetop()
    share = busy_share(seconds)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    line = (f"machine: {os.cpu_count()} CPUs, load average {load:.2f}, {share * 100:.0f}% busy before starting"
            " (gradetop byte-compiled, as installed)")
    if share == share and share > 0.10:
        line += "  ** WARNING: something else is running; timings will be noisy **"
    return line


class ForeignLoad:
    """CPU time the rest of the machine used while a benchmark ran (everything busy minus us and our children).

    Children count once reaped, so read it when the benchmark's subprocesses have ended.
    """

    def __init__(self) -> None:
        import resource

        self._resource = resource
        self._hz = os.sysconf("SC_CLK_TCK")
        self._start = self._read()

    def _ours(self) -> float:
        r = self._resource
        s, c = r.getrusage(r.RUSAGE_SELF), r.getrusage(r.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

    def _read(self) -> tuple[float, float, float, float]:
        total, idle = _cpu_times()
        return total / self._hz, (total - idle) / self._hz, self._ours(), time.monotonic()

    def summary(self) -> str:
        total0, busy0, ours0, t0 = self._start
        total1, busy1, ours1, t1 = self._read()
        foreign = max(0.0, (busy1 - busy0) - (ours1 - ours0))
        wall = t1 - t0
        cpus = os.cpu_count() or 1
        line = (f"other processes used {foreign:.1f} CPU-s during the {wall:.0f} s run "
                f"({foreign / (wall * cpus) * 100:.0f}% of the machine)")
        if wall > 0 and foreign / (wall * cpus) > 0.05:
            line += "  ** shared machine: treat absolute timings with care **"
        return line
