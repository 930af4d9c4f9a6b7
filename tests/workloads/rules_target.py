"""Functions of known duration for phase rules (no markers); test_phases writes the rules file.

Rules used: "ingest" for function "read_*", "fit" for function "fit_model".

    read_config   sleeps 0.5 s        -> ingest
    settle        sleeps 0.3 s        (no rule: splits the two ingest phases)
    read_table    spins 1.0 s         -> ingest
    fit_model     spins 1.2 s, then read_batch sleeps 0.4 s
                                      -> fit 1.6 s, containing fit/ingest 0.4 s

With `--truth FILE`, writes the real epoch times of each function there as
JSON {name: [start, end]}.
"""

import json
import sys
import time

READ_CONFIG_S = 0.5
SETTLE_S = 0.3
READ_TABLE_S = 1.0
FIT_SPIN_S = 1.2
READ_BATCH_S = 0.4

truth = {}


def timed(func):
    def run():
        start = time.time()
        func()
        truth[func.__name__] = [start, time.time()]
    return run


def spin(seconds):
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1
    return x


def read_config():
    time.sleep(READ_CONFIG_S)


def settle():
    time.sleep(SETTLE_S)


def read_table():
    spin(READ_TABLE_S)


def read_batch():
    time.sleep(READ_BATCH_S)


def fit_model():
    spin(FIT_SPIN_S)
    timed(read_batch)()


def main():
    for func in (read_config, settle, read_table, fit_model):
        timed(func)()


if __name__ == "__main__":
    time.sleep(0.3)  # let the monitor attach before the measured part
    main()
    time.sleep(0.2)
    if "--truth" in sys.argv:
        with open(sys.argv[sys.argv.index("--truth") + 1], "w") as f:
            json.dump(truth, f)
