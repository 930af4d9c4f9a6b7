"""How fresh the model is: a real workload under collectors.monitor.Monitor, sample windows timed end to end.

Spawns `python bench/workload.py` (sized to outlast the run), starts
Profile + Monitor(profile, pid) on it as `gradetop record` does, lets it run
~10 s (--quick) or 30 s, stops the monitor and prints:

- coverage (profile.coverage, and the share of [profile start, last window
  end] that the root's windows cover) and the achieved rate;
- latency: monitor.latencies, seconds from a window's end to its samples
  being in the model (median / p95 / max), split into flush + parse (window
  end -> sampler hands the batch over) and the hold for the resource join
  (handed over -> ingested);
- the oldest a sample is when it arrives (window length + latency);
- window lengths and the gaps/overlaps between consecutive windows;
- the CPU the monitor used (this process's threads + its py-spy windows).

Goal: every sample in the model within 1 s of being taken.

    python bench/bench_latency.py --quick       # ~10 s of sampling
    python bench/bench_latency.py               # 30 s
    python bench/bench_latency.py --child       # the workload forks a busy child: two samplers
"""

from __future__ import annotations

import argparse
import os
import queue
import resource
import subprocess
import sys
import time

import numpy as np

from _machine import ForeignLoad, describe
import gradetop.collectors.monitor as monitor_module
from gradetop.collectors.monitor import Monitor
from gradetop.collectors.stacks import StackSampler
from gradetop.collectors.window import StackOptions
from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import StackBatch

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "workload.py")


class TapQueue:
    """The monitor's queue, with the time each stack batch was handed over by its sampler."""

    def __init__(self, inner: queue.SimpleQueue) -> None:
        self.inner = inner
        self.handed: dict[int, float] = {}

    def put(self, record) -> None:
        if isinstance(record, StackBatch):
            self.handed[id(record)] = time.time()
        self.inner.put(record)

    def get(self, *args, **kwargs):
        return self.inner.get(*args, **kwargs)

    def empty(self) -> bool:
        return self.inner.empty()


class EdgeSampler(StackSampler):
    """A StackSampler that notes, per window it closes, when py-spy really stopped against where it was cut.

    py-spy keeps sampling after the next window has started until it gets
    SIGINT and flushes: that stretch is sampled twice, its samples squeezed
    into the window that ends at the cut.
    """

    overlaps: list[float] = []
    closing: list[float] = []
    """Seconds each _finish took: SIGINT, py-spy's flush, reading and parsing the file, emitting."""
    stop_to_end: list[float] = []
    """Seconds from stop() to the sampler thread's end."""

    def _finish(self, window, t_cut: float) -> None:
        t0 = time.time()
        super()._finish(window, t_cut)
        EdgeSampler.closing.append(time.time() - t0)
        if window.t_end and window.t_start and t_cut >= window.t_start:
            EdgeSampler.overlaps.append(window.t_end - t_cut)

    def stop(self) -> None:
        self._stop_called = time.time()
        super().stop()

    def run(self) -> None:
        try:
            super().run()
        finally:
            called = getattr(self, "_stop_called", None)
            if called is not None:
                EdgeSampler.stop_to_end.append(time.time() - called)


class TimedProfile(Profile):
    """A Profile that notes, for each stack batch, when it was ingested."""

    def __init__(self, meta: ProfileMeta) -> None:
        super().__init__(meta)
        self.arrivals: list[tuple[StackBatch, float]] = []

    def ingest(self, record) -> None:
        super().ingest(record)
        if isinstance(record, StackBatch):
            self.arrivals.append((record, time.time()))


def cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def stop_tree(target: subprocess.Popen) -> None:
    """End the workload and its multiprocessing child (SIGTERM to the parent alone would orphan it)."""
    import psutil

    try:
        procs = [psutil.Process(target.pid), *psutil.Process(target.pid).children(recursive=True)]
    except psutil.Error:
        procs = []
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=5)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    target.wait()


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sample ~10 s instead of 30 s")
    parser.add_argument("--seconds", type=float, help="how long to sample (default 30, quick 10)")
    parser.add_argument("--child", action="store_true", help="the workload also runs a multiprocessing child")
    parser.add_argument("--rate", type=float, default=100.0, help="stack samples per second (default 100)")
    parser.add_argument("--window", type=float, default=0.5, help="py-spy window length, s (default 0.5)")
    args = parser.parse_args(argv)
    seconds = args.seconds or (10.0 if args.quick else 30.0)

    # ~0.35 s per 100 units unmonitored here; make sure it outlasts the run even when slowed down.
    work = int(seconds * 100 / 0.35 * 3) + 1000
    cmd = [sys.executable, WORKLOAD, "--work", str(work)] + (["--child"] if args.child else [])
    print(describe(), flush=True)
    foreign = ForeignLoad()
    monitor_module.StackSampler = EdgeSampler  # the monitor builds its samplers by this name
    cpu0_self, cpu0_children = cpu_self(), cpu_children()
    target = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    try:
        meta = ProfileMeta(rate_hz=args.rate, command=cmd, target_pid=target.pid, mode="record")
        profile = TimedProfile(meta)
        options = StackOptions(rate_hz=args.rate, window_s=args.window)
        monitor = Monitor(profile, target.pid, options)
        tap = TapQueue(monitor._queue)
        monitor._queue = tap  # samplers are created in start(), so they hand their batches to the tap
        print(f"bench_latency: sampling {' '.join(os.path.basename(c) for c in cmd[1:])} for {seconds:g} s "
              f"at {args.rate:g} Hz, {args.window:g} s windows (lead {options.lead_s:g} s), {os.cpu_count()} CPUs",
              flush=True)
        monitor.start()
        time.sleep(seconds)
        t_stop = time.time()
        monitor.stop()
        profile.meta.end_time = time.time()  # as `gradetop record` does: the end is set once the monitor stopped
        stop_s = profile.meta.end_time - t_stop
        # Our CPU (the monitor's threads) and our reaped children's (the py-spy windows), before reaping the workload.
        cpu_monitor_self = cpu_self() - cpu0_self
        cpu_windows = cpu_children() - cpu0_children
    finally:
        stop_tree(target)

    root = profile.processes.get(target.pid)
    arrivals = profile.arrivals
    if not arrivals:
        print("no stack batches reached the model: is py-spy permitted here (root / CAP_SYS_PTRACE)?")
        for note in profile.notes:
            print(f"  note: {note.kind}: {note.message}")
        return 1
    # Steady state: every window but those cut by the stop (flushed by stop(), not by the next window).
    steady = [(b, t) for b, t in arrivals if b.t_end < t_stop - 1e-3]
    lat = np.array(monitor.latencies)
    lat_steady = np.array([t - b.t_end for b, t in steady])
    age = np.array([t - b.t_start for b, t in steady])
    flush = np.array([tap.handed[id(b)] - b.t_end for b, _ in steady if id(b) in tap.handed])
    held = np.array([t - tap.handed[id(b)] for b, t in steady if id(b) in tap.handed])
    lengths = np.array([b.t_end - b.t_start for b, _ in steady])
    gaps = []
    for pid in {b.pid for b, _ in arrivals}:
        wins = sorted((b.t_start, b.t_end) for b, _ in arrivals if b.pid == pid)
        gaps += [s2 - e1 for (_, e1), (s2, _) in zip(wins, wins[1:])]
    gaps = np.array(gaps)
    first_start = min(b.t_start for b, _ in arrivals if b.pid == target.pid) if root else float("nan")
    life = t_stop - meta.start_time
    root_windows = sorted((b.t_start, b.t_end) for b, _ in arrivals if b.pid == target.pid)
    if root_windows:
        span = root_windows[-1][1] - meta.start_time
        covered = sum(e - s for s, e in root_windows) / span if span > 0 else float("nan")
    else:
        covered = float("nan")

    def row(label: str, values: np.ndarray, unit: str = "ms", scale: float = 1000.0, note: str = "") -> None:
        if len(values) == 0:
            print(f"  {label:<38} {'-':>8}")
            return
        print(f"  {label:<38} {np.median(values) * scale:8.0f} {pct(values, 95) * scale:8.0f} "
              f"{values.max() * scale:8.0f} {values.min() * scale:8.0f}  {unit} {note}")

    print()
    print(f"Windows: {len(arrivals)} batches from {len(monitor.samplers)} sampler(s) "
          f"({', '.join(f'pid {p}: {s.windows}' for p, s in monitor.samplers.items())}); "
          f"{len(steady)} in steady state")
    print(f"  {'':<38} {'median':>8} {'p95':>8} {'max':>8} {'min':>8}")
    row("latency: window end -> in model", lat_steady, note="(goal: < 1000 incl. window, below)")
    row("  flush + parse (end -> handed over)", flush)
    row("  held for resource join", held)
    row("age at arrival: window start -> model", age, note="(window + latency; goal < 1000)")
    row("window length (steady windows)", lengths, note=f"(next one launched {options.window_s - options.lead_s:g} s in)")
    row("gap between windows (<0: overlap)", gaps, note="(as emitted: cut at the next start)")
    overlaps = np.array(EdgeSampler.overlaps[:-1] if len(EdgeSampler.overlaps) > 1 else EdgeSampler.overlaps)
    row("sampled twice: py-spy stop - cut", overlaps, note="(previous window still sampling)")
    if len(lat) != len(lat_steady):
        final = np.array([t - b.t_end for b, t in arrivals if b.t_end >= t_stop - 1e-3])
        row("last windows (flushed by stop)", final)
    print()
    print("Sampling")
    print(f"  coverage (root process)      {profile.coverage * 100:7.2f}%   target >= 98%  "
          "(profile.coverage; end = after monitor.stop(), as gradetop record sets it)")
    print(f"  windows cover                {covered * 100:7.2f}%   of [profile start, last window end]; "
          f"first sample {(first_start - meta.start_time) * 1000:.0f} ms after the profile start")
    print(f"  achieved rate                {profile.achieved_rate_hz:7.1f} Hz  asked {args.rate:g} Hz")
    print(f"  samples in the model         {profile.timeline.samples:7d}")
    if len(overlaps) and len(lengths):
        print(f"  time sampled twice           {overlaps.clip(0).sum() / lengths.sum() * 100:7.1f}%   "
              "(overlap / window time: those samples are duplicates squeezed into the earlier window)")
    print(f"  samples older than 1 s on arrival: {int((age > 1.0).sum())} of {len(age)} windows "
          f"({(age > 1.0).mean() * 100:.1f}%)")
    closing = np.array(EdgeSampler.closing)
    print(f"  monitor.stop() took          {stop_s * 1000:7.0f} ms   (samplers ended "
          f"{max(EdgeSampler.stop_to_end, default=float('nan')) * 1000:.0f} ms after stop(), at the latest)")
    if len(closing):
        print(f"  closing a window             {np.median(closing) * 1000:7.0f} ms median, p95 {pct(closing, 95) * 1000:.0f}, "
              f"max {closing.max() * 1000:.0f}   (SIGINT -> py-spy flushed -> parsed -> handed over)")
    print(f"  monitor CPU: this process {cpu_monitor_self:.2f} s ({cpu_monitor_self / life * 100:.1f}% of a core), "
          f"py-spy windows {cpu_windows:.2f} s ({cpu_windows / life * 100:.1f}%)")
    for note in profile.notes:
        if note.kind != "sampling":
            print(f"  note: pid {note.pid}: {note.kind}: {note.message}")
    print()
    print(foreign.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
