"""The NVML sampler's own CPU cost at 4 Hz and 10 Hz, on the scripted fake GPU (not a timed test).

The sampler thread runs as in a recording (GpuSampler.start) against
tests/fake_pynvml.py for `--seconds` per setting; its CPU time is read from
the kernel for that one thread (/proc/self/task/TID/stat), so neither the
benchmark's own loop nor other threads count. Settings: 1 and 8 devices,
each with 4 processes on it (2 ours, 2 unmatched) (per-process memory and utilisation,
NSpid mapping of the watched pids each reading) and GPM on.

The fake answers from Python in microseconds; a real driver's calls are
ioctls of 10-100 us each (more on a busy GPU), so real costs are higher by
roughly (calls per reading x that latency): the figures here are the
collector's own Python overhead, which is what gradetop controls.

    python bench/bench_gpu.py              # 10 s per setting, ~1 min
    python bench/bench_gpu.py --seconds 3  # quick
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fake_pynvml  # noqa: E402
from _machine import describe  # noqa: E402

from gradetop.collectors.gpu import GpuSampler  # noqa: E402
from gradetop.model.gpu import GpuModel  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def thread_cpu_s(tid: int) -> float:
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def measure(devices: int, rate_hz: float, seconds: float) -> dict:
    ours = [os.getpid(), os.getppid()]
    # Two of ours and two the driver reports that match nothing (another job, or host pids).
    fake_pynvml.configure({"devices": [{}] * devices, "processes": ours + [100_000, 100_001],
                           "timeline": [{"util": 60, "sm_active": 40}]})
    records: list = []
    sampler = GpuSampler(records.append, lambda: ours, rate_hz=rate_hz, nvml=fake_pynvml)
    sampler.start()
    while sampler._thread.native_id is None:
        time.sleep(0.001)
    tid = sampler._thread.native_id
    time.sleep(0.5)  # past open(): the steady state is what a long job pays
    cpu0, wall0, n0 = thread_cpu_s(tid), time.perf_counter(), len(records)
    time.sleep(seconds)
    cpu1, wall1, n1 = thread_cpu_s(tid), time.perf_counter(), len(records)
    sampler.stop()
    sampler.join()
    readings = n1 - n0
    model = GpuModel()
    began = time.perf_counter()
    for r in records:
        model.ingest(r)
    ingest_s = time.perf_counter() - began
    return {
        "cpu_share": (cpu1 - cpu0) / (wall1 - wall0),
        "per_reading_ms": 1000 * (cpu1 - cpu0) / max(readings, 1),
        "achieved_hz": readings / (wall1 - wall0),
        "ingest_us": 1e6 * ingest_s / max(len(records), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(describe())
    print(f"{'devices':>7} {'rate':>6} {'achieved':>9} {'CPU of one core':>16} {'per reading':>12} {'ingest/record':>14}")
    results = {}
    for devices in (1, 8):
        for rate in (4.0, 10.0):
            r = results[(devices, rate)] = measure(devices, rate, args.seconds)
            print(f"{devices:>7} {rate:>4.0f}Hz {r['achieved_hz']:>7.2f}Hz {100 * r['cpu_share']:>15.2f}% "
                  f"{r['per_reading_ms']:>10.2f}ms {r['ingest_us']:>12.0f}us")
    for devices in (1, 8):
        ratio = results[(devices, 10.0)]["cpu_share"] / max(results[(devices, 4.0)]["cpu_share"], 1e-9)
        print(f"{devices} device(s): 10 Hz costs {ratio:.2f}x the CPU of 4 Hz (2.5x expected: cost is per reading)")
    print("note: CPU is read in clock ticks (10 ms); short runs round coarsely.")


if __name__ == "__main__":
    main()
