"""Two threads deadlocked on two locks, and a busy main thread that must never be flagged.

"left" holds lock_a and blocks in `with lock_b:` (py-spy shows no acquire
frame, only the `with` line); "right" holds lock_b and blocks in
`lock_a.acquire()`. The main thread spins until killed. Prints its pid once
both threads hold their first lock.
"""

import os
import threading

lock_a = threading.Lock()
lock_b = threading.Lock()
both_hold_one = threading.Barrier(3)


def left():
    with lock_a:
        both_hold_one.wait()
        with lock_b:  # deadlock: "right" holds lock_b
            pass


def right():
    with lock_b:
        both_hold_one.wait()
        lock_a.acquire()  # deadlock: "left" holds lock_a
        lock_a.release()


def busy():
    table = {}
    n = 0
    while True:
        n = table.get(n, n) + 1  # reads like a wait (`.get(`) but runs: never stuck


if __name__ == "__main__":
    threading.Thread(target=left, name="left", daemon=True).start()
    threading.Thread(target=right, name="right", daemon=True).start()
    both_hold_one.wait()
    print(os.getpid(), flush=True)
    busy()
