"""A deterministic CPU-bound workload for the benchmarks: fixed WORK, not fixed time.

Four threads each run a share of `--work` units. A unit is a pure-Python loop
(integer arithmetic, a small dict and list churn) reached through a recursive
descent, so the sampled stacks are ~20-30 frames deep like a real training
step, plus a small numpy matmul every few units. With `--child`, one
multiprocessing child does an extra share of the same work, so the monitor
has a second process to find and sample.

It prints nothing and exits 0; the benchmarks time it from outside.

    python bench/workload.py --work 200            # ~1 s of CPU per 100 units on a 2-core box
    python bench/workload.py --work 200 --child
    python bench/workload.py --work 200 --time-file t.txt   # also writes its own wall seconds
"""

from __future__ import annotations

import argparse
import multiprocessing
import threading
import time

import numpy as np

THREADS = 4
DEPTH = 18
"""Recursion depth of the descent before the leaf work: deep, realistic stacks."""
LOOP = 20_000
"""Iterations of the pure-Python leaf loop per unit."""
NUMPY_EVERY = 4
MATRIX = 96


def leaf_python(seed: int) -> int:
    acc = seed
    table: dict[int, int] = {}
    for i in range(LOOP):
        acc = (acc * 1103515245 + 12345 + i) & 0x7FFFFFFF
        if i % 64 == 0:
            table[acc & 1023] = i
    return acc ^ len(table)


def leaf_numpy(seed: int) -> float:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((MATRIX, MATRIX))
    b = a @ a.T
    return float(np.trace(b))


def descend(level: int, unit: int) -> int:
    # Alternate between two functions so the trie has branching, like a model's forward().
    if level == 0:
        out = leaf_python(unit)
        if unit % NUMPY_EVERY == 0:
            out ^= int(leaf_numpy(unit)) & 0xFF
        return out
    if level % 3 == 0:
        return step_a(level - 1, unit)
    return step_b(level - 1, unit)


def step_a(level: int, unit: int) -> int:
    return descend(level, unit) + 1


def step_b(level: int, unit: int) -> int:
    return descend(level, unit) ^ 1


def worker(first: int, count: int, out: list[int], slot: int) -> None:
    acc = 0
    for unit in range(first, first + count):
        # A unit-dependent extra depth: a few hundred distinct stacks over the run.
        acc ^= descend(DEPTH + unit % 7, unit)
    out[slot] = acc


def run(work: int, base: int = 0) -> int:
    share = [work // THREADS + (1 if i < work % THREADS else 0) for i in range(THREADS)]
    out = [0] * THREADS
    threads = []
    first = base
    for i, count in enumerate(share):
        t = threading.Thread(target=worker, args=(first, count, out, i), name=f"worker-{i}")
        threads.append(t)
        first += count
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = 0
    for value in out:
        result ^= value
    return result


def child_main(work: int) -> None:
    run(work, base=1_000_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=int, default=200, help="units of work across the 4 threads (default 200)")
    parser.add_argument("--child", action="store_true", help="also run one multiprocessing child doing the same work")
    parser.add_argument("--time-file", help="write the work's own wall seconds here (bench_live.py: a monitor whose "
                                            "UI stays open after the workflow ends cannot be timed from outside)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    child = None
    if args.child:
        child = multiprocessing.get_context("fork").Process(target=child_main, args=(args.work,), name="workload-child")
        child.start()
    run(args.work)
    if child is not None:
        child.join()
        if child.exitcode != 0:
            return 1
    if args.time_file:
        with open(args.time_file, "w") as f:
            f.write(f"{time.perf_counter() - started:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
