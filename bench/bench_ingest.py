"""The model's ingest rate and memory per hour, on synthetic collector records.

Records are built like the collectors build them: one StackBatch per 0.5 s
py-spy window of one process with 8 threads at 100 Hz (50 samples per thread
per batch), numbered by a sampler's StackIds (collectors.pyspy: lasting ids,
each batch names the frames and stacks new in it), with root-first stacks
20-40 frames deep drawn from a few hundred distinct stacks; and a
ResourceBatch every 0.1 s with every thread's cumulative CPU and schedstat
seconds, so the active-time join (Profile._active_seconds) runs for every
sample. Records are handed to Profile.ingest in the order the monitor hands
them (a window only after the readings that pass its end).

Stack draws are realistic rather than uniform: each thread works in a phase
(forward, backward, optimizer step, data loading, ...) of ~25 stacks with
Zipf-like weights, and moves to another phase every few seconds; two threads
mostly wait. Timeline compaction (1 s buckets past 600 s) depends on how many
distinct stacks a thread shows per second; `--stacks-per-phase` moves that.

Part 1, ingest rate: a minute of records ingested into a fresh Profile,
with and without the resource readings (no join: every sample counts active),
interleaved and repeated; prints samples/s and the join's cost as a ratio.

Part 2, memory: an hour (quick) or two (default; --hours N) of records with timestamps advancing
(fabricated: nothing sleeps), printing per hour the timeline rows,
Profile.nbytes and process RSS growth (MB per hour, target <= 50), the
ingest time, then the time of build_tree over the whole timeline
(gradetop.model.calltree.build_tree on profile.timeline.rows()) and of
top_functions on it.

    python bench/bench_ingest.py --quick       # < 60 s
    python bench/bench_ingest.py               # 2 hours of memory, ~1 min
    python bench/bench_ingest.py --hours 4     # compaction past 3 h too (~2 min)
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import time

import numpy as np
import psutil

from _machine import ForeignLoad, describe

from gradetop.collectors.pyspy import StackIds
from gradetop.model.allocator import return_freed_memory
from gradetop.model.calltree import build_tree, top_functions
from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import ProcessReading, ResourceBatch, StackBatch, ThreadSamples

PID = 4242
THREADS = 8
RATE_HZ = 100.0
WINDOW_S = 0.5
RESOURCE_HZ = 10.0
T0 = 1_800_000_000.0
MB = 1024 * 1024


class Universe:
    """Frames, distinct stacks and phases of a synthetic training job (deterministic)."""

    def __init__(self, n_stacks: int = 300, stacks_per_phase: int = 25, phases: int = 12, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        files = [
            "/opt/conda/lib/python3.11/site-packages/torch/nn/modules/module.py",
            "/opt/conda/lib/python3.11/site-packages/torch/nn/modules/linear.py",
            "/opt/conda/lib/python3.11/site-packages/torch/nn/functional.py",
            "/opt/conda/lib/python3.11/site-packages/torch/optim/adamw.py",
            "/opt/conda/lib/python3.11/site-packages/torch/utils/data/dataloader.py",
            "/opt/conda/lib/python3.11/site-packages/torch/autograd/__init__.py",
            "/opt/conda/lib/python3.11/site-packages/transformers/models/llama/modeling_llama.py",
            "/opt/conda/lib/python3.11/site-packages/transformers/trainer.py",
            "/opt/conda/lib/python3.11/threading.py",
            "/opt/conda/lib/python3.11/queue.py",
            "/home/user/project/train.py",
            "/home/user/project/data.py",
            "/home/user/project/model.py",
        ]
        self.frames: list[tuple[str, str, int]] = []
        for i in range(700):
            file = files[int(rng.integers(len(files)))]
            self.frames.append((f"fn_{i}", file, int(rng.integers(1, 2000))))
        # A trie-like set of stacks: each new stack continues a prefix of an existing one,
        # so stacks share their upper frames as real ones do.
        prefix = [int(x) for x in rng.choice(len(self.frames), 8, replace=False)]
        stacks: list[tuple[int, ...]] = []
        while len(stacks) < n_stacks:
            depth = int(rng.integers(20, 41))
            if stacks:
                base = stacks[int(rng.integers(len(stacks)))]
                keep = int(rng.integers(8, min(len(base), depth)))
                stack = list(base[:keep])
            else:
                stack = list(prefix)
            while len(stack) < depth:
                stack.append(int(rng.integers(len(self.frames))))
            t = tuple(stack)
            if t not in stacks:
                stacks.append(t)
        self.stacks = stacks
        # Phases: a subset of stacks with Zipf-like weights.
        self.phases: list[tuple[np.ndarray, np.ndarray]] = []
        for _ in range(phases):
            ids = rng.choice(n_stacks, stacks_per_phase, replace=False)
            w = 1.0 / np.arange(1, stacks_per_phase + 1) ** 1.2
            self.phases.append((ids, w / w.sum()))
        # Waiting threads (queue.get, lock): almost always one of two stacks.
        ids = rng.choice(n_stacks, 2, replace=False)
        self.waiting = (ids, np.array([0.9, 0.1]))


class Job:
    """Produces the records of one process, window by window, in the monitor's order."""

    def __init__(self, universe: Universe, seed: int = 1, with_resources: bool = True) -> None:
        self.u = universe
        self.rng = np.random.default_rng(seed)
        self.tids = [PID] + [PID + 10 + i for i in range(THREADS - 1)]
        self.names = ["MainThread"] + [f"worker-{i}" for i in range(THREADS - 1)]
        self.busy = [True] * (THREADS - 2) + [False, False]
        self.phase = [int(self.rng.integers(len(universe.phases))) for _ in range(THREADS)]
        self.with_resources = with_resources
        self.window = 0
        self.next_reading = 0
        self.cpu = np.zeros(THREADS)
        self.active = np.zeros(THREADS)
        self.ticks = int(round(RATE_HZ * WINDOW_S))
        self.ids = StackIds()

    def _reading(self, t: float) -> ResourceBatch:
        dt = 1.0 / RESOURCE_HZ
        for i in range(THREADS):
            if self.busy[i]:
                self.active[i] += dt * self.rng.uniform(0.8, 1.0)
                self.cpu[i] += dt * self.rng.uniform(0.2, 0.35)
            else:
                self.active[i] += dt * self.rng.uniform(0.0, 0.05)
                self.cpu[i] += dt * self.rng.uniform(0.0, 0.02)
        thread_times = {tid: (float(self.cpu[i]), float(self.active[i])) for i, tid in enumerate(self.tids)}
        proc = ProcessReading(
            pid=PID, ppid=1, name="python", cmdline=["python", "train.py"], create_time=T0 - 1.0,
            status="running", cpu_s=float(self.cpu.sum()), rss=2_000_000_000, read_bytes=0, write_bytes=0,
            num_threads=THREADS, thread_times=thread_times,
        )
        return ResourceBatch(t, [proc])

    def _batch(self, t_start: float, t_end: float) -> StackBatch:
        u, rng = self.u, self.rng
        draws = []
        for i in range(THREADS):
            # Move to another phase every ~4 s on average.
            if rng.random() < WINDOW_S / 4.0:
                self.phase[i] = int(rng.integers(len(u.phases)))
            ids, p = u.phases[self.phase[i]] if self.busy[i] else u.waiting
            draws.append(ids[rng.choice(len(ids), self.ticks, p=p)])
        dt = (t_end - t_start) / self.ticks
        times = t_start + (np.arange(self.ticks) + 0.5) * dt
        weights = np.full(self.ticks, dt, dtype=np.float32)
        threads = []
        for tid, name, d in zip(self.tids, self.names, draws):
            # As py-spy's parse gives them: a stretch of equal samples is one stack, numbered by the
            # sampler's StackIds (lasting ids; the batch names the new frames and stacks).
            change = np.r_[True, d[1:] != d[:-1]]
            stretch = np.array([self.ids.stack(tuple([self.ids.frame(u.frames[f]) for f in u.stacks[s]]))
                                for s in d[change].tolist()], dtype=np.int32)
            threads.append(ThreadSamples(PID, tid, name, times.copy(), weights.copy(),
                                         stack_of=stretch[np.cumsum(change) - 1]))
        batch = StackBatch(PID, t_start, t_end, self.ticks, threads=threads, commands={PID: "python train.py"},
                           **self.ids.batch_fields())
        self.ids.emitted(batch)
        return batch

    def next_records(self) -> list:
        """Records of the next window: the readings up to just past its end, then its stack batch."""
        t_start = T0 + self.window * WINDOW_S
        t_end = t_start + WINDOW_S
        self.window += 1
        records = []
        if self.with_resources:
            while T0 + self.next_reading / RESOURCE_HZ <= t_end + 1e-9:
                records.append(self._reading(T0 + self.next_reading / RESOURCE_HZ))
                self.next_reading += 1
        records.append(self._batch(t_start, t_end))
        return records


