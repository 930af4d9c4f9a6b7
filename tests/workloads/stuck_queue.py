"""A consumer thread waiting forever on an empty queue.Queue, and a busy main thread.

Prints its pid once the consumer is about to block in `inbox.get()`.
"""

import os
import queue
import threading

inbox: queue.Queue = queue.Queue()
started = threading.Event()


def consumer():
    started.set()
    item = inbox.get()  # nothing is ever put: waits forever
    print(item)


def busy():
    x = 0
    while True:
        x = (x * 31 + 7) % 1_000_003


if __name__ == "__main__":
    threading.Thread(target=consumer, name="consumer", daemon=True).start()
    started.wait()
    print(os.getpid(), flush=True)
    busy()
