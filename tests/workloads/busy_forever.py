"""Spins in one function until interrupted: a job that SIGINT must not lose."""

import time


def crunch():
    x = 0
    while True:
        x += 1
        if x % 1_000_000 == 0:
            time.sleep(0)


if __name__ == "__main__":
    try:
        crunch()
    except KeyboardInterrupt:
        pass
