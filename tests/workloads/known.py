"""A workload whose function times are known: the truth the report is checked against.

main thread:  alpha spins 1.0 s, beta spins 2.0 s, napper sleeps 1.5 s,
              then waits (join) while a helper thread spins 1.0 s;
child process (with --child): child_work spins 1.0 s meanwhile.
"""

import multiprocessing
import sys
import threading
import time


def spin(seconds):
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1
    return x


def alpha():
    spin(1.0)


def beta():
    spin(2.0)


def napper():
    time.sleep(1.5)


def helper_thread():
    spin(1.0)


def child_work():
    spin(1.0)


if __name__ == "__main__":
    time.sleep(0.3)  # let the monitor attach before the measured part
    alpha()
    beta()
    napper()
    helper = threading.Thread(target=helper_thread, name="helper")
    helper.start()
    if "--child" in sys.argv:
        child = multiprocessing.get_context("spawn").Process(target=child_work, name="child")
        child.start()
        child.join()
    helper.join()
    sys.exit(int(sys.argv[sys.argv.index("--exit") + 1]) if "--exit" in sys.argv else 0)
