"""A concurrent.futures pipeline: a parent waits on 2 worker processes that are busy the whole time.

    python futures_pipeline.py [--truth FILE]

decode_shard spins TASK_S seconds per shard in a ProcessPoolExecutor of 2;
the parent waits in as_completed, its stack unmoved for seconds at a time
while its workers compute: waiting, never stuck. With --truth, writes
{"pipeline": [start, end], "tasks": N}.
"""

import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

TASKS = 4
TASK_S = 2.5


def decode_shard(i):
    end = time.perf_counter() + TASK_S
    x = 0
    while time.perf_counter() < end:
        x += 1
    return i, x


def run_pipeline():
    done = []
    with ProcessPoolExecutor(2) as pool:
        for future in as_completed([pool.submit(decode_shard, i) for i in range(TASKS)]):
            done.append(future.result()[0])
    return done


if __name__ == "__main__":
    start = time.time()
    done = run_pipeline()
    if "--truth" in sys.argv:
        with open(sys.argv[sys.argv.index("--truth") + 1], "w") as f:
            json.dump({"pipeline": [start, time.time()], "tasks": len(done)}, f)
