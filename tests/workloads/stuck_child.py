"""A parent waiting (join) on a multiprocessing child that sleeps, plus a busy thread in the parent.

With --troubled [DELAY], two more children that the parent never reaps
(it only ever waits on the sleeper): "victim" kills itself with SIGKILL
after DELAY seconds (default 0.8), "crasher" exits with status 3 after
0.1 s. Both become zombies. The crasher starts last: each start() reaps
the children that already ended.

Prints the parent's pid once the sleeping child is asleep.
"""

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time


def die_with_parent():
    """Linux: a parent killed outright (SIGKILL, SIGTERM) must not leave its children behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def nap(asleep):
    die_with_parent()
    asleep.set()
    time.sleep(3600)  # the child sleeps: its parent waits on it forever


def crash():
    time.sleep(0.1)  # started last and exits late enough that no later start() reaps it
    os._exit(3)


def die_by_kill(delay):
    die_with_parent()
    time.sleep(delay)
    os.kill(os.getpid(), signal.SIGKILL)


def busy():
    x = 0
    while True:
        x = (x * 31 + 7) % 1_000_003


if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    asleep = multiprocessing.Event()
    child = multiprocessing.Process(target=nap, args=(asleep,), name="sleeper", daemon=True)
    child.start()
    troubled = "--troubled" in sys.argv
    if troubled:
        delay = float(sys.argv[sys.argv.index("--troubled") + 1]) if len(sys.argv) > sys.argv.index("--troubled") + 1 else 0.8
        multiprocessing.Process(target=die_by_kill, args=(delay,), name="victim", daemon=True).start()
        multiprocessing.Process(target=crash, name="crasher", daemon=True).start()
    asleep.wait()
    threading.Thread(target=busy, name="busy", daemon=True).start()
    print(os.getpid(), flush=True)
    child.join()
