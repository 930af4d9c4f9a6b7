"""Monitor CPU of gradetop record against py-spy alone, on a busy parent with N mostly-waiting workers.

Variants, interleaved per round so that drift of the machine hits them alike:

    g  gradetop record --no-save -- python bench/loader_job.py --workers N
    w  the same with --sampler py-spy: py-spy windows for every process, as before direct reading
    p  py-spy record -s --idle --nonblocking -r 100 -f speedscope -- python bench/loader_job.py --workers N

Monitor CPU = CPU of the whole reaped tree (RUSAGE_CHILDREN delta) minus the
CPU the job reports for itself and its workers. Prints % of one core over the
job's wall time, and the ratio g/p per N (median of the rounds).

Each round also runs the job for 0 s: what each tool costs to start and end
(gradetop is Python: its imports, numpy's above all, cost about 0.15 CPU-s;
py-spy's start costs next to nothing). The second table splits the first into
that and the steady cost, (10 s run - 0 s run) / 10 s, which is what a job
of minutes or hours pays.

    python bench/bench_sampling.py --quick            # N = 1, 16; 1 round of 5 s
    python bench/bench_sampling.py                    # N = 1, 8, 16, 32; 2 rounds of 10 s
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from _machine import describe

HERE = os.path.dirname(os.path.abspath(__file__))
JOB = os.path.join(HERE, "loader_job.py")


def tool(name: str) -> str:
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.access(here, os.X_OK) else name


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def monitor_cpu(prefix: list[str], workers: int, seconds: float, tmp: str) -> tuple[float, float]:
    """(monitor CPU-s, wall s) of one run."""
    cpu_file = os.path.join(tmp, "cpu")
    job = [sys.executable, JOB, "--workers", str(workers), "--seconds", str(seconds), "--cpu-file", cpu_file]
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(prefix + job, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    total = children_cpu() - cpu0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.decode(errors="replace")[-1500:])
    with open(cpu_file) as f:
        job_cpu = float(f.read())
    return total - job_cpu, wall


def variants(rate: int, tmp: str) -> dict[str, list[str]]:
    return {
        "gradetop": [tool("gradetop"), "record", "--no-save", "--rate", str(rate), "--"],
        "gradetop windows": [tool("gradetop"), "record", "--no-save", "--sampler", "py-spy", "--rate", str(rate), "--"],
        "py-spy": [tool("py-spy"), "record", "-s", "--idle", "--nonblocking", "-r", str(rate), "-f", "speedscope",
                   "-o", os.path.join(tmp, "p.json"), "--"],
    }


def measure(counts: list[int], rounds: int, seconds: float, rate: int) -> dict[int, dict[str, list[tuple[float, float]]]]:
    """Per worker count and variant, per round: (monitor CPU-s of the job of `seconds`, of the job of 0 s)."""
    out: dict[int, dict[str, list[tuple[float, float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cmds = variants(rate, tmp)
        for n in counts:
            out[n] = {name: [] for name in cmds}
            for _ in range(rounds):
                for name, prefix in cmds.items():
                    cpu, _wall = monitor_cpu(prefix, n, seconds, tmp)
                    fixed, _wall = monitor_cpu(prefix, n, 0.0, tmp)
                    out[n][name].append((cpu, fixed))
    return out


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, nargs="*")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--rate", type=int, default=100)
    args = parser.parse_args(argv)
    counts = args.workers or ([1, 16] if args.quick else [1, 8, 16, 32])
    rounds = args.rounds or (1 if args.quick else 2)
    seconds = args.seconds or (5.0 if args.quick else 10.0)
    print(describe())
    results = measure(counts, rounds, seconds, args.rate)
    print(f"monitor CPU, % of one core ({rounds} round(s) of {seconds:g} s, {args.rate} Hz)")
    print(f"{'workers':>8} {'gradetop':>9} {'py-spy -s':>10} {'ratio':>6}   {'py-spy windows':>14} {'ratio':>6}")
    share = {n: {name: statistics.median(cpu / seconds for cpu, _ in runs) for name, runs in r.items()}
             for n, r in results.items()}
    for n, r in share.items():
        g, p, w = r["gradetop"], r["py-spy"], r["gradetop windows"]
        print(f"{n:>8} {g * 100:>8.1f}% {p * 100:>9.1f}% {ratio(g, p):>6.2f}   {w * 100:>13.1f}% {ratio(w, p):>6.2f}")
    print(f"split: start and end (a 0 s job), CPU-s; steady ({seconds:g} s job - 0 s job), % of one core")
    print(f"{'workers':>8} {'gradetop':>9} {'py-spy -s':>10}   {'gradetop':>9} {'py-spy -s':>10} {'ratio':>6}")
    for n, r in results.items():
        fixed = {name: statistics.median(f for _, f in runs) for name, runs in r.items()}
        steady = {name: statistics.median((cpu - f) / seconds for cpu, f in runs) for name, runs in r.items()}
        g, p = steady["gradetop"], steady["py-spy"]
        print(f"{n:>8} {fixed['gradetop']:>8.2f}s {fixed['py-spy']:>9.2f}s   {g * 100:>8.1f}% {p * 100:>9.1f}%"
              f" {ratio(g, p):>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
