"""Phases: what a marker costs the workflow, and what recomputing phases costs the monitor.

Part 1, marker cost. `with gradetop.phase("step"): pass` and a call of a
`@gradetop.phase("step")`-decorated empty function, timed with timeit in
fresh interpreters: without a listener (GRADETOP_PHASES unset: the shared
do-nothing object) and with one (GRADETOP_PHASES set to a temp folder: two
os.write calls per use). Variants alternate, each the best of 5 repeats, in
3 rounds (2 with --quick); prints ns per use (median of rounds, min-max),
the decorator's overhead over the bare call, and listener / no-listener ratios.

Part 2, recomputing phases. A Profile is fed fabricated collector records
for one hour (10 minutes with --quick) of one process with 8 threads at
100 Hz, in the monitor's order (a ResourceBatch every 0.1 s with every
thread's CPU and schedstat counters, a StackBatch per 0.5 s window);
Profile.ingest compacts the timeline as it does on a real run (1 s buckets
past 600 s). The main thread runs `load` (5% of the run) and then epochs of
`train` (steps of forward / backward / optimizer step, ~4 steps a second)
and `evaluate`; it marks epoch N, train, evaluate and every step with
PhaseMark records; 5 worker threads load data, 2 mostly wait. Stacks sit in
torch / pandas files so the built-in rules match (forward, backward,
optimizer step, data loading, read data). Then, timed (median of 3, min-max):

    marker_phases, rule_phases, auto_phases   each source alone
    all_phases                                 all three, as report and UI call it
    cost_phases                                costs and verdicts of all of them

and the number of phases per source. The UI recomputes phases every few
seconds on a live run, so all_phases + cost_phases must stay well under that.

    python bench/bench_phases.py --quick      # ~40 s on 2 cores
    python bench/bench_phases.py              # one hour of data: ~1 min on 2 quiet cores
    python bench/bench_phases.py --minutes 120 --step-hz 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

try:
    from _machine import ForeignLoad, describe
except ImportError:  # pragma: no cover - run from elsewhere than bench/
    ForeignLoad = None

    def describe() -> str:
        return f"machine: {os.cpu_count()} CPUs"

from gradetop.model.phase_costs import cost_phases
from gradetop.model.phases import all_phases, auto_phases, marker_phases, rule_phases
from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import PhaseMark, ProcessReading, ResourceBatch, StackBatch, ThreadSamples
from gradetop.model.rules import BUILTIN_RULES
from gradetop.phases import ENV

# ---- part 1: marker cost -----------------------------------------------------------------------

_MARKER_SCRIPT = r"""
import sys, timeit
from gradetop import phase
n = int(sys.argv[1])
def bare():
    pass
@phase("step")
def marked():
    pass
def best(stmt):
    return min(timeit.repeat(stmt, globals=globals(), number=n, repeat=5)) / n * 1e9
