"""One py-spy window: the recording that samples one process for a while, launched, watched, and its lines timed.

A window is a `py-spy record` run on one process that we end ourselves
(collectors.stacks chains them). What it needs is kept here, apart from
the sampler and from py-spy's output format, so that it loads nothing but
the standard library: `gradetop record -- CMD` launches the command's
first window before it loads numpy and the model (collectors.launch), and
a job's first second is sampled like the rest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

ORPHAN_LIMIT_S = 3
"""Every window is started with py-spy's own --duration of this: we end it long before (a window
lasts 0.5 s, its successor attaches in well under a second even on a loaded machine), and if
gradetop dies (killed, terminal gone) it samples at most this long for nobody. (PR_SET_PDEATHSIG would need a
preexec_fn: 4 ms a launch, and unsafe in a threaded program.)"""

_TRACES = re.compile(r"Samples: (\d+)")


class PySpyMissing(RuntimeError):
    pass


def find_pyspy() -> str:
    """The py-spy installed beside this Python (pip puts it there), else the one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if os.access(here, os.X_OK):
        return here
    found = shutil.which("py-spy")
    if found:
        return found
    raise PySpyMissing("py-spy is not installed: pip install py-spy")


@dataclass
class StackOptions:
    rate_hz: float = 100.0
    window_s: float = 0.5
    subprocesses: bool = True
    """Sample the children of the target too (the monitor's job: each gets its own sampler)."""
    native: bool = False
    blocking: bool = False
    sampler: str = "auto"
    """'auto': read a CPython interpreter whose layout gradetop knows directly (collectors.direct), py-spy
    windows for any other; 'py-spy': py-spy windows for every process."""
    lead_s: float = 0.05
    """How long before a window's end the next one is started. py-spy attaches in 10-15 ms, and a window
    runs on until the next one samples, so a longer lead only samples the same time twice (0.15 s: 6.3%
    of window time sampled twice, 2.7 launches a second; 0.05 s: 5.0%, 2.1)."""
    quiet_hz: float = 10.0
    """The rate for a quiet child (0: never lower the rate)."""
    quiet_cpu: float = 0.05
    """A child is quiet when it ran less than this share of a core through its last window."""
    quiet_window_s: float = 2.0
    """A quiet child's window: each launch costs py-spy about 8 ms of CPU, so a quiet child's samples
    arrive up to 2 s after they were taken. It ends early when the child runs again (within ~0.1 s),
    or once it has not run at all for a second (then it is parked)."""

    @property
    def reads_directly(self) -> bool:
        """Whether processes whose interpreter we can read are read directly (py-spy alone pauses the target
        or reads native frames)."""
        return self.sampler == "auto" and not self.native and not self.blocking

    @property
    def lowers_rate(self) -> bool:
        return 0 < self.quiet_hz < self.rate_hz

    def args(self, rate_hz: float | None = None, limit_s: float = ORPHAN_LIMIT_S) -> list[str]:
        # Current line numbers (not -F's first lines): the line a thread waits on tells what it
        # waits for (a `with lock:` leaves no frame of its own), and the flame shows where in a
        # function the time goes. Function-level views merge a function's lines.
        rate = max(1, int(round(rate_hz or self.rate_hz)))
        # Chrome trace: each stack change with the time py-spy saw it (speedscope has no times).
        args = ["record", "-f", "chrometrace", "--idle", "-t", "-r", str(rate), "-d", str(int(limit_s))]
        if self.native:
            args.append("-n")
        if not self.blocking:
            args.append("--nonblocking")
        return args


@dataclass
class Window:
    proc: subprocess.Popen
    output: str
    stderr_path: str
    rate_hz: float
    quiet: bool = False
    cpu_at_launch: float | None = None
    run_ns_at_launch: int | None = None
    """Of a quiet window: what its process had run, to tell whether it ran at all since."""
    started: threading.Event = field(default_factory=threading.Event)
    stopped: threading.Event = field(default_factory=threading.Event)
    t_launch: float = 0.0
    t_exec: float | None = None
    """When py-spy was exec'd: its Chrome trace's clock starts (ts 0) within a millisecond or two."""
    t_start: float = 0.0
    """When we read py-spy's 'Sampling' line: the window's samples start here (a previous window's
    end); its first tick comes after, an exponential wait of one tick on average."""
    t_from: float = 0.0
    """Where this window's samples begin: its first tick, or earlier where a quiet window handed over."""
    t_end: float = 0.0
    traces: int | None = None
    """Stack traces py-spy says it took, all threads together."""


def launch(pid: int, options: StackOptions, output: str, rate_hz: float, quiet: bool = False,
           cpu_at_launch: float | None = None, run_ns_at_launch: int | None = None,
           limit_s: float = ORPHAN_LIMIT_S) -> Window:
    """Start py-spy on `pid`, writing its Chrome trace to `output`, and time its lines as they come."""
    stderr_path = output + ".err"
    cmd = [find_pyspy(), *options.args(rate_hz, limit_s), "-p", str(pid), "-o", output]
    t_launch = time.time()
    with open(stderr_path, "wb") as err:
        # Own session: a Ctrl-C at the terminal must not kill a window before we flush it.
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                start_new_session=True)
    # Popen returns once py-spy is exec'd; it starts its trace clock (ts 0) a moment later.
    window = Window(proc, output, stderr_path, rate_hz, quiet, cpu_at_launch, run_ns_at_launch, t_launch=t_launch,
                    t_exec=time.time())
    threading.Thread(target=_watch, args=(window,), name="gradetop-pyspy-out", daemon=True).start()
    return window


def _watch(window: Window) -> None:
    """Timestamps py-spy's 'Sampling' and 'Stopped sampling' lines: the window's true edges."""
    with window.proc.stdout as out:
        for raw in out:
            line = raw.decode(errors="replace")
            if "Sampling process" in line and not window.started.is_set():
                window.t_start = window.t_from = time.time()
                window.started.set()
            elif "Stopped sampling" in line:
                window.t_end = time.time()
                window.stopped.set()
            elif (found := _TRACES.search(line)) is not None:
                window.traces = int(found.group(1))
    window.stopped.set()
