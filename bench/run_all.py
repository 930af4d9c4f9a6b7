"""Every benchmark in one run, and one table of the figures issue 12 asks for, each beside its goal.

    python bench/run_all.py --quick            # the scripts' quick modes: about 5 minutes on 2 cores
    python bench/run_all.py                    # their default modes: about 12 minutes
    python bench/run_all.py --from-logs DIR    # the table again from a run's kept outputs; runs nothing

Runs, one after the other (never side by side: they would measure each other):
bench_overhead.py (1 process, then --child: 2 processes), bench_live.py (the
live `run` drawing in a pseudo-terminal), bench_sampling.py (monitor CPU at 1, 8, 16 and 32 processes against `py-spy record -s --idle
--nonblocking`), bench_latency.py, bench_ingest.py, bench_ui.py, and the
start-up time of `gradetop --help`.

It measures nothing itself but the start-up: every other figure is read from
a script's printed lines, and each script's whole output is kept in a folder
(printed at the end). A row whose line could not be read says why: the script
failed (its exit code and last error line), ran past its time limit, or did
not print the line this file looks for (the pattern is named, so a changed
script shows up here instead of as a wrong number).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from _machine import ForeignLoad, describe

HERE = os.path.dirname(os.path.abspath(__file__))
PROCESSES = (1, 8, 16, 32)
"""Processes in loader_job.py for the monitor-CPU rows: one busy parent and N-1 workers waiting on a queue."""


@dataclass
class Output:
    """What one script printed, and how it ended."""

    key: str
    command: list[str]
    stdout: str
    stderr: str
    rc: int | None
    """Exit code; None when it never ended (timed out) or never started."""
    seconds: float
    failure: str = ""
    """Why there is no output at all (timed out, could not start); empty otherwise."""
    load: str = ""
    """What the rest of the machine used while it ran (_machine.ForeignLoad)."""

    @property
    def script(self) -> str:
        return os.path.basename(self.command[1]) if len(self.command) > 1 else self.key

    def why_not(self, pattern: str) -> str:
        """Why a figure could not be read from this output."""
        script = self.script
        if self.failure:
            return f"not measured: {script} {self.failure}"
        if self.rc:
            errors = [line.strip() for line in self.stderr.splitlines() if line.strip()]
            last = errors[-1] if errors else "no error output"
            return f"not measured: {script} exited {self.rc} ({last[:120]})"
        return f"not read: {script} printed no line matching /{pattern}/"


@dataclass
class Row:
    figure: str
    measured: str
    goal: str
    verdict: str = ""
    """OK or MISSED where the goal is a bound; empty where there is none, or nothing was read."""


def run_script(key: str, script: str, args: list[str], logs: str, timeout_s: float) -> Output:
    cmd = [sys.executable, os.path.join(HERE, script), *args]
    started = time.perf_counter()
    print(f"  {key}: {' '.join([script, *args])}", end=" ... ", flush=True)
    foreign = ForeignLoad()  # measured here for every script alike: not all of them print it
    try:
        # Its own session, so that a script past its limit is stopped with everything it started (py-spy, workloads).
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
    except OSError as exc:
        out = Output(key, cmd, "", str(exc), None, 0.0, failure=f"could not start ({exc})")
    else:
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
            out = Output(key, cmd, stdout, stderr, proc.returncode, time.perf_counter() - started)
        except subprocess.TimeoutExpired:
            stdout, stderr = stop_group(proc)
            out = Output(key, cmd, stdout, stderr, None, time.perf_counter() - started,
                         failure=f"ran past its {timeout_s:.0f} s limit and was stopped")
        except KeyboardInterrupt:
            stop_group(proc)
            raise
    out.load = foreign.summary()
    save(out, logs)
    print(f"{out.seconds:.0f} s" + (f", exit {out.rc}" if out.rc else "") + (f", {out.failure}" if out.failure else ""),
          flush=True)
    return out


def stop_group(proc: subprocess.Popen) -> tuple[str, str]:
    """SIGTERM to the script's whole process group, SIGKILL 5 s later if needed; what it printed until then."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            return proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            continue
    return proc.communicate()