print(best('with phase("step"): pass'), best("marked()"), best("bare()"))
"""


def marker_costs(listener: bool, n: int) -> tuple[float, float, float]:
    """(ns per with-block, ns per decorated call, ns per bare call) in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if k != ENV}
    with tempfile.TemporaryDirectory(prefix="bench-phases-") as folder:
        if listener:
            env[ENV] = folder
        out = subprocess.run([sys.executable, "-c", _MARKER_SCRIPT, str(n)], env=env, capture_output=True,
                             text=True, check=True)
        if listener and not any(name.endswith(".phases") for name in os.listdir(folder)):
            raise RuntimeError("the listener variant wrote no marker file")
    with_ns, deco_ns, bare_ns = (float(x) for x in out.stdout.split())
    return with_ns, deco_ns, bare_ns


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def part_markers(rounds: int) -> None:
    print("\nPart 1: marker cost per use (timeit in a fresh interpreter; median of rounds, min-max)", flush=True)
    runs: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    for _ in range(rounds):
        for listener in (False, True):
            # A write costs ~40x the no-op: fewer of them keep each repeat near 0.1-0.5 s.
            runs[listener].append(marker_costs(listener, 20_000 if listener else 1_000_000))
    rows = []
    for listener in (False, True):
        with_ns = [r[0] for r in runs[listener]]
        deco_extra = [max(0.0, r[1] - r[2]) for r in runs[listener]]  # timer noise can make it negative
        bare = [r[2] for r in runs[listener]]
        rows.append((listener, with_ns, deco_extra, bare))
    print(f"  {'listener':<30} {'with phase(): ns':>20} {'@phase extra ns':>20} {'bare call ns':>16}")
    for listener, with_ns, deco_extra, bare in rows:
        label = "GRADETOP_PHASES set (writes)" if listener else "none (GRADETOP_PHASES unset)"
        print(f"  {label:<30} {spread(with_ns):>20} {spread(deco_extra):>20} {spread(bare):>16}")
    (_, off_with, off_deco, off_bare), (_, on_with, on_deco, on_bare) = rows
    m = statistics.median
    print(f"  with listener / without: with-block {m(on_with) / m(off_with):.0f}x; decorated call "
          f"{(m(on_deco) + m(on_bare)) / (m(off_deco) + m(off_bare)):.0f}x "
          f"(without a listener the decorator returns the function itself: no overhead to measure)")
    print(f"  a marked step at 10 steps/s costs {m(on_with) * 10 / 1e9 * 100:.4f}% of a core with a listener, "
          f"{m(off_with) * 10 / 1e9 * 100:.6f}% without")


# ---- part 2: recomputing phases for a long timeline -----------------------------------------------

PID = 5151
THREADS = 8
WORKERS = 5
RATE_HZ = 100.0
WINDOW_S = 0.5
RESOURCE_HZ = 10.0
T0 = 1_800_000_000.0

SITE = "/opt/conda/lib/python3.11/site-packages"
F = {
    "module": ("<module>", "/home/user/project/train.py", 1),
    "main": ("main", "/home/user/project/train.py", 200),
    "load": ("load_dataset", "/home/user/project/data.py", 30),
    "read_parquet": ("read_parquet", f"{SITE}/pandas/io/parquet.py", 480),
    "decode": ("_decode_rows", f"{SITE}/pyarrow/parquet/core.py", 1200),
    "fit": ("fit", "/home/user/project/train.py", 120),
    "train_epoch": ("train_epoch", "/home/user/project/train.py", 80),
    "evaluate": ("evaluate", "/home/user/project/train.py", 150),
    "next": ("_MultiProcessingDataLoaderIter.__next__", f"{SITE}/torch/utils/data/dataloader.py", 630),
    "get_data": ("_MultiProcessingDataLoaderIter._get_data", f"{SITE}/torch/utils/data/dataloader.py", 1130),
    "call": ("Module._call_impl", f"{SITE}/torch/nn/modules/module.py", 1520),
    "forward": ("Model.forward", "/home/user/project/model.py", 40),
    "linear": ("Linear.forward", f"{SITE}/torch/nn/modules/linear.py", 116),
    "attn": ("Attention.forward", "/home/user/project/model.py", 90),
    "backward": ("Tensor.backward", f"{SITE}/torch/_tensor.py", 522),
    "engine": ("backward", f"{SITE}/torch/autograd/__init__.py", 266),
    "opt_step": ("AdamW.step", f"{SITE}/torch/optim/adamw.py", 160),
    "adamw": ("_multi_tensor_adamw", f"{SITE}/torch/optim/adamw.py", 480),
    "run": ("Thread.run", "/opt/conda/lib/python3.11/threading.py", 982),
    "worker_loop": ("_worker_loop", f"{SITE}/torch/utils/data/_utils/worker.py", 308),
    "fetch": ("_MapDatasetFetcher.fetch", f"{SITE}/torch/utils/data/_utils/fetch.py", 51),
    "getitem": ("ImageDataset.__getitem__", "/home/user/project/data.py", 70),
    "augment": ("augment", "/home/user/project/data.py", 110),
    "collate": ("default_collate", f"{SITE}/torch/utils/data/_utils/collate.py", 265),
    "get": ("Queue.get", "/opt/conda/lib/python3.11/queue.py", 171),
    "wait": ("Condition.wait", "/opt/conda/lib/python3.11/threading.py", 327),
}
FRAME_NAMES = list(F)
FRAMES = [F[k] for k in FRAME_NAMES]
IX = {k: i for i, k in enumerate(FRAME_NAMES)}


