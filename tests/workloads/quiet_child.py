"""A parent that spins while its child sleeps, then waits while the child spins, then the child sleeps again.

    python quiet_child.py [--truth FILE]

child: doze() sleeps 2.0 s, work() spins 1.0 s, doze_again() sleeps 2.5 s.
parent: lead() spins until the child ends, main() joins it.
With --truth FILE, the child writes the wall-clock [start, end] of its doze() and work() there as JSON.
"""

import json
import multiprocessing
import sys
import time


def spin_until(end):
    x = 0
    while time.time() < end:
        x += 1
    return x


def doze():
    time.sleep(2.0)


def work(truth, dozed):
    start = time.time()
    spin_until(start + 1.0)
    if truth:
        with open(truth, "w") as f:
            json.dump({"doze": dozed, "work": [start, time.time()]}, f)


def doze_again():
    time.sleep(2.5)


def child(truth):
    start = time.time()
    doze()
    work(truth, [start, time.time()])
    doze_again()


def lead(proc):
    while proc.is_alive():
        spin_until(time.time() + 0.05)


if __name__ == "__main__":
    time.sleep(1.0)  # let the monitor start first (it starts about 0.5 s after the command)
    truth = sys.argv[sys.argv.index("--truth") + 1] if "--truth" in sys.argv else None
    proc = multiprocessing.get_context("fork").Process(target=child, args=(truth,), name="quiet-child")
    proc.start()
    lead(proc)
    proc.join()
