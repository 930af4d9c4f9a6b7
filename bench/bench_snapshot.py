"""Snapshot size and speed for 1M samples, and what streaming a live recording costs.

Part 1: the synthetic training job of bench_ingest (8 threads at 100 Hz,
stacks 20-40 deep, resource readings at 10 Hz) ingested until the timeline
holds 1M samples; then `save` (the finished file, in one piece), `load`, and
the same profile streamed by a SnapshotWriter in 1 s flushes. Prints size
(target <= 30 MB) and times (target <= 2 s each on the CI machine's kind).

Part 2: the monitor's own CPU (gradetop and its py-spy children) on a real
`gradetop record` of a busy workload, with the recording streamed to disk
and with --no-save, interleaved and repeated: the cost of crash safety.

    python bench/bench_snapshot.py            # both parts, ~1.5 min
    python bench/bench_snapshot.py --quick    # part 1 only
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from _machine import describe
from bench_ingest import Job, Universe, new_profile

from gradetop.model.snapshot import SnapshotWriter, load, save
from gradetop.model.timeline import Timeline

MB = 1024 * 1024
HERE = Path(__file__).resolve().parent


def profile_of(samples: int):
    job = Job(Universe(), seed=3)
    profile = new_profile()
    # No compaction: every sample a row of its own, the largest file 1M samples can make.
    profile.timeline = Timeline(compaction=())
    while profile.timeline.samples < samples:
        for record in job.next_records():
            profile.ingest(record)
    return profile, job


def part_files(samples: int) -> None:
    profile, job = profile_of(samples)
    folder = tempfile.mkdtemp(prefix="gradetop-bench-")
    path = os.path.join(folder, "big.gtop")
    began = time.perf_counter()
    save(profile, path)
    save_s = time.perf_counter() - began
    size = os.path.getsize(path)
    began = time.perf_counter()
    loaded = load(path)
    load_s = time.perf_counter() - began
    assert loaded.timeline.samples == profile.timeline.samples
    print(f"1. finished file, {profile.timeline.samples:,} samples ({len(profile.timeline):,} rows, "
          f"{len(profile.stacks):,} stack nodes)")
    print(f"   size {size / MB:.1f} MB (target <= 30), {size / profile.timeline.samples:.1f} bytes a sample")
    print(f"   save {save_s:.2f} s, load {load_s:.2f} s (targets <= 2 s each)")

    # The same job streamed as it is ingested: 1 s of records, then a flush.
    streamed = new_profile()
    streamed.timeline = Timeline(compaction=())
    stream_path = os.path.join(folder, "stream.gtop")
    writer = SnapshotWriter(streamed, stream_path)
    job = Job(Universe(), seed=3)
    flush_s = []
    while streamed.timeline.samples < samples:
        for _ in range(2):  # two 0.5 s windows: one second of the job
            for record in job.next_records():
                streamed.ingest(record)
        began = time.perf_counter()
        writer.flush()
        flush_s.append(time.perf_counter() - began)
    stream_size = os.path.getsize(stream_path)
    began = time.perf_counter()
    from_stream = load(stream_path)
    stream_load_s = time.perf_counter() - began
    assert from_stream.timeline.samples == streamed.timeline.samples
    print(f"   streamed in 1 s flushes: {stream_size / MB:.1f} MB before its final rewrite, "
          f"flush median {1000 * statistics.median(flush_s):.1f} ms, max {1000 * max(flush_s):.1f} ms "
          f"({100 * sum(flush_s) / len(flush_s):.2f}% of a core); opens in {stream_load_s:.2f} s")
    began = time.perf_counter()
    writer.close()
    print(f"   final rewrite {time.perf_counter() - began:.2f} s, {os.path.getsize(stream_path) / MB:.1f} MB")
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    os.rmdir(folder)


def monitor_cpu(save: bool, seconds: float, folder: str) -> float:
    """CPU seconds of gradetop and its py-spy children per wall second of a record of busy_forever."""
    workload = HERE.parent / "tests" / "workloads" / "busy_forever.py"
    out = os.path.join(folder, "r.gtop")
    args = [sys.executable, "-m", "gradetop", "record", "--duration", str(seconds), "-o", out]
    if not save:
        args.append("--no-save")
    proc = psutil.Popen([*args, "--", sys.executable, str(workload)], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    spent = {}
    began = time.monotonic()
    while proc.poll() is None:
        try:
            for p in [proc, *proc.children(recursive=True)]:
                if p.name() == "py-spy" or p.pid == proc.pid:
                    t = p.cpu_times()
                    spent[p.pid] = t.user + t.system
        except psutil.Error:
            pass
        time.sleep(0.05)
    return sum(spent.values()) / (time.monotonic() - began)


def part_streaming(rounds: int, seconds: float) -> None:
    folder = tempfile.mkdtemp(prefix="gradetop-bench-")
    on, off = [], []
    for _ in range(rounds):
        on.append(monitor_cpu(True, seconds, folder))
        off.append(monitor_cpu(False, seconds, folder))
    print(f"2. monitor CPU on a {seconds:g} s record, {rounds} rounds interleaved: streamed "
          f"{100 * statistics.median(on):.1f}% of a core, --no-save {100 * statistics.median(off):.1f}% "
          f"(ratio {statistics.median(on) / statistics.median(off):.2f})")
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    os.rmdir(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the file sizes and times")
    parser.add_argument("--samples", type=int, default=1_000_000)
    args = parser.parse_args()
    print(describe())
    part_files(args.samples)
    if not args.quick:
        part_streaming(rounds=3, seconds=8)


if __name__ == "__main__":
    main()
