"""Many agents, one viewer: how many samples a viewer merges per second, a frame's cost, and the agent's CPU.

    python bench/bench_agents.py [--quick] [--agents 8] [--procs 16] [--rate 100] [--real]

Goal (issue 14): 8 agents x 16 processes x 100 Hz (12,800 samples/s) merged
by one viewer, the UI under 30 ms a frame. Each agent is its own process
(an AgentServer + Hub, as `gradetop agent` runs them) fed by a synthetic
sampler: every 0.5 s a window of `rate/2` samples for each of its processes,
stacks 20-30 frames deep drawn from a few hundred per agent, and psutil-like
readings at 10 Hz. The viewer (this process) is a RemoteSession merging all
of them, while a thread computes the UI's picture (model.views.view_data)
once a second, as the refresher does.

Prints: samples/s offered and merged, chunks/s, the merge's share of one
CPU, how far behind the newest merged sample is, the picture time on the
worker thread, the flame's layout + draw on the UI thread at the end (the
<= 30 ms goal is about that), and each agent's CPU (all of it, and what
streaming alone cost: taking and encoding chunks).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _machine import ForeignLoad, describe  # noqa: E402


def serve(index: int, procs: int, rate: float, seconds: float) -> None:
    """One synthetic agent: print its port, feed for `seconds`, close, print its costs as JSON."""
    from gradetop.collectors.agent import AgentServer, Hub
    from gradetop.model.profile import Profile, ProfileMeta
    from gradetop.model.records import ProcessReading, ResourceBatch, StackBatch, ThreadSamples

    rng = np.random.default_rng(index)
    frames = [(f"func_{i}", f"/src/pkg/module_{i % 40}.py", 10 + i) for i in range(400)]
    pool = [tuple(int(f) for f in rng.integers(0, len(frames), int(rng.integers(20, 31)))) for _ in range(300)]
    base = 1000 + index * 100
    profile = Profile(ProfileMeta(host=f"node{index}", command=["python", "train.py"], target_pid=base))
    server = AgentServer("127.0.0.1", 0)
    hub = Hub(profile).start()
    server.serve(hub)
    print(server.address[1], flush=True)
    sys.stdin.readline()  # the viewer is connected: go
    window = 0.5
    per = int(rate * window)
    start = time.time()
    cpu0 = time.process_time()
    t = start
    next_reading = start
    while time.time() - start < seconds:
        # A window reaches the model after it ends, as py-spy's do.
        time.sleep(max(0.0, t + window - time.time()))
        for k in range(procs):
            pid = base + k
            times = t + np.arange(per) / rate
            stacks = [pool[i] for i in rng.integers(0, len(pool), per)]
            profile.ingest(StackBatch(pid, t, t + window, per, frames,
                                      [ThreadSamples(pid, pid, "MainThread", times, np.full(per, 1 / rate, np.float32),
                                                     stacks)]))
        while next_reading < t + window:
            profile.ingest(ResourceBatch(next_reading, [
                ProcessReading(base + k, base if k else 1, "python", ["python", "train.py"], start, "running",
                               next_reading - start, 100 << 20, 0, 0, 1,
                               {base + k: (next_reading - start, next_reading - start)}, ranks=(index * procs + k, k, 0))
                for k in range(procs)]))
            next_reading += 0.1
        t += window
    cpu = time.process_time() - cpu0
    hub.close()
    server.stop()
    print(json.dumps({"cpu_s": cpu, "wall_s": time.time() - start, "stream_s": hub.encode_s,
                      "bytes": hub.bytes_encoded, "samples": profile.timeline.samples}), flush=True)


def real_agent_cpu(viewer: bool, seconds: float) -> float:
    """% of one CPU the `gradetop agent` process itself uses (monitor + hub; its py-spy children excluded)
    on bench/workload.py, with or without one viewer recording from it."""
    import psutil

    here = os.path.dirname(os.path.abspath(__file__))
    agent = subprocess.Popen([sys.executable, "-m", "gradetop", "agent", "--listen", "127.0.0.1:0", "--duration",
                              str(seconds + 8), "--", sys.executable, os.path.join(here, "workload.py"),
                              "--work", "1000000"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    port = agent.stderr.readline().split("127.0.0.1:")[1].split()[0]
    watcher = subprocess.Popen([sys.executable, "-m", "gradetop", "record", "--agent", f"127.0.0.1:{port}",
                                "--no-save"], stderr=subprocess.DEVNULL) if viewer else None
    proc = psutil.Process(agent.pid)
    time.sleep(5)
    c0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
    time.sleep(seconds)
    c1, t1 = sum(proc.cpu_times()[:2]), time.monotonic()
    agent.wait()
    if watcher is not None:
        watcher.wait()
    return 100 * (c1 - c0) / (t1 - t0)


async def flame_ms(profile, size=(200, 60), rounds=5) -> float:
    from gradetop.model.source import FileSource
    from gradetop.model.views import ViewFilter, view_data
    from gradetop.tui.app import GradetopApp
    from gradetop.tui.flame import FlameView

    app = GradetopApp(FileSource(profile, "bench.gtop"), refresh_s=3600)
    times = []
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.5)
        flame = app.query_one(FlameView)
        view = view_data(profile, ViewFilter())
        for _ in range(rounds):
            t0 = time.perf_counter()
            flame.show(view.tree, view.children, view.labels, view.files)
            for y in range(flame.scrollable_content_region.height):
                flame.render_line(y)
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--procs", type=int, default=16)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--real", action="store_true", help="also measure a real `gradetop agent` on bench/workload.py")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    if args.serve is not None:
        serve(args.serve, args.procs, args.rate, seconds)
        return

    from gradetop.collectors.remote import RemoteOptions, RemoteSession
    from gradetop.model.views import ViewFilter, view_data

    print(describe())
    foreign = ForeignLoad()
    agents = [subprocess.Popen([sys.executable, __file__, "--serve", str(i), "--procs", str(args.procs), "--rate",
                                str(args.rate), "--seconds", str(seconds)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for i in range(args.agents)]
    ports = [int(a.stdout.readline()) for a in agents]
    viewer = RemoteSession([f"127.0.0.1:{p}" for p in ports], options=RemoteOptions(save=False)).open().start()
    for a in agents:
        a.stdin.write("go\n")
        a.stdin.flush()
    pictures: list[float] = []
    lags: list[float] = []
    stop = threading.Event()

    def refresher() -> None:
        # The UI's worker: a picture once a second from a frozen profile.
        while not stop.wait(1.0):
            t0 = time.perf_counter()
            picture = viewer.profile.freeze()
            view_data(picture, ViewFilter())
            pictures.append(time.perf_counter() - t0)
            if len(picture.timeline):
                lags.append(time.time() - float(picture.timeline.t.max()))

    worker = threading.Thread(target=refresher, daemon=True)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.monotonic()
    worker.start()
    results = [json.loads(a.stdout.readline()) for a in agents]
    for a in agents:
        a.wait()
    deadline = time.monotonic() + 10
    while not viewer.poll() and time.monotonic() < deadline:
        time.sleep(0.1)
    wall = time.monotonic() - wall0
    stop.set()
    worker.join()
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    viewer.finish()
    merged = viewer.profile.timeline.samples
    offered = args.agents * args.procs * args.rate
    chunks = sum(link.chunks for link in viewer.links)
    apply_s = sum(link.apply_s for link in viewer.links)
    viewer_cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    print(f"{args.agents} agents x {args.procs} processes x {args.rate:g} Hz for {seconds:g} s: "
          f"{offered:,.0f} samples/s offered")
    print(f"viewer: merged {merged:,} of {sum(r['samples'] for r in results):,} samples "
          f"({merged / seconds:,.0f}/s), {chunks / seconds:,.0f} chunks/s; merge calls took {apply_s:.2f} s of wall "
          f"time, GIL and lock waits included; the whole viewer process {viewer_cpu:.1f} CPU-s "
          f"({100 * viewer_cpu / wall:.0f}% of one CPU, pictures included)")
    if lags:
        print(f"newest merged sample behind the clock: median {statistics.median(lags):.2f} s, max {max(lags):.2f} s")
    if pictures:
        print(f"picture (view_data on the worker thread): median {1000 * statistics.median(pictures):.1f} ms, "
              f"max {1000 * max(pictures):.1f} ms")
    print(f"flame layout + draw on the UI thread, {len(viewer.profile.stacks):,} nodes, 200x60: "
          f"{asyncio.run(flame_ms(viewer.profile)):.1f} ms (goal <= 30 ms)")
    cpu = [100 * r["cpu_s"] / r["wall_s"] for r in results]
    stream = [100 * r["stream_s"] / r["wall_s"] for r in results]
    print(f"agent CPU (synthetic ingest + streaming): median {statistics.median(cpu):.1f}% of one CPU "
          f"(max {max(cpu):.1f}%); streaming alone (take + encode + fan-out): median {statistics.median(stream):.1f}%; "
          f"{statistics.median([r['bytes'] for r in results]) / seconds / 1e3:.0f} kB/s per agent")
    if args.real:
        quiet, watched = real_agent_cpu(False, seconds / 2), real_agent_cpu(True, seconds / 2)
        print(f"real agent on bench/workload.py (4 threads, 100 Hz): its own process {quiet:.1f}% of one CPU "
              f"without a viewer, {watched:.1f}% with one (py-spy's processes not counted)")
    print(foreign.summary())


if __name__ == "__main__":
    main()
