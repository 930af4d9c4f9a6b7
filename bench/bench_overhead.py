"""Overhead of monitoring: the same fixed-work workload unmonitored, under gradetop, under py-spy alone.

Variants, interleaved a,b,w,c,d, a,b,w,c,d, ... so that drift of the machine hits
them all alike:

    a  python bench/workload.py --work N                       (unmonitored)
    b  gradetop record -o tmp.gtop -- python bench/workload.py  (gradetop)
    w  the same with --sampler py-spy (py-spy windows, as before direct reading)
    c  py-spy record --nonblocking -r 100 -f speedscope -o tmp.json -- python ...
    d  py-spy record -r 100 -f speedscope -o tmp.json -- python ...  (blocking, py-spy's default)

Prints the median wall time of each variant and the paired ratios b/a, c/a,
d/a, b/c (one ratio per round, then their median and min-max), gradetop's
coverage and achieved rate (from `gradetop report --json`), and the CPU
seconds the monitor itself used: RUSAGE_CHILDREN deltas around each run,
minus the workload's own CPU (the median of the unmonitored runs).

    python bench/bench_overhead.py --quick     # 3 rounds of ~3 s runs, ~50 s
    python bench/bench_overhead.py             # 5 rounds of ~8 s runs, ~3.5 min
    python bench/bench_overhead.py --child     # the workload also forks a busy child (both cores busy)
    python bench/bench_overhead.py --same-args # py-spy alone with gradetop's own window arguments (like for like)
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

from _machine import ForeignLoad, describe

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "workload.py")
VARIANTS = ("a", "b", "w", "c", "d")
LABELS = {
    "a": "unmonitored",
    "b": "gradetop record",
    "w": "gradetop, py-spy windows",
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


def commands(work: int, child: bool, rate: int, tmp: str, same_args: bool) -> dict[str, list[str]]:
    target = [sys.executable, WORKLOAD, "--work", str(work)] + (["--child"] if child else [])
    pyspy = tool("py-spy")
    gtop, spy_json = os.path.join(tmp, "tmp.gtop"), os.path.join(tmp, "tmp.json")
    sub = ["-s"] if child else []  # py-spy alone samples the child too, as gradetop does by default
    if same_args:
        # Exactly what gradetop's windows ask py-spy for (StackOptions.args), in one long recording.
        from gradetop.collectors.window import StackOptions

        c = [pyspy, *StackOptions(rate_hz=rate, blocking=False).args(), *sub]
        d = [pyspy, *StackOptions(rate_hz=rate, blocking=True).args(), *sub]
    else:
        c = [pyspy, "record", "--nonblocking", "-r", str(rate), "-f", "speedscope", *sub]
        d = [pyspy, "record", "-r", str(rate), "-f", "speedscope", *sub]
    return {
        "a": target,
        "b": [tool("gradetop"), "record", "--rate", str(rate), "-o", gtop, "--", *target],
        "w": [tool("gradetop"), "record", "--sampler", "py-spy", "--rate", str(rate), "-o", gtop + ".w", "--", *target],
        "c": [*c, "-o", spy_json, "--", *target],
        "d": [*d, "-o", spy_json, "--", *target],
    }


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(cmd: list[str], split: dict | None = None) -> tuple[float, float, int]:
    """(wall s, CPU s of the whole reaped process tree, exit code).

    With `split`, the monitor process is polled (10 Hz, psutil) while its
    target lives: its own CPU and its reaped children's (the py-spy windows)
    are stored there, as last seen before the target exited (so up to 0.1 s
    short).
    """
    cpu0 = children_cpu()
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    if split is None:
        proc.wait()
    else:
        poll_monitor(proc, split)
    wall = time.perf_counter() - t0
    cpu = children_cpu() - cpu0
    if proc.returncode != 0:
        err.seek(0)
        sys.stderr.write(f"bench_overhead: {' '.join(cmd[:3])} ... exited {proc.returncode}\n")
        sys.stderr.write(err.read().decode(errors="replace")[-2000:])
    err.close()
    return wall, cpu, proc.returncode


def poll_monitor(proc: subprocess.Popen, split: dict) -> None:
    import psutil

    me = psutil.Process(proc.pid)
    target = None
    split.update(self_s=float("nan"), windows_s=float("nan"))

    def alive(p) -> bool:
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    while True:
        try:
            proc.wait(0.1)
            return
        except subprocess.TimeoutExpired:
            pass
        try:
            if target is None:
                # The monitor's child that is not py-spy: the workload it spawned.
                target = next((c for c in me.children() if "py-spy" not in c.name()), None)
                if target is None:
                    continue
            times = me.cpu_times()
            # Accept only readings taken while the target still ran: once reaped, its CPU joins the children's.
            if alive(target):
                split["self_s"] = times.user + times.system
                split["windows_s"] = times.children_user + times.children_system
        except psutil.Error:
            continue


def snapshot_edges(path: str) -> dict:
    """Where gradetop's coverage loses time: before the first sample and after the last (root process)."""
    from gradetop.model.snapshot import load

    p = load(path)
    root = p.processes.get(p.meta.target_pid)
    tl = p.timeline
    mask = tl.pid == p.meta.target_pid
    if root is None or not mask.any():
        return {"start_gap_s": float("nan"), "end_gap_s": float("nan"), "sampled_s": float("nan")}
    t, w = tl.t[mask], tl.w[mask]
    first = float((t - w / 2).min())
    last = float((t + w / 2).max())
    end = root.end_time or p.meta.end_time
    return {
        "start_gap_s": first - max(p.meta.start_time, root.create_time or 0.0),
        "end_gap_s": end - last,
        "sampled_s": root.sampled_s,
        "life_s": end - max(p.meta.start_time, root.create_time or 0.0),
    }


