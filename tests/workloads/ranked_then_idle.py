"""One rank that works through marked phases, then idles: what a scrape and a report must agree on.

Three rounds of `load` (sleep 0.3 s) and `compute` (spin 0.6 s), then it
sleeps for the seconds given (default 120) so its counters stand still.
"""

import sys
import time

import gradetop


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


if __name__ == "__main__":
    for _ in range(3):
        with gradetop.phase("load"):
            time.sleep(0.3)
        with gradetop.phase("compute"):
            spin(0.6)
    time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 120.0)
