"""A DataLoader-like job for the monitor-cost benchmark: a busy parent and N workers mostly waiting on a queue.

The parent runs pure-Python work and hands one small item to the workers
every 20 ms; a worker takes ~1 ms of CPU per item and waits on the queue the
rest of the time, as torch DataLoader workers do between batches. At exit the
job writes the CPU seconds it used (itself and its reaped workers) to
--cpu-file, so that a benchmark can subtract it from the monitor's tree.

    python bench/loader_job.py --workers 16 --seconds 10 --cpu-file /tmp/cpu
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

ITEM_EVERY_S = 0.02


def spin(units: int) -> int:
    acc = 0
    for i in range(units):
        acc = (acc * 1103515245 + 12345 + i) & 0x7FFFFFFF
    return acc


def worker(q) -> None:
    while True:
        item = q.get()
        if item is None:
            return
        spin(2_000)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cpu-file")
    args = parser.parse_args(argv)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(q,), name=f"loader-{i}") for i in range(args.workers)]
    for p in procs:
        p.start()
    end = time.monotonic() + args.seconds
    next_item = time.monotonic()
    while time.monotonic() < end:
        spin(5_000)
        if time.monotonic() >= next_item:
            q.put(1)
            next_item += ITEM_EVERY_S
    for _ in procs:
        q.put(None)
    for p in procs:
        p.join()
    if args.cpu_file:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(args.cpu_file, "w") as f:
            f.write(str(me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