def save(out: Output, logs: str) -> None:
    with open(os.path.join(logs, out.key + ".txt"), "w") as f:
        f.write(out.stdout + ("\n--- stderr ---\n" + out.stderr if out.stderr.strip() else ""))
    with open(os.path.join(logs, out.key + ".json"), "w") as f:
        json.dump({"command": out.command, "rc": out.rc, "seconds": out.seconds, "failure": out.failure,
                   "stderr": out.stderr, "load": out.load}, f)


def load(key: str, logs: str) -> Output:
    try:
        with open(os.path.join(logs, key + ".json")) as f:
            meta = json.load(f)
        with open(os.path.join(logs, key + ".txt")) as f:
            stdout = f.read().split("\n--- stderr ---\n")[0]
    except OSError as exc:
        return Output(key, [key], "", "", None, 0.0, failure=f"has no kept output ({exc.strerror})")
    return Output(key, meta["command"], stdout, meta["stderr"], meta["rc"], meta["seconds"], meta["failure"],
                  meta.get("load", ""))


def startup(logs: str, repeats: int = 5) -> Output:
    """Wall seconds of `gradetop --help`, after one run that warms the page cache; kept like a script's output."""
    gradetop = os.path.join(os.path.dirname(sys.executable), "gradetop")
    cmd = [gradetop, "--help"]
    walls, rc, err = [], 0, ""
    for i in range(repeats + 1):
        t = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            rc, err = -1, str(exc)
            break
        wall = time.perf_counter() - t
        if proc.returncode:
            rc, err = proc.returncode, proc.stderr
            break
        if i:
            walls.append(wall)
    text = "".join(f"gradetop --help: {w:.3f} s\n" for w in walls)
    if walls:
        text += f"median {statistics.median(walls):.3f} s, max {max(walls):.3f} s over {len(walls)} runs\n"
    out = Output("startup", ["", "gradetop --help"], text, err, rc, sum(walls))
    save(out, logs)
    return out


def steps(quick: bool) -> list[tuple[str, str, list[str]]]:
    q = ["--quick"] if quick else []
    workers = [str(n - 1) for n in PROCESSES]
    # Two rounds even in quick mode: on a shared machine one round of this ratio swings the most.
    sampling = ["--workers", *workers] + (["--rounds", "2", "--seconds", "5"] if quick else [])
    return [
        ("overhead1", "bench_overhead.py", q),
        ("overhead2", "bench_overhead.py", [*q, "--child"]),
        ("live", "bench_live.py", q),
        ("sampling", "bench_sampling.py", sampling),
        ("latency", "bench_latency.py", q),
        ("ingest", "bench_ingest.py", q),
        ("ui", "bench_ui.py", q),
    ]


def num(text: str) -> float:
    return float(text.replace(",", ""))


def bound(value: float, limit: float, below: bool = True) -> str:
    return "OK" if (value <= limit if below else value >= limit) else "MISSED"


