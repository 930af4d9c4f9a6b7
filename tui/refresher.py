"""The one long-lived thread that turns the live profile into pictures for the screen.

Samples arriving (the session's callback) and the UI's clock both only set an
event; this thread wakes, freezes the profile (model.profile.freeze: no lock
is held while it computes), computes every panel's data for the latest
request, and hands the UI one immutable Picture. Refreshes never overlap,
never pile up, and the UI sets the pace: a new request replaces an old one,
and at most one picture is computed per MIN_INTERVAL_S.

It owns the phase cache: phases of a whole run cost seconds on long jobs, so
they are recomputed at most every PHASES_EVERY_S (and never more than a
tenth of the time), and once more, for good, when the run has ended.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gradetop.model.phase_costs import cost_phases
from gradetop.model.phase_summary import PhaseGroup, summarize
from gradetop.model.gpu_picture import GpuPicture, gpu_picture
from gradetop.model.lanes import PhaseLane, phase_lanes
from gradetop.model.phases import PhaseCost, all_phases
from gradetop.model.profile import Profile
from gradetop.model.ranks import rank_summary
from gradetop.model.records import OutputLine
from gradetop.model.source import Source, SourceState
from gradetop.model.threads import ThreadRow, thread_rows
from gradetop.model.pictures import TimelineData, ViewData, ViewFilter
from gradetop.model.views import timeline_data, view_data

MIN_INTERVAL_S = 0.25
"""Samples arrive per process per window: with many processes, at most this many pictures a second."""
EVERY_S = 1.0
"""Without news, a picture a second anyway: the clock in the header moves."""
PHASES_EVERY_S = 3.0


@dataclass(frozen=True)
class PictureRequest:
    """What the UI wants drawn: set from the UI thread, read by the refresher."""

    filter: ViewFilter
    bins: int
    by_thread: bool = False
    phase_depth: int = 1


@dataclass(frozen=True)
class Status:
    """The header's facts, as of the picture."""

    state: SourceState
    elapsed: float
    rate: float
    asked: float
    samples: int
    dropped: int
    writing_to: str | None


@dataclass(frozen=True)
class Picture:
    request: PictureRequest
    view: ViewData
    timeline: TimelineData
    phases: list[PhaseGroup]
    lanes: list[PhaseLane]
    threads: list[ThreadRow]
    status: Status
    thread_choices: tuple[tuple[str, frozenset | None, frozenset | None], ...]
    """('all threads' | 'process P' | 'thread T name', pids, tids) for the `t` key."""
    output: tuple[OutputLine, ...]
    gpu: GpuPicture
    rank_skew: str = ""
    """The first skewed phase's verdict in a distributed job ('rank 5 spent 1.2x as long in forward...')."""

    @property
    def stuck(self) -> int:
        return sum(r.stuck for r in self.threads)


class Refresher:
    def __init__(self, source: Source, post: Callable[[Picture], None], rules=(), every_s: float = EVERY_S) -> None:
        self.source = source
        self.every_s = every_s
        self.post = post
        self.rules = rules
        self._request: PictureRequest | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gradetop-refresh", daemon=True)
        self._phases: list[PhaseCost] = []
        self._phases_at: float | None = 0.0
        """When phases were last computed; None once the run ended and they are final."""
        self._phases_cost = 0.0
        self.pictures = 0

    def start(self) -> "Refresher":
        self._thread.start()
        return self

    def request(self, request: PictureRequest | None) -> None:
        """Draw this from now on (None: draw nothing new, the view is frozen). Any thread."""
        self._request = request
        self._wake.set()

    def wake(self) -> None:
        """Something changed in the model: a new picture soon. Any thread, cheap."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        last = 0.0
        while not self._stopping.is_set():
            self._wake.wait(self.every_s)
            self._wake.clear()
            if self._stopping.wait(max(0.0, last + MIN_INTERVAL_S - time.monotonic())):
                return
            request = self._request
            if request is None:
                continue
            last = time.monotonic()
            self.post(self.picture(request))
            self.pictures += 1

    def picture(self, request: PictureRequest) -> Picture:
        """Every panel's data for `request`, from a frozen copy of the profile."""
        state = self.source.state()
        profile = self.source.profile.freeze()
        view = view_data(profile, request.filter)
        timeline = timeline_data(profile, request.bins, by_thread=request.by_thread)
        costs = self._phase_costs(profile, state.ended)
        phases = [c.phase for c in costs]
        return Picture(
            request=request,
            view=view,
            timeline=timeline,
            phases=summarize(costs, profile.duration_s),
            lanes=phase_lanes(phases, timeline.t0, timeline.t1, timeline.bins, request.phase_depth),
            threads=thread_rows(profile),
            status=self._status(profile, state),
            thread_choices=thread_choices(profile),
            output=tuple(profile.output),
            gpu=gpu_picture(profile, timeline.t0, timeline.t1, timeline.bins, costs),
            rank_skew=rank_skew(profile, phases),
        )

    def _phase_costs(self, profile: Profile, ended: bool) -> list[PhaseCost]:
        every = max(PHASES_EVERY_S, 10 * self._phases_cost)
        if self._phases_at is not None and (ended or time.monotonic() - self._phases_at >= every):
            began = time.monotonic()
            self._phases = cost_phases(profile, all_phases(profile, self.rules))
            self._phases_cost = time.monotonic() - began
            self._phases_at = None if ended else time.monotonic()
        return self._phases

    def _status(self, profile: Profile, state: SourceState) -> Status:
        meta = profile.meta
        expected = int(profile.asked_ticks)
        ticks = sum(p.ticks for p in profile.processes.values())
        return Status(state=state, elapsed=profile.duration_s, rate=profile.achieved_rate_hz, asked=meta.rate_hz,
                      samples=profile.timeline.samples,
                      dropped=max(0, expected - ticks) if expected > ticks * 1.02 else 0,
                      writing_to=self.source.writing_to)


def thread_choices(profile: Profile) -> tuple:
    choices = [("all threads", None, None)]
    for pid in sorted(profile.processes):
        threads = sorted(t for (p, t) in profile.threads if p == pid)
        if not threads:
            continue
        choices.append((f"process {pid}", frozenset([pid]), None))
        for tid in threads:
            choices.append((f"thread {tid} {profile.threads[(pid, tid)].name}", frozenset([pid]), frozenset([tid])))
    return tuple(choices)


def rank_skew(profile: Profile, phases) -> str:
    """The verdict of the most skewed phase across ranks, where the job has ranks and one is skewed."""
    if not any(info.rank is not None for info in profile.processes.values()):
        return ""
    summary = rank_summary(profile, phases)
    skewed = [e for e in (summary or {}).get("skew", []) if e["skewed"]]
    return skewed[0]["verdict"] if skewed else ""
