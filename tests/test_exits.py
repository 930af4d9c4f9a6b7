"""collectors/exits: the kernel says when a process exited (a pidfd), child of ours or not."""

import subprocess
import sys
import time

from gradetop.collectors.exits import ExitClock


def test_the_exit_of_a_process_is_timed_by_the_kernel():
    clock = ExitClock()
    # A grandchild, not our child: pidfds work for any process.
    parent = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys\n"
                               "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(0.5)'])\n"
                               "print(p.pid, flush=True)\n"
                               "p.wait()"], stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    assert clock.watch(pid)
    assert clock.exited_at(pid) is None
    parent.wait(10)
    seen = time.time()
    exited = clock.exited_at(pid, wait_s=1.0)
    assert exited is not None and seen - 0.5 < exited <= seen + 0.05, (exited, seen)


def test_a_process_that_is_gone_cannot_be_watched():
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(done.stdout)
    clock = ExitClock()
    assert clock.watch(pid) is False
    assert clock.exited_at(pid, wait_s=0.1) is None
