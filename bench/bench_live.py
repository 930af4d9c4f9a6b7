"""Overhead of the live view: `gradetop run` drawing in a pseudo-terminal, against py-spy alone and unmonitored.

Variants, interleaved a,r,c, a,r,c, ... (as bench_overhead.py):

    a  python bench/workload.py --work N                                 (unmonitored)
    r  gradetop run -- python bench/workload.py --work N, in an 80x24 pseudo-terminal whose output is read
    c  py-spy record --nonblocking -r 100 -f speedscope -- python ...    (py-spy alone)

`run` keeps its screen open after the workflow ends, so every variant is
timed by the workload itself (`--time-file`: the wall seconds of its work,
interpreter start left out alike). Prints the median of each and the paired
ratios r/a, c/a and r/c (one per round; median [min-max]).

    python bench/bench_live.py --quick     # 3 rounds of ~3 s
    python bench/bench_live.py             # 5 rounds of ~8 s
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time

from _machine import ForeignLoad, describe
from bench_overhead import fmt_ratio, tool

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "workload.py")
LABELS = {"a": "unmonitored", "r": "gradetop run (UI in a pty)", "c": "py-spy --nonblocking"}


def in_terminal(cmd: list[str], time_file: str, timeout_s: float = 120.0) -> None:
    """Run `cmd` in an 80x24 pseudo-terminal, reading all it draws, until `time_file` is written; then quit it."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    proc = subprocess.Popen(cmd, stdin=follower, stdout=follower, stderr=follower, env=env, start_new_session=True)
    os.close(follower)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not (os.path.exists(time_file) and os.path.getsize(time_file)):
            if select.select([leader], [], [], 0.05)[0]:
                try:
                    os.read(leader, 65536)
                except OSError:
                    break
        os.write(leader, b"q")
        end = time.monotonic() + 5
        while proc.poll() is None and time.monotonic() < end:
            if select.select([leader], [], [], 0.05)[0]:
                try:
                    os.read(leader, 65536)
                except OSError:
                    break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        os.close(leader)


def work_seconds(variant: str, work: int, tmp: str, rate: int) -> float:
    time_file = os.path.join(tmp, f"{variant}.time")
    if os.path.exists(time_file):
        os.unlink(time_file)
    target = [sys.executable, WORKLOAD, "--work", str(work), "--time-file", time_file]
    if variant == "a":
        subprocess.run(target, check=True, stdin=subprocess.DEVNULL)
    elif variant == "c":
        subprocess.run([tool("py-spy"), "record", "--nonblocking", "-r", str(rate), "-f", "speedscope",
                        "-o", os.path.join(tmp, "c.json"), "--", *target], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        in_terminal([tool("gradetop"), "run", "--rate", str(rate), "-o", os.path.join(tmp, "r.gtop"), "--", *target],
                    time_file)
    with open(time_file) as f:
        return float(f.read())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--work", type=int)
    parser.add_argument("--rate", type=int, default=100)
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    work = args.work or (900 if args.quick else 2400)
    print(describe(), flush=True)
    foreign = ForeignLoad()
    seconds: dict[str, list[float]] = {v: [] for v in LABELS}
    with tempfile.TemporaryDirectory(prefix="gradetop-live-") as tmp:
        work_seconds("a", work, tmp, args.rate)  # warm-up, not counted
        for r in range(rounds):
            for v in LABELS:
                seconds[v].append(work_seconds(v, work, tmp, args.rate))
            print(f"  round {r + 1}/{rounds}: " + "  ".join(f"{v}={seconds[v][-1]:.2f}s" for v in LABELS), flush=True)
    print(f"\nThe work's own wall seconds, {rounds} rounds (median)")
    for v, label in LABELS.items():
        print(f"  {v} {label:<28} {statistics.median(seconds[v]):.3f}")
    print("\nPaired ratios (one per round): median [min-max]")
    for x, y, what in (("r", "a", "gradetop run / unmonitored"), ("c", "a", "py-spy alone / unmonitored"),
                       ("r", "c", "gradetop run / py-spy alone")):
        print(f"  {x}/{y}  {fmt_ratio([p / q for p, q in zip(seconds[x], seconds[y])])}   {what}")
    print(f"\n{foreign.summary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
