"""A command started under gradetop, its first py-spy window already sampling, before the model is loaded.

`gradetop record -- CMD` used to load numpy, the model and the collectors
(about 0.14 s) before it started CMD: every run took that much longer than
under py-spy alone, which starts its command at once. Here the command and
the py-spy window that samples its first half second start with nothing
but the standard library loaded (keep it so: psutil alone is 12 ms); the
Session loads the rest meanwhile, then takes both over (collectors.session).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from gradetop.collectors import scratch
from gradetop.collectors.target import Target, TargetError
from gradetop.collectors.window import PySpyMissing, StackOptions, Window, launch as launch_window
from gradetop.phases import ENV

FIRST_WINDOW_LIMIT_S = 10
"""py-spy's own --duration for the first window: it stands until the session takes it over, which a
slow start (a cold disk) can delay by seconds; if gradetop dies first, py-spy stops by itself."""


class HeldLines:
    """Output lines of the command, kept until a profile is there to take them, then passed on in order."""

    def __init__(self) -> None:
        self._lines: list = []
        self._sink = None
        self._lock = threading.Lock()

    def __call__(self, line) -> None:
        with self._lock:
            if self._sink is None:
                self._lines.append(line)
                return
        self._sink(line)

    def deliver_to(self, sink) -> None:
        """From now on every line goes to `sink`, those kept so far first."""
        with self._lock:
            for line in self._lines:
                sink(line)
            self._lines.clear()
            self._sink = sink


@dataclass
class Launched:
    """The started command, its scratch folders, and its first window (None: py-spy could not start;
    the sampler says why when it tries again)."""

    target: Target
    phase_folder: str
    """Its phase markers (GRADETOP_PHASES), and its output log where there is one."""
    log_path: str | None
    window_folder: str
    """The target's stack sampler's scratch folder, where the first window writes."""
    output: HeldLines
    started: float
    """When the command was started (wall clock): the recording's start."""
    first_window: Window | None = None


def launch(command: list[str], stacks: StackOptions, capture_output: bool = False) -> Launched:
    """Start `command` with its marker folder, and py-spy on it at once.

    With `capture_output` (the UI), its output goes to a log file that it keeps writing after a
    detach; without, it shares gradetop's terminal and dies with gradetop.
    """
    # One scratch folder per workflow: its phase markers and its output log, kept while it runs.
    folder = scratch.new_folder("workflow")
    log_path = os.path.join(folder, "output.log") if capture_output else None
    output = HeldLines()
    started = time.time()
    try:
        target = Target.spawn(command, env={ENV: folder}, on_output=output if capture_output else None,
                              log_path=log_path, die_with_gradetop=not capture_output)
    except TargetError:
        scratch.remove(folder)
        raise
    launched = Launched(target, folder, log_path, scratch.new_folder("windows"), output, started)
    try:
        launched.first_window = launch_window(target.pid, stacks, os.path.join(launched.window_folder, "w0.json"),
                                              stacks.rate_hz, limit_s=FIRST_WINDOW_LIMIT_S)
    except (PySpyMissing, OSError):
        pass  # the sampler tries again, and says why it cannot
    scratch.claim(folder, target.pid)
    scratch.sweep()
    return launched
