"""The app over a live source: samples arrive on a schedule, pictures follow, the run ends, q quits.

The source is a stand-in for a Session that replays the recorded demo's
samples as StackBatch records from its own thread, as the monitor's ingest
thread would: what is tested is the app's side of the Source interface.
"""

from __future__ import annotations

import asyncio
import threading
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import StackBatch, ThreadSamples
from gradetop.model.snapshot import load
from gradetop.model.source import SourceState
from gradetop.tui.app import GradetopApp, PictureReady
from gradetop.tui.header import StatusHeader
from gradetop.tui.refresher import PictureRequest, Refresher
from gradetop.model.views import ViewFilter

DEMO = Path(__file__).parent / "data" / "demo.gtop"


@lru_cache(maxsize=1)
def recorded_batches() -> tuple[ProfileMeta, list[StackBatch]]:
    """The demo's samples as the collectors would hand them over: one batch per 0.5 s per thread."""
    demo = load(DEMO)
    rows = demo.timeline.rows()
    frames = [(f.function, f.file, f.line) for f in demo.frames.frames]
    paths = {}
    batches = []
    t0 = float(rows["t"].min())
    window = np.floor((rows["t"] - t0) / 0.5).astype(int)
    for w in np.unique(window):
        mask = window == w
        for pid in np.unique(rows["pid"][mask]):
            threads = []
            for tid in np.unique(rows["tid"][mask & (rows["pid"] == pid)]):
                sel = mask & (rows["pid"] == pid) & (rows["tid"] == tid)
                stacks = [paths.setdefault(n, tuple(demo.stacks.path(n))) for n in rows["stack"][sel].tolist()]
                threads.append(ThreadSamples(int(pid), int(tid), "", rows["t"][sel], rows["w"][sel], stacks))
            batches.append(StackBatch(int(pid), t0 + 0.5 * w, t0 + 0.5 * (w + 1), 50, frames, threads))
    return demo.meta, batches


class ReplaySource:
    """Feeds `batches` into a fresh profile, `per_tick` at a time every `every_s`, then ends."""

    live = True
    spawned = False
    writing_to = "replay.gtop"
    workflow_running = False

    def __init__(self, per_tick: int = 2, every_s: float = 0.1) -> None:
        meta, self.batches = recorded_batches()
        self.profile = Profile(ProfileMeta(host=meta.host, start_time=meta.start_time, command=meta.command,
                                           target_pid=meta.target_pid, mode="run"))
        self.title = "replay: the recorded demo"
        self.notices: list[str] = []
        self.per_tick, self.every_s = per_tick, every_s
        self.fed = threading.Event()
        self.finished = threading.Event()
        self._on_samples = None
        self._thread = threading.Thread(target=self._feed, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def subscribe(self, on_samples) -> None:
        self._on_samples = on_samples

    def _feed(self) -> None:
        for i in range(0, len(self.batches), self.per_tick):
            for batch in self.batches[i:i + self.per_tick]:
                self.profile.ingest(batch)
            if self._on_samples:
                self._on_samples()
            time.sleep(self.every_s)
        self.fed.set()

    def state(self) -> SourceState:
        if self.finished.is_set():
            return SourceState(False, "process ended", ended=True)
        return SourceState(True, "running")

    def poll(self) -> bool:
        return self.fed.is_set() and not self.finished.is_set()

    def finish(self) -> None:
        self.profile.meta.end_time = float(self.profile.timeline.t.max())
        self.finished.set()

    def detach(self) -> None:
        self.finish()

    def stop_workflow(self, grace_s: float = 5.0) -> None:
        self.finish()

    def save_copy(self, path: str) -> None:
        raise OSError("not in this test")

    def read_locals(self, pid, tid):
        return []


def test_live_source_arrival_refresh_finish_and_quit():
    source = ReplaySource()
    seen: list[PictureReady] = []

    async def scenario() -> None:
        app = GradetopApp(source, refresh_s=0.2)
        async with app.run_test(size=(80, 24), message_hook=lambda m: isinstance(m, PictureReady)
                                and seen.append(m)) as pilot:
            deadline = time.monotonic() + 60
            while not source.finished.is_set() and time.monotonic() < deadline:
                await pilot.pause(0.05)
            assert source.finished.is_set(), "the app never finished the ended source"
            # The final picture holds every sample and says the run ended.
            total = source.profile.timeline.samples
            while time.monotonic() < deadline and (app.picture is None or app.picture.status.samples != total
                                                     or not app.picture.status.state.ended):
                await pilot.pause(0.05)
            header = str(app.query_one(StatusHeader).render())
            assert "PROCESS ENDED" in header and f"{total:,} samples" in header
            assert "replay.gtop" in header  # where the recording goes is on screen
            await pilot.press("q")
            await pilot.pause(0.2)
        assert not app.is_running

    asyncio.run(scenario())
    counts = [m.picture.status.samples for m in seen]
    # Pictures came while samples arrived (not one at the end), and never went back in time.
    assert len(set(counts)) >= 3, counts
    assert counts == sorted(counts)


class SlowSource(ReplaySource):
    """A source whose pictures take long to compute: refreshes must queue up as one, not pile up."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = 0
        self.most_busy = 0
        self.lock = threading.Lock()

    def state(self) -> SourceState:
        with self.lock:
            self.busy += 1
            self.most_busy = max(self.most_busy, self.busy)
        time.sleep(0.1)
        with self.lock:
            self.busy -= 1
        return super().state()


def test_refreshes_never_overlap_however_often_they_are_asked_for():
    source = SlowSource()
    pictures = []
    refresher = Refresher(source, pictures.append, every_s=0.05).start()
    source.start()
    request = PictureRequest(ViewFilter(), 40)
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            refresher.request(request)
            refresher.wake()
            time.sleep(0.001)
    finally:
        refresher.stop()
        refresher.join(5)
    assert source.most_busy == 1
    # At most one picture per MIN_INTERVAL_S (0.25 s), however many wakes: 2 s gives at most ~9.
    assert 2 <= len(pictures) <= 10, len(pictures)
    assert not refresher._thread.is_alive()