def table(out: dict[str, Output], quick: bool) -> list[Row]:
    rows: list[Row] = []

    def read(key: str, pattern: str, figure: str, goal: str, show, judge=None) -> None:
        """One row: `show(match)` gives the text, `judge(match)` the verdict; or why the line was not there."""
        m = re.search(pattern, out[key].stdout, re.MULTILINE)
        if m is None:
            rows.append(Row(figure, out[key].why_not(pattern), goal))
        else:
            # A script that printed its figures but then failed (a run or a report, or it timed out): say so beside them.
            o = out[key]
            failed = f" (but {o.script} {o.failure or f'exited {o.rc}'})" if o.rc or o.failure else ""
            rows.append(Row(figure, show(m) + failed, goal, judge(m) if judge else ""))

    # bench_overhead.py: "  b/c   1.050  [0.920-1.140]   gradetop / py-spy nonblocking"
    ratio = r"^\s+{}\s+([\d.]+)\s+\[([\d.]+)-([\d.]+)\]"
    for n, key in ((1, "overhead1"), (2, "overhead2")):
        spy = re.search(ratio.format("c/a"), out[key].stdout, re.MULTILINE)
        read(key, ratio.format("b/c"), f"overhead, {n} process{'es' * (n > 1)}: gradetop / py-spy alone (wall)",
             "<= 1.01 (goal 1.00)", lambda m: f"{m[1]} [{m[2]}-{m[3]}]", lambda m: bound(num(m[1]), 1.01))
        read(key, ratio.format("b/a"), f"overhead, {n} process{'es' * (n > 1)}: gradetop / unmonitored (wall)",
             f"none set; py-spy alone: {spy[1] if spy else '?'}", lambda m: f"{m[1]} [{m[2]}-{m[3]}]")

    # bench_live.py: "  r/c    1.189  [1.109-1.195]   gradetop run / py-spy alone"
    read("live", ratio.format("r/c"), "overhead, live `run` drawing in a pty: gradetop / py-spy alone (wall)",
         "<= 1.01 (goal 1.00)", lambda m: f"{m[1]} [{m[2]}-{m[3]}]", lambda m: bound(num(m[1]), 1.01))

    # bench_sampling.py: one line per worker count:
    # "       7      10.7%      16.8%   0.63            11.4%   0.68" (the last two: gradetop with py-spy windows)
    for n in PROCESSES:
        goal = "<= 1.0" + ("; <= 0.5 at 16+" if n >= 16 else "")
        limit = 0.5 if n >= 16 else 1.0
        read("sampling", rf"^\s*{n - 1}\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+|nan)\s+([\d.]+)%\s+([\d.]+|nan)\s*$",
             f"monitor CPU, {n} process{'es' * (n > 1)}: gradetop / py-spy -s --idle",
             goal, lambda m: f"{m[3]} ({m[1]}% vs {m[2]}% of a core; py-spy windows {m[5]})",
             lambda m: "" if m[3] == "nan" else bound(num(m[3]), limit))
    # its split: "       0     0.16s      0.02s        3.0%       3.7%   0.81" (start and end CPU-s, then steady)
    for n in PROCESSES:
        read("sampling", rf"^\s*{n - 1}\s+([\d.]+)s\s+([\d.]+)s\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+|nan)\s*$",
             f"  of which steady (less start and end), {n} process{'es' * (n > 1)}", "none set (long jobs pay this)",
             lambda m: f"{m[5]} ({m[3]}% vs {m[4]}%; start and end {m[1]} vs {m[2]} CPU-s)")

    # Coverage: gradetop report on the overhead runs; profile.coverage in bench_latency.
    cov = r"^\s+coverage\s+([\d.]+)%\s+\[([\d.]+)-([\d.]+)\]"
    short = " (3 s runs)" if quick else ""
    for n, key in ((1, "overhead1"), (2, "overhead2")):
        read(key, cov, f"coverage, {n} process{'es' * (n > 1)}: gradetop report{short}", ">= 99%",
             lambda m: f"{m[1]}% [{m[2]}-{m[3]}]", lambda m: bound(num(m[1]), 99.0, below=False))
    read("latency", r"^\s+coverage \(root process\)\s+([\d.]+)%", "coverage: bench_latency, profile.coverage",
         ">= 99%", lambda m: f"{m[1]}%", lambda m: bound(num(m[1]), 99.0, below=False))

    # bench_latency.py rows: label, then median p95 max min in ms.
    ms = r"\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+ms"
    read("latency", r"^\s+age at arrival: window start -> model" + ms,
         "sample age on arrival in the model, ms: p50 p95 max", "max <= 1000",
         lambda m: f"{m[1]} / {m[2]} / {m[3]}", lambda m: bound(num(m[3]), 1000))
    read("latency", r"^\s+latency: window end -> in model" + ms,
         "latency, window end to model, ms: p50 p95 max", "(part of the above)",
         lambda m: f"{m[1]} / {m[2]} / {m[3]}")
    read("latency", r"samples older than 1 s on arrival: (\d+) of (\d+) windows",
         "windows whose oldest sample was > 1 s old on arrival", "0",
         lambda m: f"{m[1]} of {m[2]}", lambda m: bound(num(m[1]), 0))

    # bench_ingest.py
    read("ingest", r"^\s+with readings \(active-time join\)\s+[\d.]+\s+([\d,]+)\s+([\d,]+)-([\d,]+)",
         "ingest rate, samples/s (with the kernel join)", ">= 1,000,000",
         lambda m: f"{m[1]} [{m[2]}-{m[3]}]", lambda m: bound(num(m[1]), 1e6, below=False))
    read("ingest", r"^\s+ingest rate over the run\s+([\d,]+) samples/s",
         "ingest rate over the memory run (compaction included)", ">= 1,000,000",
         lambda m: m[1], lambda m: bound(num(m[1]), 1e6, below=False))
    for what, label in (("Profile.nbytes", "Profile.nbytes"), ("process RSS growth", "RSS growth")):
        read("ingest", rf"^\s+first hour: {re.escape(what)}\s+([\d.]+) MB/h",
             f"memory, first hour at 100 Hz x 8 threads, MB: {label}", "<= 50",
             lambda m: m[1], lambda m: bound(num(m[1]), 50))
        if not quick:  # the default mode runs 2 hours; later hours have no raw last-10-minutes to pay again
            read("ingest", rf"^\s+hours [\d.]+-[\d.]+: {re.escape(what)}\s+([\d.]+) MB/h",
                 f"memory, each later hour, MB: {label}", "<= 50",
                 lambda m: m[1], lambda m: bound(num(m[1]), 50))

    # bench_ui.py: "flame 200x60, 20412 nodes: view ... = 2.5 ms on the UI thread (goal <= 30 ms)"
    for size in ("200x60", "80x24"):
        read("ui", rf"^flame {size}, (\d+) nodes: view ([\d.]+) ms .* = ([\d.]+) ms on the UI thread",
             f"flame frame, {size}, UI thread ms", "<= 30",
             lambda m: f"{m[3]} ({m[1]} nodes; view {m[2]} ms in a worker)", lambda m: bound(num(m[3]), 30))
    screen = r"newest sample ([\d.]+) s median, ([\d.]+) s max; oldest new sample ([\d.]+) s median, ([\d.]+) s max"
    read("ui", screen, "sample-to-screen, s: newest sample median, max", "max <= 1",
         lambda m: f"{m[1]}, {m[2]}", lambda m: bound(num(m[2]), 1.0))
    read("ui", screen, "sample-to-screen, s: oldest new sample median, max", "max <= 1",
         lambda m: f"{m[3]}, {m[4]}", lambda m: bound(num(m[4]), 1.0))

    read("startup", r"^median ([\d.]+) s, max ([\d.]+) s over (\d+) runs", "start-up: gradetop --help, s",
         "none set", lambda m: f"{m[1]} median, {m[2]} max ({m[3]} runs)")
    return rows