def _stacks(*paths: str) -> list[tuple[int, ...]]:
    return [tuple(IX[k] for k in path.split()) for path in paths]


# Per activity: stacks and their weights (a few leaves each, like a real profile's spread).
ALL_STACKS: list[tuple[int, ...]] = []
ACTIVITY_NAMES: list[str] = []
ACTIVITY_STACKS: list[np.ndarray] = []
"""Per activity: indices into ALL_STACKS."""
ACTIVITY_CDF: list[np.ndarray] = []


def _activity(name: str, *weighted: tuple[str, float]) -> None:
    ids = []
    for stack in _stacks(*(p for p, _ in weighted)):
        if stack not in ALL_STACKS:
            ALL_STACKS.append(stack)
        ids.append(ALL_STACKS.index(stack))
    w = np.array([x for _, x in weighted], dtype=np.float64)
    ACTIVITY_NAMES.append(name)
    ACTIVITY_STACKS.append(np.array(ids))
    ACTIVITY_CDF.append(np.cumsum(w / w.sum()))


M = "module main"
_activity("load", (f"{M} load read_parquet decode", 6), (f"{M} load read_parquet", 2), (f"{M} load", 1))
_activity("forward", (f"{M} fit train_epoch call forward call linear", 5),
          (f"{M} fit train_epoch call forward call attn", 4), (f"{M} fit train_epoch call forward", 1),
          (f"{M} fit train_epoch next get_data get wait", 1))
_activity("backward", (f"{M} fit train_epoch backward engine", 8), (f"{M} fit train_epoch backward", 1))
_activity("opt", (f"{M} fit train_epoch opt_step adamw", 6), (f"{M} fit train_epoch opt_step", 1))
_activity("evaluate", (f"{M} fit evaluate call forward call linear", 5),
          (f"{M} fit evaluate call forward call attn", 4), (f"{M} fit evaluate next get_data get wait", 1))
_activity("worker", ("run worker_loop fetch getitem augment", 5), ("run worker_loop fetch getitem", 2),
          ("run worker_loop fetch collate", 2), ("run worker_loop get wait", 1))
_activity("idle", ("run get wait", 9), ("run wait", 1))
A = {name: i for i, name in enumerate(ACTIVITY_NAMES)}


def draw_stacks(rng: np.random.Generator, activities: np.ndarray) -> list[tuple[int, ...]]:
    """A stack per sample, drawn from its activity's weighted stacks."""
    ids = np.empty(len(activities), dtype=np.int64)
    u = rng.random(len(activities))
    for a in np.unique(activities):
        here = activities == a
        pick = np.minimum(np.searchsorted(ACTIVITY_CDF[a], u[here]), len(ACTIVITY_CDF[a]) - 1)
        ids[here] = ACTIVITY_STACKS[a][pick]
    return [ALL_STACKS[i] for i in ids]


