"""The gradetop app: panels over one profile, refreshed from a worker so the screen never waits.

Every `refresh_s` a thread worker computes a ViewData (tree, top functions,
processes) and a TimelineData for the current filter, then posts them; the
widgets draw what arrives. Newer pictures replace older ones in the queue.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import Footer, Log, Tab, Tabs

from gradetop.model.gpu_picture import GpuPicture, gpu_picture
from gradetop.model.phase_costs import cost_phases
from gradetop.model.phase_summary import PhaseGroup, summarize
from gradetop.model.phases import PhaseCost, PhaseLane, all_phases, phase_lanes
from gradetop.model.rules import parse_rules
from gradetop.model.snapshot import save
from gradetop.model.threads import ThreadRow, thread_rows
from gradetop.model.views import TimelineData, ViewData, ViewFilter, timeline_data, view_data
from gradetop.tui.flame_panel import FlamePanel
from gradetop.tui.gpu_panel import GpuPanel
from gradetop.tui.header import StatusHeader
from gradetop.tui.phase_table import PhaseTable
from gradetop.tui.processes import ProcessTable
from gradetop.tui.stack_screen import StackScreen
from gradetop.tui.threads import ThreadTable
from gradetop.tui.screens import HelpScreen, QuitScreen
from gradetop.tui.timeline import TimelineView
from gradetop.tui.top import TopTable

PANELS = ("flame", "top", "timeline", "phases", "threads", "processes", "output", "gpu")
WINDOWS = (None, 10.0, 60.0, 300.0)
WIDE = (150, 42)
"""From this size up, every panel shows at once; below it, panels are tabs."""


PHASES_EVERY_S = 3.0
"""Phases are recomputed from the whole run: at most this often while it runs, and never more
than a tenth of the time (an hour of samples takes seconds, under the lock the ingest needs)."""


class ViewReady(Message):
    """A new picture of the profile, computed off the UI thread."""

    def __init__(self, view: ViewData, timeline: TimelineData, phases: list[PhaseGroup],
                 lanes: list[PhaseLane], threads: list[ThreadRow], gpu: GpuPicture | None = None) -> None:
        super().__init__()
        self.gpu = gpu
        self.threads = threads
        self.view = view
        self.timeline = timeline
        self.phases = phases
        self.lanes = lanes

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ViewReady)


class SamplesArrived(Message):
    """New samples are in the model (posted from the monitor's ingest thread)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SamplesArrived)


MIN_REDRAW_S = 0.25
"""Samples arrive per process per window: with many processes, redraw at most this often."""


class GradetopApp(App):
    CSS_PATH = "gradetop.tcss"
    TITLE = "gradetop"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS = [
        Binding("q", "quit_gradetop", "Quit"),
        Binding("s", "save", "Save"),
        Binding("p", "freeze", "Freeze"),
        Binding("t", "cycle_threads", "Threads"),
        Binding("w", "cycle_window", "Window"),
        Binding("i", "toggle_idle", "Idle"),
        Binding("T", "lanes_per_thread", "Lanes", show=False),
        Binding("f", "fold_phases", "Fold phases", show=False),
        Binding("question_mark", "help", "Help"),
        *(Binding(str(i + 1), f"panel('{name}')", name.title(), show=False) for i, name in enumerate(PANELS)),
    ]

    def __init__(self, source, refresh_s: float = 1.0, save_path: str | None = None) -> None:
        super().__init__()
        self.source = source
        options = source.profile.meta.options
        self.rules = parse_rules({"phase": options["phase_rules"]}) if options.get("phase_rules") else ()
        self.refresh_s = refresh_s
        self.save_path = save_path
        # Active time by default, as py-spy top: where the CPUs went. 'i' shows idle threads too.
        self.filter = ViewFilter(include_idle=bool(source.profile.meta.options.get("idle", False)))
        self.frozen = False
        self.active_panel = "flame"
        self.lanes_by_thread = False
        self.last_view: ViewData | None = None
        self._thread_choices: list[tuple[str, frozenset | None, frozenset | None]] = []
        self._output_seen = 0
        self._finishing = False
        self._last_compute = 0.0
        self._redraw_pending = False
        self.phase_depth = 1
        self.stuck = 0
        self._phases: list[PhaseCost] = []
        self._phases_cost = 0.0
        self._phases_at: float | None = 0.0
        """When phases were last computed; None once the run ended and they are final."""

    # ---- layout ----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        yield Tabs(*(Tab(f"{i + 1} {name.title()}", id=f"tab-{name}") for i, name in enumerate(PANELS)), id="tabs")
        with Vertical(id="panels"):
            yield FlamePanel(id="flame-panel", classes="panel")
            with Horizontal(id="middle"):
                yield TopTable(id="top", classes="panel")
                yield PhaseTable(id="phases", classes="panel")
            with Horizontal(id="bottom"):
                yield TimelineView(id="timeline", classes="panel")
                with Vertical(id="side"):
                    yield ThreadTable(id="threads", classes="panel")
                    yield ProcessTable(id="processes", classes="panel")
                    yield Log(id="output", classes="panel", max_lines=5000)
                    yield GpuPanel(id="gpu", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        if not self.source.live and not self.source.profile.output:
            self.query_one("#output", Log).write_line("(no output: gradetop keeps what a workflow prints when `run` starts it)")
        monitor = getattr(self.source, "monitor", None)
        if monitor is not None:
            # Redraw when samples arrive, not on a clock: a clock adds up to its period to the latency.
            monitor.on_samples = lambda: self.post_message(SamplesArrived())
        self.source.start()
        self.apply_layout()
        self.query_one("#flame").focus()
        self.set_interval(self.refresh_s, self.tick)
        self.tick()

    def on_resize(self, event) -> None:
        # This runs before the app records its new size: lay out for the size the event brings.
        self.apply_layout(event.size)

    def panel_widget(self, name: str):
        return self.query_one("#flame-panel" if name == "flame" else f"#{name}")

    def apply_layout(self, size=None) -> None:
        size = size or self.size
        narrow = size.width < WIDE[0] or size.height < WIDE[1]
        self.screen.set_class(narrow, "narrow")
        active = self.active_panel
        for name in PANELS:
            self.panel_widget(name).display = not narrow or name == active
        self.query_one("#middle").display = not narrow or active in ("top", "phases")
        self.query_one("#bottom").display = not narrow or active in ("timeline", "threads", "processes", "output", "gpu")
        self.query_one("#side").display = not narrow or active in ("threads", "processes", "output", "gpu")

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        name = event.tab.id.removeprefix("tab-")
        if name != self.active_panel:
            self.action_panel(name)

    def action_panel(self, name: str) -> None:
        self.active_panel = name
        self.query_one(Tabs).active = f"tab-{name}"
        self.apply_layout()
        target = self.panel_widget(name)
        (target.flame if name == "flame" else target).focus()
        # A panel drawn while hidden had no width: draw it again at its size.
        self.call_after_refresh(self.tick)

    def on_descendant_focus(self, event) -> None:
        # In the wide layout, focusing a panel (Tab key, mouse) makes its tab the active one.
        for name in PANELS:
            panel = self.panel_widget(name)
            if event.widget is panel or panel in event.widget.ancestors:
                if name != self.active_panel:
                    self.active_panel = name
                    self.query_one(Tabs).active = f"tab-{name}"
                break

    # ---- refresh ------------------------------------------------------------------

    def on_samples_arrived(self, message: SamplesArrived) -> None:
        wait = MIN_REDRAW_S - (time.monotonic() - self._last_compute)
        if wait <= 0:
            self.tick()
        elif not self._redraw_pending:
            self._redraw_pending = True
            self.set_timer(wait, self._pending_redraw)

    def _pending_redraw(self) -> None:
        self._redraw_pending = False
        self.tick()

    def tick(self) -> None:
        try:
            self._tick()
        except NoMatches:
            pass  # a timer that fires while the app closes: its widgets are gone

    def _tick(self) -> None:
        self._last_compute = time.monotonic()
        if self.source.poll() and not self._finishing:
            self._finishing = True
            self.finish_source()
        self.pull_output()
        if not self.frozen:
            self.compute_view(self.filter, self.query_one(TimelineView).bins_wanted, self.lanes_by_thread)
        self.update_header()

    @work(thread=True, exclusive=True, group="view")
    def compute_view(self, flt: ViewFilter, bins: int, by_thread: bool) -> None:
        profile = self.source.profile
        view = view_data(profile, flt)
        timeline = timeline_data(profile, bins, by_thread=by_thread)
        ended = self.source.state().ended
        # While the run goes on, every few seconds; once it ended, once more and then never again.
        every = max(PHASES_EVERY_S, 10 * self._phases_cost)
        if self._phases_at is not None and (ended or time.monotonic() - self._phases_at >= every):
            began = time.monotonic()
            self._phases = cost_phases(profile, all_phases(profile, self.rules))
            self._phases_cost = time.monotonic() - began
            self._phases_at = None if ended else time.monotonic()
        phases = [c.phase for c in self._phases]
        groups = summarize(self._phases, profile.duration_s)
        lanes = phase_lanes(phases, timeline.t0, timeline.t1, timeline.bins, self.phase_depth)
        gpu = gpu_picture(profile, timeline.t0, timeline.t1, timeline.bins, self._phases)
        self.post_message(ViewReady(view, timeline, groups, lanes, thread_rows(profile), gpu))

    def on_view_ready(self, message: ViewReady) -> None:
        if self.frozen:
            return
        self.last_view = message.view
        self.stuck = sum(r.stuck for r in message.threads)
        try:
            self.query_one(FlamePanel).show(message.view)
            self.query_one(TopTable).show(message.view)
            self.query_one(ProcessTable).show(message.view.processes, message.gpu)
            self.query_one(TimelineView).show(message.timeline, message.lanes, message.gpu)
            self.query_one(GpuPanel).show(message.gpu)
            self.query_one(PhaseTable).show(message.phases)
            self.query_one(ThreadTable).show(message.threads)
        except NoMatches:
            return  # a picture that arrives while the app closes has nowhere to go
        self.update_header()

    @work(thread=True, exclusive=True, group="finish")
    def finish_source(self) -> None:
        self.source.finish()
        self.call_from_thread(self.on_source_finished)

    def on_source_finished(self) -> None:
        state = self.source.state()
        self.notify(f"workflow {state.label}: this is the final picture (q quits, s saves)", timeout=6)
        self.tick()

    def pull_output(self) -> None:
        output = self.source.profile.output
        lines = list(output)
        new = len(lines) - self._output_seen if len(lines) < output.maxlen else None
        log = self.query_one("#output", Log)
        if new is None:
            # The bounded buffer rolled over: show its tail.
            log.clear()
            log.write_lines([line.text for line in lines[-1000:]])
            self._output_seen = 0
        elif new > 0:
            log.write_lines([line.text for line in lines[-new:]])
            self._output_seen = len(lines)

    def update_header(self) -> None:
        profile = self.source.profile
        meta = profile.meta
        view = self.last_view
        state = self.source.state()
        rate = profile.achieved_rate_hz
        expected = int(sum(p.sampled_s for p in profile.processes.values()) * meta.rate_hz)
        ticks = sum(p.ticks for p in profile.processes.values())
        gpu = self.query_one(GpuPanel).picture
        self.query_one(StatusHeader).show(
            title=self.source.title,
            elapsed=profile.duration_s,
            rate=rate,
            asked=meta.rate_hz,
            samples=profile.timeline.samples,
            dropped=max(0, expected - ticks) if expected > ticks * 1.02 else 0,
            state=state.label,
            frozen=self.frozen,
            filter_text=(view.filter if view else self.filter).describe(),
            alert=f"{self.stuck} STUCK THREAD{'S' if self.stuck > 1 else ''} (5)" if self.stuck else "",
            gpu=gpu.headline() if gpu is not None and (gpu.devices or gpu.state) else "",
        )

    def set_filter(self, **changes) -> None:
        self.filter = replace(self.filter, **changes)
        self.tick()

    # ---- actions ------------------------------------------------------------------------

    def action_freeze(self) -> None:
        self.frozen = not self.frozen
        self.notify("view frozen: collection goes on (p resumes)" if self.frozen else "live again", timeout=2)
        self.tick()

    def action_cycle_threads(self) -> None:
        profile = self.source.profile
        with profile.lock:
            choices = [("all threads", None, None)]
            for pid in sorted(profile.processes):
                threads = sorted(t for (p, t) in profile.threads if p == pid)
                if not threads:
                    continue
                choices.append((f"process {pid}", frozenset([pid]), None))
                for tid in threads:
                    name = profile.threads[(pid, tid)].name
                    choices.append((f"thread {tid} {name}", frozenset([pid]), frozenset([tid])))
        current = (self.filter.pids, self.filter.tids)
        index = next((i for i, c in enumerate(choices) if (c[1], c[2]) == current), 0)
        label, pids, tids = choices[(index + 1) % len(choices)]
        self.notify(label, timeout=1.5)
        self.set_filter(pids=pids, tids=tids)

    def action_cycle_window(self) -> None:
        index = WINDOWS.index(self.filter.last_s) if self.filter.last_s in WINDOWS else 0
        window = WINDOWS[(index + 1) % len(WINDOWS)]
        self.notify("whole run" if window is None else f"last {window:g} s", timeout=1.5)
        self.set_filter(last_s=window)

    def action_fold_phases(self) -> None:
        self.phase_depth = 0 if self.phase_depth else 1
        self.notify("nested phases shown" if self.phase_depth else "top-level phases only", timeout=1.5)
        self.tick()

    def on_phase_table_chosen(self, message: PhaseTable.Chosen) -> None:
        group = message.group
        pids = frozenset(pid for pid, _ in group.threads)
        tids = frozenset(tid for _, tid in group.threads)
        self.notify(f"flame and top show phase {group.kind}", timeout=2)
        self.set_filter(t0=group.first_start, t1=group.last_end, pids=pids, tids=tids, last_s=None)
        self.action_panel("flame")

    def on_thread_table_opened(self, message: ThreadTable.Opened) -> None:
        profile = self.source.profile
        with profile.lock:
            frames = profile.stacks.frames_of(message.row.node)
        self.push_screen(StackScreen(message.row, frames, live=self.source.live and not self.source.state().ended))

    def action_toggle_idle(self) -> None:
        idle = not self.filter.include_idle
        self.notify("idle time included (wall time)" if idle else "active time only", timeout=1.5)
        self.set_filter(include_idle=idle)

    def action_lanes_per_thread(self) -> None:
        self.lanes_by_thread = not self.lanes_by_thread
        self.tick()

    def on_timeline_view_range_selected(self, message: TimelineView.RangeSelected) -> None:
        self.notify(f"flame and top show {message.t1 - message.t0:.1f} s of the run", timeout=2)
        self.set_filter(t0=message.t0, t1=message.t1, last_s=None)

    def on_timeline_view_range_cleared(self, message: TimelineView.RangeCleared) -> None:
        self.set_filter(t0=None, t1=None, pids=None, tids=None)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_save(self) -> None:
        profile = self.source.profile
        path = self.save_path or f"gradetop-{profile.meta.target_pid or os.getpid()}-{time.strftime('%Y%m%d-%H%M%S')}.gtop"
        self.save_snapshot(path)

    @work(thread=True, group="save")
    def save_snapshot(self, path: str) -> None:
        try:
            save(self.source.profile, path)
        except OSError as exc:
            self.call_from_thread(self.notify, f"cannot save {path}: {exc.strerror or exc}", severity="error")
            return
        self.call_from_thread(self.notify, f"saved {path}", timeout=4)

    def action_quit_gradetop(self) -> None:
        source = self.source
        if not source.live or source.state().ended:
            self.exit()
        elif source.spawned:
            self.push_screen(QuitScreen(" ".join(source.target.command)), self.quit_chosen)
        else:
            self.notify("detaching: the process runs on", timeout=2)
            self.leave(stop=False)

    def quit_chosen(self, choice: str | None) -> None:
        if choice == "stop":
            self.notify("stopping the workflow (SIGINT, then SIGTERM)…", timeout=10)
            self.leave(stop=True)
        elif choice == "leave":
            self.leave(stop=False)

    @work(thread=True, exclusive=True, group="leave")
    def leave(self, stop: bool) -> None:
        if stop:
            self.source.stop_workflow()
        else:
            self.source.detach()
        self.call_from_thread(self.exit)
