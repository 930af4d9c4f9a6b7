"""A workload with no markers and four stages of known length, for automatic phases.

main() calls load() (sleeps 1.5 s), preprocess() (spins 2.0 s), train()
(spins 3.0 s, calling step() in a loop) and evaluate() (spins 1.5 s), in that
order. Spins run to a perf_counter deadline, so their wall times hold on a
loaded machine too (train's steps share one deadline: no overshoot adds up).
Before main() the module sleeps 0.6 s: a startup shorter than automatic
phases' minimum, as imports are.

With `--truth FILE`, writes the real epoch times of each stage there as JSON
{name: [start, end]}, so that tests measure gradetop's error, not the machine's.
"""

import json
import sys
import time

STARTUP_S = 0.6
LOAD_S = 1.5
PREPROCESS_S = 2.0
TRAIN_S = 3.0
STEP_S = 0.1
EVALUATE_S = 1.5


def spin(seconds):
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1
    return x


def load():
    time.sleep(LOAD_S)


def preprocess():
    spin(PREPROCESS_S)


def step(seconds):
    spin(seconds)


def train():
    end = time.perf_counter() + TRAIN_S
    while (left := end - time.perf_counter()) > 0:
        step(min(STEP_S, left))


def evaluate():
    spin(EVALUATE_S)


def main():
    truth = {}
    for stage in (load, preprocess, train, evaluate):
        start = time.time()
        stage()
        truth[stage.__name__] = [start, time.time()]
    return truth


if __name__ == "__main__":
    time.sleep(STARTUP_S)
    truth = main()
    if "--truth" in sys.argv:
        with open(sys.argv[sys.argv.index("--truth") + 1], "w") as f:
            json.dump(truth, f)
