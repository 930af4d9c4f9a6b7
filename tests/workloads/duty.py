"""Duty-cycle loops whose true busy time is known: the truth test_sampling_truth checks.

Each thread alternates crunch (busy to a perf_counter deadline) and nap
(time.sleep), and measures its active time in each: the wall time of the
busy loop, the CPU time of the sleep.
With --phase, the main thread then twelve times spins 0.15 s, marks a phase
"edge" with gradetop.phase and spins 0.15 s in `after_edge` inside it; each
marker's own timestamp is the truth for where its edge falls.

    python duty.py SECONDS TRUTH.json [--second] [--phase]

--second adds a thread "slow" of 20 ms busy / 30 ms asleep beside the main
thread's 5 ms / 45 ms. Writes {thread: {"crunch": s, "nap": s}} to TRUTH.json.
"""

import json
import sys
import threading
import time

import gradetop


EDGES = 12


def crunch(busy_s):
    t = time.perf_counter() + busy_s
    while time.perf_counter() < t:
        pass


def nap(sleep_s):
    time.sleep(sleep_s)


def crunch_slow(busy_s):
    crunch(busy_s)


def nap_slow(sleep_s):
    nap(sleep_s)


def loop(seconds, busy_s, sleep_s, truth, key, busy=crunch, rest=nap):
    spent = {"crunch": 0.0, "nap": 0.0}
    end = time.time() + seconds
    while time.time() < end:
        w0 = time.perf_counter()
        busy(busy_s)
        w1, c1 = time.perf_counter(), time.thread_time()
        rest(sleep_s)
        # A busy loop is active (running, or runnable and waiting for a CPU) for its whole wall time;
        # a sleep only for the CPU it used.
        spent["crunch"] += w1 - w0
        spent["nap"] += time.thread_time() - c1
        # Waking late (waiting for a CPU on a loaded machine, or for the GIL) is spent in the sleep too.
        spent["late"] = spent.get("late", 0.0) + max(0.0, time.perf_counter() - w1 - sleep_s)
    truth[key] = spent


def after_edge(seconds):
    crunch(seconds)


def main():
    seconds, out = float(sys.argv[1]), sys.argv[2]
    truth = {}
    other = None
    if "--second" in sys.argv:
        other = threading.Thread(target=loop, args=(seconds, 0.020, 0.030, truth, "slow", crunch_slow, nap_slow),
                                 name="slow")
        other.start()
    loop(seconds, 0.005, 0.045, truth, "main")
    if other is not None:
        other.join()
    if "--phase" in sys.argv:
        for _ in range(EDGES):
            crunch(0.15)
            with gradetop.phase("edge"):
                after_edge(0.15)
    with open(out, "w") as f:
        json.dump(truth, f)


if __name__ == "__main__":
    main()