def render(rows: list[Row]) -> str:
    """Figure, goal, verdict, measured: the measured column comes last, so a long reason why not stays in line."""
    head = Row("figure", "measured", "goal", "verdict")
    widths = [max(len(getattr(r, f)) for r in [head, *rows]) for f in ("figure", "goal", "verdict")]
    return "\n".join(f"{r.figure:<{widths[0]}}  {r.goal:<{widths[1]}}  {r.verdict:<{widths[2]}}  {r.measured}".rstrip()
                     for r in [head, *rows])


def report_load(out: dict[str, Output], keys: list[str]) -> str:
    """While each script ran, what the rest of the machine used: where it is high, trust ratios over walls."""
    return "\n".join([f"{key:<10} {out[key].load or '(not measured)'}" for key in keys])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every script's quick mode: about 4 minutes")
    parser.add_argument("--from-logs", metavar="DIR", help="print the table from the outputs kept in DIR; run nothing")
    args = parser.parse_args(argv)
    keys = [key for key, _, _ in steps(args.quick)] + ["startup"]
    if args.from_logs:
        out = {key: load(key, args.from_logs) for key in keys}
        quick = "--quick" in out["overhead1"].command
        print(render(table(out, quick)))
        print()
        print(report_load(out, keys[:-1]))
        return 0

    logs = tempfile.mkdtemp(prefix="gradetop-bench-all-")
    limit = 420.0 if args.quick else 1200.0
    print(describe(), flush=True)
    foreign = ForeignLoad()
    started = time.perf_counter()
    out = {key: run_script(key, script, script_args, logs, limit) for key, script, script_args in steps(args.quick)}
    out["startup"] = startup(logs)
    rows = table(out, args.quick)
    print()
    print(render(rows))
    print()
    print(report_load(out, keys[:-1]))
    print(f"{'all':<10} {foreign.summary()}")
    missed = sum(r.verdict == "MISSED" for r in rows)
    unread = sum(r.measured.startswith("not ") for r in rows)
    print(f"\n{len(rows)} figures in {time.perf_counter() - started:.0f} s: {missed} missed their goal, "
          f"{unread} could not be read. Whole outputs: {logs}")
    return 1 if unread else 0


if __name__ == "__main__":
    raise SystemExit(main())
