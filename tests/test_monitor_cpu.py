"""gradetop's own CPU, as the verdicts weigh it against the workflow's: its py-spy windows counted whole."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from conftest import kill_tree
from gradetop.collectors.resources import MonitorCpu
from gradetop.collectors.window import find_pyspy


def test_a_window_that_ended_between_two_reads_is_counted_whole(ptrace):
    """A 0.5 s window lives between two once-a-second reads: reading only the running helpers (as before)
    never saw its CPU. Now the kernel's count for reaped children has it, attach included."""
    target = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        monitor = MonitorCpu()
        before = monitor.read(set())
        assert monitor.read(set()) == -1.0, "within a second of a read: not read, not the same value again"
        window = subprocess.Popen([find_pyspy(), "record", "-r", "200", "-d", "1", "--nonblocking", "-p",
                                   str(target.pid), "-o", os.devnull, "-f", "raw"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, usage = os.wait4(window.pid, 0)
        window.returncode = 0
        spent = usage.ru_utime + usage.ru_stime
        assert spent > 0.005, spent
        deadline = time.monotonic() + 2 * MonitorCpu.EVERY_S  # py-spy ran 1 s: the next read is due, or nearly
        after = monitor.read(set())
        while after < 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            after = monitor.read(set())
        # This process's own CPU moves too (a little): at least the window's, and not the target's.
        assert spent - 1e-6 <= after - before < spent + 0.5, (after - before, spent)  # (sums of floats)
    finally:
        kill_tree(target)
