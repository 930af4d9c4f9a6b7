"""Overhead of monitoring: the same fixed-work workload unmonitored, under gradetop, under py-spy alone.

Variants, interleaved a,b,c,d, a,b,c,d, ... so that drift of the machine hits
them all alike:

    a  python bench/workload.py --work N                       (unmonitored)
    b  gradetop record -o tmp.gtop -- python bench/workload.py  (gradetop)
    c  py-spy record --nonblocking -r 100 -f speedscope -o tmp.json -- python ...
    d  py-spy record -r 100 -f speedscope -o tmp.json -- python ...  (blocking, py-spy's default)

Prints the median wall time of each variant and the paired ratios b/a, c/a,
d/a, b/c (one ratio per round, then their median and min-max), gradetop's
coverage and achieved rate (from `gradetop report --json`), and the CPU
seconds the monitor itself used: RUSAGE_CHILDREN deltas around each run,
minus the workload's own CPU (the median of the unmonitored runs).

    python bench/bench_overhead.py --quick     # 3 rounds, ~45 s
    python bench/bench_overhead.py             # 5 rounds, longer runs, ~3 min
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "workload.py")
VARIANTS = ("a", "b", "c", "d")
LABELS = {
    "a": "unmonitored",
    "b": "gradetop record",
    "c": "py-spy --nonblocking",
    "d": "py-spy (blocking)",
}


def tool(name: str) -> str:
    """The console script beside this Python (the venv's), else the one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(here, os.X_OK):
        return here
    found = shutil.which(name)
    if not found:
        sys.exit(f"bench_overhead: {name} not found (activate the virtualenv)")
    return found


def commands(work: int, child: bool, rate: int, tmp: str) -> dict[str, list[str]]:
    target = [sys.executable, WORKLOAD, "--work", str(work)] + (["--child"] if child else [])
    pyspy = tool("py-spy")
    gtop, spy_json = os.path.join(tmp, "tmp.gtop"), os.path.join(tmp, "tmp.json")
    # py-spy alone samples the children too when the workload has one (gradetop does by default).
    sub = ["-s"] if child else []
    return {
        "a": target,
        "b": [tool("gradetop"), "record", "--rate", str(rate), "-o", gtop, "--", *target],
        "c": [pyspy, "record", "--nonblocking", "-r", str(rate), "-f", "speedscope", *sub, "-o", spy_json, "--", *target],
        "d": [pyspy, "record", "-r", str(rate), "-f", "speedscope", *sub, "-o", spy_json, "--", *target],
    }


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(cmd: list[str]) -> tuple[float, float, int]:
    """(wall s, CPU s of the whole reaped process tree, exit code)."""
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    cpu = children_cpu() - cpu0
    if proc.returncode != 0:
        sys.stderr.write(f"bench_overhead: {' '.join(cmd[:3])} ... exited {proc.returncode}\n")
        sys.stderr.write(proc.stderr.decode(errors="replace")[-2000:])
    return wall, cpu, proc.returncode


def gradetop_report(path: str) -> dict:
    out = subprocess.run([tool("gradetop"), "report", path, "--json"], capture_output=True, check=True)
    return json.loads(out.stdout)


def pyspy_rate(path: str, wall: float) -> float:
    """Ticks per second py-spy achieved alone: the most samples any thread got, over the run's wall time."""
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return float("nan")
    ticks = max((len(p.get("samples", [])) for p in doc.get("profiles", [])), default=0)
    return ticks / wall if wall > 0 else float("nan")


def med_spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def fmt_ratio(values: list[float]) -> str:
    m, lo, hi = med_spread(values)
    return f"{m:6.3f}  [{lo:.3f}-{hi:.3f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of shorter runs (< ~60 s)")
    parser.add_argument("--rounds", type=int, help="rounds of a,b,c,d (default 5, quick 3)")
    parser.add_argument("--work", type=int, help="workload units (default 1400 ~5 s, quick 700 ~2.5 s)")
    parser.add_argument("--child", action="store_true", help="the workload also runs a multiprocessing child")
    parser.add_argument("--rate", type=int, default=100, help="sampling rate, Hz (default 100)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    work = args.work or (700 if args.quick else 1400)

    tmp = tempfile.mkdtemp(prefix="gradetop-bench-")
    try:
        cmds = commands(work, args.child, args.rate, tmp)
        walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
        cpus: dict[str, list[float]] = {v: [] for v in VARIANTS}
        coverage, achieved, samples = [], [], []
        spy_rate: dict[str, list[float]] = {"c": [], "d": []}
        failures = 0

        # Warm-up (imports, page cache), not counted.
        timed(cmds["a"])
        print(f"bench_overhead: workload --work {work}{' --child' if args.child else ''}, "
              f"{rounds} rounds of a,b,c,d at {args.rate} Hz, {os.cpu_count()} CPUs", flush=True)
        for r in range(rounds):
            line = []
            for v in VARIANTS:
                wall, cpu, rc = timed(cmds[v])
                failures += rc != 0
                walls[v].append(wall)
                cpus[v].append(cpu)
                line.append(f"{v}={wall:.2f}s")
                if v == "b":
                    rep = gradetop_report(os.path.join(tmp, "tmp.gtop"))
                    coverage.append(rep["coverage"])
                    achieved.append(rep["achieved_rate_hz"])
                    samples.append(rep["samples"])
                elif v in spy_rate:
                    spy_rate[v].append(pyspy_rate(os.path.join(tmp, "tmp.json"), wall))
            print(f"  round {r + 1}/{rounds}: " + "  ".join(line) + f"  coverage={coverage[-1]:.4f}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base_cpu = statistics.median(cpus["a"])
    print()
    print(f"Wall time (s) and CPU (s) over {rounds} rounds; monitor CPU = run CPU - median unmonitored CPU "
          f"({base_cpu:.2f} s)")
    print(f"  {'variant':<24} {'median wall':>11} {'min':>7} {'max':>7} {'run CPU':>8} {'monitor CPU':>11} {'% of a core':>11}")
    for v in VARIANTS:
        m, lo, hi = med_spread(walls[v])
        cpu = statistics.median(cpus[v])
        extra = [c - base_cpu for c in cpus[v]]
        mon = statistics.median(extra) if v != "a" else 0.0
        share = statistics.median([e / w for e, w in zip(extra, walls[v])]) * 100 if v != "a" else 0.0
        mon_s = f"{mon:11.2f}" if v != "a" else f"{'-':>11}"
        share_s = f"{share:10.1f}%" if v != "a" else f"{'-':>11}"
        print(f"  {v} {LABELS[v]:<22} {m:11.3f} {lo:7.3f} {hi:7.3f} {cpu:8.2f} {mon_s} {share_s}")

    def ratios(x: str, y: str) -> list[float]:
        return [p / q for p, q in zip(walls[x], walls[y])]

    print()
    print("Paired wall-time ratios (per round): median [min-max]")
    for x, y, what in (("b", "a", "gradetop / unmonitored"), ("c", "a", "py-spy nonblocking / unmonitored"),
                       ("d", "a", "py-spy blocking / unmonitored"), ("b", "c", "gradetop / py-spy nonblocking")):
        print(f"  {x}/{y}  {fmt_ratio(ratios(x, y))}   {what}")

    print()
    print("Sampling")
    cm, clo, chi = med_spread(coverage)
    am, alo, ahi = med_spread(achieved)
    print(f"  gradetop coverage          {cm * 100:6.2f}%  [{clo * 100:.2f}-{chi * 100:.2f}]   target >= 98%")
    print(f"  gradetop achieved rate     {am:6.1f} Hz [{alo:.1f}-{ahi:.1f}]   asked {args.rate} Hz")
    print(f"  gradetop samples           {int(statistics.median(samples)):6d}")
    for v in ("c", "d"):
        rates = [x for x in spy_rate[v] if x == x]
        if rates:
            m, lo, hi = med_spread(rates)
            print(f"  {LABELS[v]:<26} {m:6.1f} Hz [{lo:.1f}-{hi:.1f}]   ticks / whole wall (startup included)")
    if failures:
        print(f"\n{failures} run(s) exited non-zero: see stderr above")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
