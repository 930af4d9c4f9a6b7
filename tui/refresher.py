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

import os
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
    panels: frozenset[str] | None = None
    """The panels up; the timeline's lanes (most of a picture's cost, over every sample) are computed only
    where it is one of them. None: all."""


@dataclass(frozen=True)
class Status:
    """The header's facts, as of the picture."""

    state: SourceState
    elapsed: float
    rate: float
    asked: float
    samples: int
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
    def __init__(self, source: Source, post: Callable[[Picture], None], rules=(), every_s: float = EVERY_S,
                 failed: Callable[[str], None] | None = None) -> None:
        self.source = source
        self.every_s = every_s
        self.post = post
        self.failed = failed
        """Told, once per kind of error, that a picture could not be computed (the screen keeps the last)."""
        self._failure: str | None = None
        self.rules = rules
        self._request: PictureRequest | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gradetop-refresh", daemon=True)
        self._phases: list[PhaseCost] = []
        self._phases_at: float | None = 0.0
        """When phases were last computed; None once the run ended and they are final."""
        self._phases_cost = 0.0
        self._kept: dict[tuple, object] = {}
        """Panels of a source that never changes (a saved file), by what they depend on."""
        self._kept_profile: Profile | None = None
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
            try:
                picture = self.picture(request)
            except Exception as exc:  # a view's bug must not end every later picture: say it once, go on
                if os.environ.get("GRADETOP_DEBUG"):
                    raise
                said = f"{type(exc).__name__}: {exc}"
                if self.failed is not None and said != self._failure:
                    self._failure = said
                    self.failed(f"internal error drawing the view: {said} (set GRADETOP_DEBUG=1 to see where)")
                continue
            self.post(picture)
            self.pictures += 1

    def picture(self, request: PictureRequest) -> Picture:
        """Every panel's data for `request`, from a frozen copy of the profile."""
        state = self.source.state()
        # A saved file never changes: its frozen profile, and each panel for what the panel depends on,
        # are computed once (a 1000-deep recursion's picture took seconds, on every refresh, at 100% CPU).
        fixed = not self.source.live
        profile = self._kept_profile if fixed else None
        if profile is None:
            profile = self.source.profile.freeze()
            self._kept_profile = profile if fixed else None
        once = self._once if fixed else _now
        f, bins, by_thread = request.filter, request.bins, request.by_thread
        view = once(("view", f), lambda: view_data(profile, f))
        lanes = request.panels is None or "timeline" in request.panels
        timeline = once(("timeline", bins, by_thread, lanes),
                        lambda: timeline_data(profile, bins, by_thread=by_thread, lanes=lanes))
        costs = self._phase_costs(profile, state.ended)
        phases = [c.phase for c in costs]
        return Picture(
            request=request,
            view=view,
            timeline=timeline,
            phases=once(("phases",), lambda: summarize(costs, profile.duration_s)),
            lanes=once(("lanes", bins, by_thread, request.phase_depth),
                       lambda: phase_lanes(phases, timeline.t0, timeline.t1, timeline.bins, request.phase_depth)),
            threads=once(("threads",), lambda: thread_rows(profile)),
            status=self._status(profile, state),
            thread_choices=once(("choices",), lambda: thread_choices(profile)),
            output=once(("output",), lambda: tuple(profile.output)),
            gpu=once(("gpu", bins, by_thread),
                     lambda: gpu_picture(profile, timeline.t0, timeline.t1, timeline.bins, costs)),
            rank_skew=once(("skew",), lambda: rank_skew(profile, phases)),
        )

    def _once(self, key: tuple, compute: Callable[[], object]) -> object:
        """`compute()` the first time `key` is asked (a source that never changes); the last few keys kept."""
        if key not in self._kept:
            if len(self._kept) > 32:
                self._kept.clear()  # many filters (time ranges, threads) were drawn: start afresh
            self._kept[key] = compute()
        return self._kept[key]

    def _phase_costs(self, profile: Profile, ended: bool) -> list[PhaseCost]:
        every = max(PHASES_EVERY_S, 10 * self._phases_cost)
        if self._phases_at is not None and (ended or time.monotonic() - self._phases_at >= every):
            began = time.monotonic()
            self._phases = cost_phases(profile, all_phases(profile, self.rules))
            self._phases_cost = time.monotonic() - began
            self._phases_at = None if ended else time.monotonic()
        return self._phases

    def _status(self, profile: Profile, state: SourceState) -> Status:
        # No 'dropped' count beside the rate: py-spy ticking below the asked rate loses no time (each sample
        # stands for the stretch it saw), so the rate alone says it, in amber under 90%.
        return Status(state=state, elapsed=profile.duration_s, rate=profile.achieved_rate_hz,
                      asked=profile.meta.rate_hz, samples=profile.timeline.samples, writing_to=self.source.writing_to)


def _now(key: tuple, compute: Callable[[], object]) -> object:
    """`compute()` every time: a live source changes between pictures."""
    return compute()


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
