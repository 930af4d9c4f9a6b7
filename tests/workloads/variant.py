"""Two functions with the seconds given: `variant.py ALPHA BETA` (alpha spins ALPHA s, beta BETA s).

Two runs with different arguments are two known variants for `gradetop diff`.
"""

import sys
import time


def alpha(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def beta(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


if __name__ == "__main__":
    time.sleep(0.3)  # a sampler that starts this program (py-spy record -- ...) finds its interpreter first
    alpha(float(sys.argv[1]))
    beta(float(sys.argv[2]))