def gradetop_report(path: str) -> dict | None:
    out = subprocess.run([tool("gradetop"), "report", path, "--json"], capture_output=True)
    if out.returncode != 0:
        sys.stderr.write(f"bench_overhead: gradetop report exited {out.returncode}: "
                         f"{out.stderr.decode(errors='replace').strip()[-1500:]}\n")
        return None
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
    parser.add_argument("--work", type=int, help="workload units (default 2400 ~8 s, quick 900 ~3 s)")
    parser.add_argument("--child", action="store_true", help="the workload also runs a multiprocessing child")
    parser.add_argument("--rate", type=int, default=100, help="sampling rate, Hz (default 100)")
    parser.add_argument("--same-args", action="store_true",
                        help="run py-spy alone with gradetop's own window arguments (StackOptions.args(): --idle -t ...): "
                             "like for like, and its achieved rate can be counted")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    work = args.work or (900 if args.quick else 2400)

    tmp = tempfile.mkdtemp(prefix="gradetop-bench-")
    walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpus: dict[str, list[float]] = {v: [] for v in VARIANTS}
    reports: list[dict] = []
    edges: list[dict] = []
    splits: list[dict] = []
    spy_rate: dict[str, list[float]] = {"c": [], "d": []}
    failures = 0
    try:
        cmds = commands(work, args.child, args.rate, tmp, args.same_args)
        print(describe(), flush=True)
        foreign = ForeignLoad()
        timed(cmds["a"])  # warm-up (imports, page cache), not counted
        print(f"bench_overhead: workload --work {work}{' --child' if args.child else ''}, "
              f"{rounds} rounds of a,b,c,d at {args.rate} Hz, {os.cpu_count()} CPUs"
              f"{', py-spy alone with gradetop window args' if args.same_args else ''}", flush=True)
        for r in range(rounds):
            line = []
            for v in VARIANTS:
                split = {} if v == "b" else None
                wall, cpu, rc = timed(cmds[v], split)
                failures += rc != 0
                walls[v].append(wall)
                cpus[v].append(cpu)
                line.append(f"{v}={wall:.2f}s")
                if v == "b":
                    splits.append(split)
                    gtop = os.path.join(tmp, "tmp.gtop")
                    rep = gradetop_report(gtop)
                    if rep is None:
                        failures += 1
                    else:
                        reports.append(rep)
                    try:
                        edges.append(snapshot_edges(gtop))
                    except Exception as exc:  # a snapshot this version cannot read: say so, keep timing
                        sys.stderr.write(f"bench_overhead: cannot read the snapshot: {exc}\n")
                elif v in spy_rate and args.same_args:
                    spy_rate[v].append(pyspy_rate(os.path.join(tmp, "tmp.json"), wall))
            cov = f"{reports[-1]['coverage']:.4f}" if reports else "?"
            print(f"  round {r + 1}/{rounds}: " + "  ".join(line) + f"  gradetop coverage={cov}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base_cpu = statistics.median(cpus["a"])
    print()
    print(f"Wall and CPU seconds, {rounds} rounds (monitor CPU = run CPU - median unmonitored CPU {base_cpu:.2f} s;"
          f" % = monitor CPU / wall)")
    print(f"  {'variant':<24} {'median wall':>11} {'min':>7} {'max':>7} {'run CPU':>8} {'monitor CPU':>11} {'% core':>7}")
    for v in VARIANTS:
        m, lo, hi = med_spread(walls[v])
        cpu = statistics.median(cpus[v])
        if v == "a":
            mon_s, share_s = f"{'-':>11}", f"{'-':>7}"
        else:
            extra = [c - base_cpu for c in cpus[v]]
            mon_s = f"{statistics.median(extra):11.2f}"
            share_s = f"{statistics.median([e / w for e, w in zip(extra, walls[v])]) * 100:6.1f}%"
        print(f"  {v} {LABELS[v]:<22} {m:11.3f} {lo:7.3f} {hi:7.3f} {cpu:8.2f} {mon_s} {share_s}")
    self_s = [s["self_s"] for s in splits if s.get("self_s") == s.get("self_s")]
    win_s = [s["windows_s"] for s in splits if s.get("windows_s") == s.get("windows_s")]
    if self_s and win_s:
        wall_b = statistics.median(walls["b"])
        print(f"  b split (polled, <=0.1 s short): gradetop python process {statistics.median(self_s):.2f} s "
              f"({statistics.median(self_s) / wall_b * 100:.1f}% core), its py-spy windows "
              f"{statistics.median(win_s):.2f} s ({statistics.median(win_s) / wall_b * 100:.1f}% core)")

    def ratios(x: str, y: str) -> list[float]:
        return [p / q for p, q in zip(walls[x], walls[y])]

    print()
    print("Paired wall-time ratios (one per round): median [min-max]")
    for x, y, what in (("b", "a", "gradetop / unmonitored"), ("c", "a", "py-spy nonblocking / unmonitored"),
                       ("d", "a", "py-spy blocking / unmonitored"), ("b", "c", "gradetop / py-spy nonblocking"),
                       ("w", "c", "gradetop with py-spy windows (--sampler py-spy) / py-spy nonblocking")):
        print(f"  {x}/{y}  {fmt_ratio(ratios(x, y))}   {what}")

    print()
    print("Sampling (gradetop report --json)")
    if not reports:
        print("  no report could be read")
        return 1
    cov = [r["coverage"] for r in reports]
    rate = [r["achieved_rate_hz"] for r in reports]
    cm, clo, chi = med_spread(cov)
    am, alo, ahi = med_spread(rate)
    print(f"  coverage                   {cm * 100:6.2f}%  [{clo * 100:.2f}-{chi * 100:.2f}]   target >= 98%")
    print(f"  achieved rate              {am:6.1f} Hz [{alo:.1f}-{ahi:.1f}]   asked {args.rate} Hz")
    print(f"  samples                    {int(statistics.median(r['samples'] for r in reports)):6d}")
    sg = [e["start_gap_s"] for e in edges if e["start_gap_s"] == e["start_gap_s"]]
    eg = [e["end_gap_s"] for e in edges if e["end_gap_s"] == e["end_gap_s"]]
    if sg and eg:
        print(f"  unsampled at start         {statistics.median(sg) * 1000:6.0f} ms [{min(sg) * 1000:.0f}-{max(sg) * 1000:.0f}]"
              "   profile start -> first sample")
        print(f"  unsampled at end           {statistics.median(eg) * 1000:6.0f} ms [{min(eg) * 1000:.0f}-{max(eg) * 1000:.0f}]"
              "   last sample -> recorded end of the target")
    for v in ("c", "d"):
        rates = [x for x in spy_rate[v] if x == x]
        if rates:
            m, lo, hi = med_spread(rates)
            print(f"  {LABELS[v]:<26} {m:6.1f} Hz [{lo:.1f}-{hi:.1f}]   its ticks / whole wall (startup included)")
    print()
    print(foreign.summary())
    if failures:
        print(f"\n{failures} run(s) or report(s) failed: see stderr above")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