class Job:
    """The records of one synthetic training process, window by window, in the monitor's order."""

    def __init__(self, seconds: float, step_hz: float, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.seconds = seconds
        self.tids = [PID] + [PID + 10 + i for i in range(THREADS - 1)]
        self.names = ["MainThread"] + [f"worker-{i}" for i in range(WORKERS)] + ["pin-memory", "watchdog"]
        self.load_s = 0.05 * seconds
        self.epochs = max(3, int(round(seconds / 60.0)))
        self.epoch_s = (seconds - self.load_s) / self.epochs
        self.eval_s = 0.15 * self.epoch_s
        self.step_s = 1.0 / step_hz
        self.window = 0
        self.next_reading = 0
        self.cpu = np.zeros(THREADS)
        self.active = np.zeros(THREADS)
        self.ticks = int(round(RATE_HZ * WINDOW_S))
        self.marks = self._marks()
        self._mark_i = 0

    def _marks(self) -> list[PhaseMark]:
        """B/E markers of the main thread: epoch N > train > step, and evaluate; in time order."""
        marks = [PhaseMark(T0, PID, PID, "B", "load"), PhaseMark(T0 + self.load_s, PID, PID, "E", "load")]
        for e in range(self.epochs):
            a = T0 + self.load_s + e * self.epoch_s
            train_end = a + self.epoch_s - self.eval_s
            marks += [PhaseMark(a, PID, PID, "B", f"epoch {e}"), PhaseMark(a, PID, PID, "B", "train")]
            t = a
            while t + self.step_s <= train_end:
                marks += [PhaseMark(t, PID, PID, "B", "step"), PhaseMark(t + self.step_s, PID, PID, "E", "step")]
                t += self.step_s
            marks += [PhaseMark(train_end, PID, PID, "E", "train"), PhaseMark(train_end, PID, PID, "B", "evaluate"),
                      PhaseMark(a + self.epoch_s, PID, PID, "E", "evaluate"),
                      PhaseMark(a + self.epoch_s, PID, PID, "E", f"epoch {e}")]
        return marks

    def main_activity(self, t: np.ndarray) -> np.ndarray:
        """Activity of the main thread at each time: load, then per epoch train steps and evaluate."""
        rel = t - T0 - self.load_s
        out = np.full(len(t), A["load"])
        in_epochs = rel >= 0
        within = np.mod(rel, self.epoch_s)
        training = in_epochs & (within < self.epoch_s - self.eval_s)
        step_phase = np.mod(within, self.step_s) / self.step_s
        out[training] = np.where(step_phase[training] < 0.45, A["forward"],
                                 np.where(step_phase[training] < 0.85, A["backward"], A["opt"]))
        out[in_epochs & ~training] = A["evaluate"]
        return out

    def _reading(self, t: float) -> ResourceBatch:
        dt = 1.0 / RESOURCE_HZ
        for i in range(THREADS):
            busy = i <= WORKERS
            self.active[i] += dt * (self.rng.uniform(0.85, 1.0) if busy else self.rng.uniform(0.0, 0.05))
            self.cpu[i] += dt * (self.rng.uniform(0.8, 0.95) if busy else self.rng.uniform(0.0, 0.02))
        thread_times = {tid: (float(self.cpu[i]), float(self.active[i])) for i, tid in enumerate(self.tids)}
        proc = ProcessReading(pid=PID, ppid=1, name="python", cmdline=["python", "train.py"], create_time=T0 - 1.0,
                              status="running", cpu_s=float(self.cpu.sum()), rss=3_000_000_000,
                              read_bytes=int(t - T0) * 1_000_000, write_bytes=0, num_threads=THREADS,
                              thread_times=thread_times)
        return ResourceBatch(t, [proc])

    def _batch(self, t_start: float, t_end: float) -> StackBatch:
        dt = (t_end - t_start) / self.ticks
        times = t_start + (np.arange(self.ticks) + 0.5) * dt
        weights = np.full(self.ticks, dt, dtype=np.float32)
        threads = []
        for i, (tid, name) in enumerate(zip(self.tids, self.names)):
            if i == 0:
                acts = self.main_activity(times)
            else:
                acts = np.full(self.ticks, A["worker"] if i <= WORKERS else A["idle"])
            stacks = draw_stacks(self.rng, acts)
            threads.append(ThreadSamples(PID, tid, name, times.copy(), weights.copy(), stacks))
        return StackBatch(PID, t_start, t_end, self.ticks, FRAMES, threads, {PID: "python train.py"})

    def done(self) -> bool:
        return self.window * WINDOW_S >= self.seconds

    def next_records(self) -> list:
        """Readings up to just past the window's end, the markers written meanwhile, then the window."""
        t_start = T0 + self.window * WINDOW_S
        t_end = t_start + WINDOW_S
        self.window += 1
        records = []
        while T0 + self.next_reading / RESOURCE_HZ <= t_end + 1e-9:
            records.append(self._reading(T0 + self.next_reading / RESOURCE_HZ))
            self.next_reading += 1
        while self._mark_i < len(self.marks) and self.marks[self._mark_i].t < t_end:
            records.append(self.marks[self._mark_i])
            self._mark_i += 1
        records.append(self._batch(t_start, t_end))
        return records


def build_profile(seconds: float, step_hz: float) -> tuple[Profile, float]:
    profile = Profile(ProfileMeta(host="bench", start_time=T0, end_time=T0 + seconds, target_pid=PID, rate_hz=RATE_HZ))
    job = Job(seconds, step_hz)
    ingest_s = 0.0
    while not job.done():
        records = job.next_records()
        t = time.perf_counter()
        for r in records:
            profile.ingest(r)
        ingest_s += time.perf_counter() - t
    return profile, ingest_s


def timed(func, repeats: int) -> tuple[list[float], object]:
    out, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = func()
        out.append(time.perf_counter() - t)
    return out, result


def part_recompute(minutes: float, step_hz: float, repeats: int) -> None:
    seconds = minutes * 60.0
    print(f"\nPart 2: recomputing phases for {minutes:g} minutes of 1 process x {THREADS} threads at "
          f"{RATE_HZ:.0f} Hz ({step_hz:g} marked steps/s)", flush=True)
    t = time.perf_counter()
    profile, ingest_s = build_profile(seconds, step_hz)
    build_s = time.perf_counter() - t
    print(f"  built in {build_s:.1f} s ({ingest_s:.1f} s of it Profile.ingest): {profile.timeline.samples:,} samples "
          f"in {len(profile.timeline):,} timeline rows after compaction, {len(profile.marks):,} markers, "
          f"{len(profile.stacks)} stack nodes", flush=True)
    rows = []
    for label, func in (
        ("marker_phases", lambda: marker_phases(profile)),
        ("rule_phases (built-in rules)", lambda: rule_phases(profile, BUILTIN_RULES)),
        ("auto_phases", lambda: auto_phases(profile)),
        ("all_phases", lambda: all_phases(profile)),
    ):
        times, result = timed(func, repeats)
        rows.append((label, times, len(result)))
        print(f"  {label:<30} {spread(times, '{:.3f}'):>22} s   {len(result):>7,} phases", flush=True)
    phases = all_phases(profile)
    times, costs = timed(lambda: cost_phases(profile, phases), repeats)
    print(f"  {'cost_phases (of all_phases)':<30} {spread(times, '{:.3f}'):>22} s   {len(costs):>7,} costed", flush=True)
    total = statistics.median(rows[-1][1]) + statistics.median(times)
    by_source: dict[str, int] = {}
    for p in phases:
        by_source[p.source] = by_source.get(p.source, 0) + 1
    kinds: dict[str, int] = {}
    for c in costs:
        kinds[c.verdict_kind] = kinds.get(c.verdict_kind, 0) + 1
    print(f"  all_phases + cost_phases: {total:.2f} s for {len(phases):,} phases "
          f"({', '.join(f'{n:,} {s}' for s, n in sorted(by_source.items()))}); "
          f"{total / len(phases) * 1e6:.0f} us per phase")
    print(f"  verdicts: {', '.join(f'{n:,} {k}' for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 minutes of data, fewer rounds (< 60 s)")
    parser.add_argument("--minutes", type=float, help="minutes of data for part 2 (default 60, quick 10)")
    parser.add_argument("--step-hz", type=float, default=4.0, help="marked training steps per second (default 4)")
    parser.add_argument("--skip-markers", action="store_true", help="part 2 only")
    args = parser.parse_args()
    print(describe(), flush=True)
    foreign = ForeignLoad() if ForeignLoad is not None else None
    if not args.skip_markers:
        part_markers(rounds=2 if args.quick else 3)
    part_recompute(args.minutes or (10.0 if args.quick else 60.0), args.step_hz, repeats=3)
    if foreign is not None:
        print(foreign.summary())


if __name__ == "__main__":
    main()
