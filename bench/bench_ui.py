"""UI speed: rendering the flame of a 20k-node tree, and sample-to-screen latency on a live run.

    python bench/bench_ui.py [--quick]

Goals (issue 4): one flame frame <= 30 ms for a 20k-node tree; a sample on
screen <= 1 s after it was taken.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time

import numpy as np

from gradetop.collectors.window import StackOptions
from gradetop.model.profile import Profile
from gradetop.model.records import StackBatch, ThreadSamples
from gradetop.model.views import ViewFilter, view_data
from gradetop.tui.app import GradetopApp, PictureReady
from gradetop.tui.flame import FlameView
from gradetop.collectors.session import Session, SessionOptions
from gradetop.model.source import FileSource


def big_profile(nodes_wanted: int = 20_000, seed: int = 0) -> Profile:
    """A profile whose tree has about `nodes_wanted` nodes.

    Frames are drawn with Zipf-like weights, so a few paths are heavy and
    many are thin, as in real programs (uniform stacks give a flat, easy tree).
    """
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, 600 - 3 + 1) ** 1.1
    popularity /= popularity.sum()
    frames = [(f"func_{i}", f"/src/pkg/module_{i % 40}.py", 10 + i) for i in range(600)]
    profile = Profile()
    t = profile.meta.start_time
    while len(profile.stacks) < nodes_wanted:
        stacks = []
        for _ in range(2000):
            depth = int(rng.integers(3, 30))
            prefix = [0, 1, 2][: min(3, depth)]
            stacks.append(tuple(prefix + list(3 + rng.choice(len(popularity), depth - len(prefix), p=popularity))))
        times = t + np.arange(len(stacks)) * 0.01
        batch = StackBatch(1, float(times[0]), float(times[-1]), len(stacks), frames,
                           [ThreadSamples(1, 1, "main", times, np.full(len(stacks), 0.01, dtype=np.float32), stacks)])
        profile.ingest(batch)
        t = float(times[-1]) + 0.01
    profile.meta.end_time = t
    return profile


async def flame_frame_ms(profile: Profile, size: tuple[int, int], rounds: int) -> dict[str, float]:
    app = GradetopApp(FileSource(profile, "bench.gtop"), refresh_s=3600)
    out = {"nodes": len(profile.stacks)}
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.5)
        flame = app.query_one(FlameView)
        view = view_data(profile, ViewFilter())
        compute, layout, draw = [], [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            view = view_data(profile, ViewFilter())
            t1 = time.perf_counter()
            flame.show(view.tree, view.children, view.labels, view.files)
            t2 = time.perf_counter()
            for y in range(flame.scrollable_content_region.height):
                flame.render_line(y)
            t3 = time.perf_counter()
            compute.append(t1 - t0)
            layout.append(t2 - t1)
            draw.append(t3 - t2)
        out.update(view_ms=1000 * statistics.median(compute), layout_ms=1000 * statistics.median(layout),
                   draw_ms=1000 * statistics.median(draw))
    return out


async def latency(seconds: float) -> dict[str, float]:
    """Age of the newest and of the oldest-new sample when a picture reaches the screen."""
    workload = [sys.executable, "-c", "import time\nwhile True:\n    sum(range(10000))"]
    source = Session.spawn(workload, SessionOptions(StackOptions(), save=False), mode="run", capture_output=True)
    newest_age, oldest_age = [], []
    seen_until = [0.0]

    def hook(message) -> None:
        if isinstance(message, PictureReady) and message.view.span is not None:
            now = time.time()
            newest = message.view.span[1]
            if seen_until[0]:
                newest_age.append(now - newest)
                # The oldest sample that is new in this picture: the first after the previous newest.
                oldest_age.append(now - seen_until[0])
            seen_until[0] = newest

    app = GradetopApp(source)
    try:
        async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
            await pilot.pause(seconds)
    finally:
        stopper = threading.Thread(target=source.stop_workflow, kwargs={"grace_s": 1.0})
        stopper.start()
        stopper.join()
    return {"pictures": len(newest_age), "newest_median_s": statistics.median(newest_age),
            "newest_max_s": max(newest_age), "oldest_new_median_s": statistics.median(oldest_age),
            "oldest_new_max_s": max(oldest_age)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    profile = big_profile()
    for size in ((80, 24), (200, 60)):
        r = asyncio.run(flame_frame_ms(profile, size, 3 if args.quick else 10))
        print(f"flame {size[0]}x{size[1]}, {r['nodes']} nodes: view {r['view_ms']:.1f} ms (worker thread), "
              f"layout {r['layout_ms']:.1f} ms + draw {r['draw_ms']:.1f} ms = "
              f"{r['layout_ms'] + r['draw_ms']:.1f} ms on the UI thread (goal <= 30 ms)")
    r = asyncio.run(latency(8 if args.quick else 20))
    print(f"sample-to-screen over {r['pictures']} pictures: newest sample {r['newest_median_s']:.2f} s median, "
          f"{r['newest_max_s']:.2f} s max; oldest new sample {r['oldest_new_median_s']:.2f} s median, "
          f"{r['oldest_new_max_s']:.2f} s max (goal <= 1 s)")


if __name__ == "__main__":
    main()
