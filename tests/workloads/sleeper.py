"""Prints its pid, then sleeps in a named function until killed (or for argv[1] seconds)."""

import os
import sys
import time


def waiting_forever(seconds):
    time.sleep(seconds)


if __name__ == "__main__":
    print(os.getpid(), flush=True)
    waiting_forever(float(sys.argv[1]) if len(sys.argv) > 1 else 3600)