def new_profile() -> Profile:
    return Profile(ProfileMeta(host="bench", start_time=T0, target_pid=PID, rate_hz=RATE_HZ))


def ingest_all(profile: Profile, records: list) -> float:
    t0 = time.perf_counter()
    for r in records:
        profile.ingest(r)
    return time.perf_counter() - t0


def rss() -> int:
    return psutil.Process().memory_info().rss


def used_bytes(profile: Profile) -> int:
    """Bytes of the rows actually held (Profile.nbytes counts the arrays' allocated capacity)."""
    from gradetop.model.timeline import COLUMNS

    total = sum(profile.timeline.column(name).nbytes for name in COLUMNS)
    for series in (profile.process_series, profile.thread_series):
        total += sum(getattr(series, name).nbytes for name in series.names)
    return total


def part_rate(universe: Universe, seconds: float, repeats: int) -> None:
    windows = int(seconds / WINDOW_S)
    variants = {"join": True, "no-join": False}
    prebuilt = {}
    for name, with_res in variants.items():
        job = Job(universe, seed=7, with_resources=with_res)
        prebuilt[name] = [r for _ in range(windows) for r in job.next_records()]
    samples = windows * THREADS * int(RATE_HZ * WINDOW_S)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name in variants:  # interleaved
            gc.collect()
            times[name].append(ingest_all(new_profile(), prebuilt[name]))
    print(f"Ingest rate: {seconds:.0f} s of records ({windows} windows, {samples} samples, "
          f"{int(seconds * RESOURCE_HZ)} readings), {repeats} interleaved repeats")
    print(f"  {'variant':<34} {'median s':>9} {'samples/s':>11} {'min-max samples/s':>22} {'x real time':>12}")
    for name in variants:
        m = statistics.median(times[name])
        lo, hi = samples / max(times[name]), samples / min(times[name])
        label = "with readings (active-time join)" if name == "join" else "stacks only (no readings)"
        print(f"  {label:<34} {m:9.3f} {samples / m:11,.0f} {lo:>10,.0f}-{hi:<11,.0f} {seconds / m:11.0f}x")
    ratios = [a / b for a, b in zip(times["join"], times["no-join"])]
    print(f"  join / no-join time: {statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]")
    print(f"  one 0.5 s window of 8 threads ingests in {statistics.median(times['join']) / windows * 1000:.2f} ms (median)")


