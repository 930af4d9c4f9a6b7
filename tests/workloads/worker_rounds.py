"""Starts its workers again each round, as a DataLoader without persistent workers does each epoch:
after a start-up of START_S (a training script's imports), ROUNDS rounds of PER_ROUND multiprocessing
workers, each busy about WORK_S."""

import multiprocessing
import time

START_S, ROUNDS, PER_ROUND, WORK_S = 0.5, 6, 2, 0.25


def work() -> None:
    end = time.time() + WORK_S
    x = 0
    while time.time() < end:
        x += 1


if __name__ == "__main__":
    time.sleep(START_S)
    for _ in range(ROUNDS):
        workers = [multiprocessing.Process(target=work) for _ in range(PER_ROUND)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
