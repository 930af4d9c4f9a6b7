"""A parent that spins while its child dozes: a 1 ms task every 0.3 s, as a pool worker between tasks.

    python dozing_child.py [SECONDS]

child: nap() sleeps 0.3 s, task() spins 1 ms, for SECONDS (default 9).
parent: lead() spins until the child ends.
"""

import multiprocessing
import sys
import time


def task():
    end = time.perf_counter() + 0.001
    while time.perf_counter() < end:
        pass


def nap():
    time.sleep(0.3)


def child(seconds):
    end = time.time() + seconds
    while time.time() < end:
        nap()
        task()


def lead(proc):
    x = 0
    while proc.is_alive():
        x += 1


if __name__ == "__main__":
    proc = multiprocessing.Process(target=child, args=(float(sys.argv[1]) if len(sys.argv) > 1 else 9.0,))
    proc.start()
    lead(proc)
    proc.join()