def part_memory(universe: Universe, hours: float, tree_repeats: int) -> dict:
    gc.collect()
    rss0 = rss()
    profile = new_profile()
    job = Job(universe, seed=11)
    windows_per_hour = int(3600 / WINDOW_S)
    total_windows = int(round(hours * windows_per_hour))
    samples_per_window = THREADS * int(RATE_HZ * WINDOW_S)
    ingest_s = 0.0
    made_s = 0.0
    rows_hour = []
    print(f"Memory: {hours:g} h of {THREADS} threads x {RATE_HZ:.0f} Hz ({total_windows * samples_per_window:,} samples), "
          "timestamps fabricated")
    print(f"  {'hour':>5} {'rows':>10} {'nbytes MB':>10} {'rows MB':>8} {'RSS +MB':>8} {'+nbytes/h':>10} "
          f"{'+rows MB/h':>11} {'+RSS/h':>7} {'ingest s':>9} {'samples/s':>10}")
    print(f"  {'':>5} {'':>10} {'(capacity)':>10} {'(used)':>8}")
    last = (0, rss0, 0.0, 0)
    hour_ingest = 0.0
    for w in range(total_windows):
        t0 = time.perf_counter()
        records = job.next_records()
        t1 = time.perf_counter()
        for r in records:
            profile.ingest(r)
        t2 = time.perf_counter()
        made_s += t1 - t0
        ingest_s += t2 - t1
        hour_ingest += t2 - t1
        if (w + 1) % windows_per_hour == 0 or w + 1 == total_windows:
            del records
            gc.collect()
            hours_done = (w + 1) / windows_per_hour
            span_h = hours_done - last[2]
            nbytes, used, now_rss = profile.nbytes, used_bytes(profile), rss()
            n_samples = (w + 1 - round(last[2] * windows_per_hour)) * samples_per_window
            print(f"  {hours_done:5.2f} {len(profile.timeline):10,} {nbytes / MB:10.1f} {used / MB:8.1f} "
                  f"{(now_rss - rss0) / MB:8.1f} {(nbytes - last[0]) / MB / span_h:10.1f} "
                  f"{(used - last[3]) / MB / span_h:11.1f} {(now_rss - last[1]) / MB / span_h:7.1f} "
                  f"{hour_ingest:9.2f} {n_samples / hour_ingest:10,.0f}", flush=True)
            rows_hour.append((hours_done, nbytes, now_rss - rss0, used))
            last = (nbytes, now_rss, hours_done, used)
            hour_ingest = 0.0

    # Sanity: compaction must keep every sample and every second.
    expected = total_windows * samples_per_window
    got = profile.timeline.samples
    wall = float(profile.timeline.w.sum(dtype=np.float64))
    print(f"  check: samples in timeline {got:,} (expected {expected:,}), wall seconds {wall:,.0f} "
          f"(expected {total_windows * WINDOW_S * THREADS:,.0f})" + ("" if got == expected else "  <-- MISMATCH"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  generating records took {made_s:.1f} s (not counted); peak RSS of this process {peak:.0f} MB")

    tree_t, top_t, rows_t = [], [], []
    for _ in range(tree_repeats):
        t0 = time.perf_counter()
        rows = profile.timeline.rows()
        t1 = time.perf_counter()
        tree = build_tree(profile.stacks, rows, "w")
        t2 = time.perf_counter()
        top = top_functions(tree)
        t3 = time.perf_counter()
        rows_t.append(t1 - t0)
        tree_t.append(t2 - t1)
        top_t.append(t3 - t2)
        del rows
    print(f"  whole-run views over {len(profile.timeline):,} rows, {len(profile.stacks):,} trie nodes "
          f"(median of {tree_repeats}):")
    print(f"    timeline.rows() copy {statistics.median(rows_t) * 1000:8.1f} ms")
    print(f"    build_tree           {statistics.median(tree_t) * 1000:8.1f} ms  [{min(tree_t) * 1000:.1f}-{max(tree_t) * 1000:.1f}]")
    print(f"    top_functions        {statistics.median(top_t) * 1000:8.1f} ms  [{min(top_t) * 1000:.1f}-{max(top_t) * 1000:.1f}]"
          f"  ({len(top)} functions)")
    return {
        "ingest_s": ingest_s,
        "samples": expected,
        "nbytes": profile.nbytes,
        "rss_growth": rows_hour[-1][2],
        "used": rows_hour[-1][3],
        "hours": hours,
        "per_hour": rows_hour,
        "tree_ms": statistics.median(tree_t) * 1000,
        "top_ms": statistics.median(top_t) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter rate part, 1 hour of memory (< ~60 s)")
    parser.add_argument("--hours", type=float, help="simulated hours for the memory part (default 2, quick 1)")
    parser.add_argument("--stacks", type=int, default=300, help="distinct stacks in the job (default 300)")
    parser.add_argument("--stacks-per-phase", type=int, default=25,
                        help="distinct stacks a busy thread draws from at a time (default 25)")
    parser.add_argument("--skip-memory", action="store_true", help="only the ingest rate")
    parser.add_argument("--glibc-default", action="store_true",
                        help="leave glibc's dynamic mmap threshold on (as before gradetop fixed it): RSS grows ~2.6x")
    args = parser.parse_args(argv)

    print(describe(), flush=True)
    # As the gradetop command does at start (gradetop.model.allocator): what RSS a session really grows by.
    fixed = not args.glibc_default and return_freed_memory()
    print(f"allocator: {'mmap threshold fixed, as gradetop runs' if fixed else 'glibc default (dynamic mmap threshold)'}")
    foreign = ForeignLoad()
    universe = Universe(args.stacks, args.stacks_per_phase)
    depth = [len(s) for s in universe.stacks]
    print(f"bench_ingest: {len(universe.stacks)} distinct stacks {min(depth)}-{max(depth)} frames deep, "
          f"{args.stacks_per_phase} per phase, {THREADS} threads, {RATE_HZ:.0f} Hz, {WINDOW_S} s windows, "
          f"readings at {RESOURCE_HZ:.0f} Hz")
    print()
    part_rate(universe, seconds=30 if args.quick else 120, repeats=3 if args.quick else 7)
    if args.skip_memory:
        print()
        print(foreign.summary())
        return 0
    print()
    hours = args.hours or (1.0 if args.quick else 2.0)
    result = part_memory(universe, hours, tree_repeats=3 if args.quick else 7)

    print()
    print("Summary")
    first = result["per_hour"][0]
    h1 = first[0]
    rate = result["samples"] / result["ingest_s"]
    print(f"  {'ingest rate over the run':<36} {rate:>10,.0f} samples/s "
          f"({result['ingest_s'] / (result['hours'] * 3600) * 100:.2f}% of one core at 8 threads x 100 Hz)")

    def verdict(mb: float) -> str:
        return "OK" if mb <= 50 else "OVER TARGET"

    print(f"  {'first hour: Profile.nbytes':<36} {first[1] / MB / h1:>10.1f} MB/h   target <= 50  {verdict(first[1] / MB / h1)}")
    print(f"  {'first hour: rows actually held':<36} {first[3] / MB / h1:>10.1f} MB/h   (nbytes counts allocated capacity)")
    print(f"  {'first hour: process RSS growth':<36} {first[2] / MB / h1:>10.1f} MB/h   {verdict(first[2] / MB / h1)}")
    if len(result["per_hour"]) > 1:
        (hn, nn, rn, un) = result["per_hour"][-1]
        span = hn - h1
        print(f"  {f'hours {h1:g}-{hn:g}: Profile.nbytes':<36} {(nn - first[1]) / MB / span:>10.1f} MB/h   "
              f"{verdict((nn - first[1]) / MB / span)}")
        print(f"  {f'hours {h1:g}-{hn:g}: rows actually held':<36} {(un - first[3]) / MB / span:>10.1f} MB/h")
        print(f"  {f'hours {h1:g}-{hn:g}: process RSS growth':<36} {(rn - first[2]) / MB / span:>10.1f} MB/h   "
              f"{verdict((rn - first[2]) / MB / span)}")
    print(f"  {'build_tree, whole run':<36} {result['tree_ms']:>10.1f} ms")
    print(f"  {'top_functions, whole run':<36} {result['top_ms']:>10.1f} ms")
    print()
    print(foreign.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
