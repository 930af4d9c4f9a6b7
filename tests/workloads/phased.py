"""A workload marked with gradetop.phase, whose phase durations are known: the truth test_phases checks.

main thread (spins run to a perf_counter deadline):
    prepare              0.8 s   = download (sleep 0.3) + unpack (spin 0.5)
    evaluate             0.6 s   a decorated function, spinning
    train                1.2 s   = epoch 0, epoch 1, epoch 2 (spin 0.4 each)
    spawn child          the main thread waits for a spawn-context child that
                         marks `child work` (spin 1.0 s) in its own process
    pool                 a ThreadPoolExecutor of 2 workers runs 4 tasks, each
                         marking `pool task` on its worker thread: 2 sleep
                         0.5 s, 2 spin 0.5 s; the process exits right after

On a loaded machine a spin ends late when its thread waits for a CPU at the
deadline; so with `--truth FILE` the workload also writes the epoch times it
measured itself around each marked block, as JSON {path: [[start, end], ...]}.
Prints nothing.
"""

import json
import multiprocessing
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import gradetop

DOWNLOAD_S = 0.3
UNPACK_S = 0.5
EVALUATE_S = 0.6
EPOCHS = 3
EPOCH_S = 0.4
CHILD_S = 1.0
POOL_TASKS = 4
POOL_WORKERS = 2
TASK_S = 0.5

truth = {}


@contextmanager
def measured(path):
    start = time.time()
    try:
        yield
    finally:
        truth.setdefault(path, []).append([start, time.time()])


def spin(seconds):
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1
    return x


@gradetop.phase("evaluate")
def evaluate():
    """Spin for EVALUATE_S seconds."""
    return spin(EVALUATE_S)


def child_main(truth_file):
    start = time.time()
    with gradetop.phase("child work"):
        spin(CHILD_S)
    if truth_file:
        with open(truth_file + ".child", "w") as f:
            json.dump({"child work": [[start, time.time()]]}, f)


def pool_task(i):
    start = time.time()
    with gradetop.phase("pool task"):
        if i % 2:
            spin(TASK_S)
        else:
            time.sleep(TASK_S)
    return [start, time.time()], threading.get_native_id()


def main(truth_file):
    time.sleep(0.3)  # let the monitor attach before the measured part
    with measured("prepare"), gradetop.phase("prepare"):
        with measured("prepare/download"), gradetop.phase("download"):
            time.sleep(DOWNLOAD_S)
        with measured("prepare/unpack"), gradetop.phase("unpack"):
            spin(UNPACK_S)
    with measured("evaluate"):
        evaluate()
    with measured("train"), gradetop.phase("train"):
        for epoch in range(EPOCHS):
            with measured(f"train/epoch {epoch}"), gradetop.phase(f"epoch {epoch}"):
                spin(EPOCH_S)
    with measured("spawn child"), gradetop.phase("spawn child"):
        child = multiprocessing.get_context("spawn").Process(target=child_main, args=(truth_file,), name="child")
        child.start()
        child.join()
    with measured("pool"), gradetop.phase("pool"):
        with ThreadPoolExecutor(max_workers=POOL_WORKERS, thread_name_prefix="pool") as pool:
            # In task order: tasks 0 and 2 sleep, 1 and 3 spin; the thread ids tell which phase is which.
            truth["pool task"], truth["pool task tids"] = map(list, zip(*pool.map(pool_task, range(POOL_TASKS))))
    if truth_file:
        with open(truth_file + ".child") as f:
            truth.update(json.load(f))
        with open(truth_file, "w") as f:
            json.dump(truth, f)
    # No pause before exit: the last markers must reach the snapshot all the same.


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--truth") + 1] if "--truth" in sys.argv else None)
