"""The gradetop app: panels over one source, drawn from immutable pictures.

One long-lived Refresher thread (tui/refresher.py) computes a Picture of the
profile whenever samples arrive or the clock ticks, and posts it; the app
only draws what arrives and turns keys into changes of its reactive state
(filter, freeze, active panel, phase depth), each of which asks for a new
picture. The app never reads the live profile and never runs a collector:
what it needs of a running session (finish, detach, save, locals) goes
through the source's interface (model.source.Source).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import replace

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Footer, Tab, Tabs

from gradetop.model.rules import parse_rules
from gradetop.model.source import Source
from gradetop.model.pictures import ViewData, ViewFilter
from gradetop.tui.flame import FlameView
from gradetop.tui.flame_panel import FlamePanel
from gradetop.tui.gpu_panel import GpuPanel
from gradetop.tui.header import StatusHeader
from gradetop.tui.output_log import OutputLog
from gradetop.tui.phase_table import PhaseDetail, PhaseTable, detail_text
from gradetop.tui.processes import ProcessTable
from gradetop.tui.refresher import Picture, PictureRequest, Refresher
from gradetop.tui.screens import HelpScreen, QuitScreen
from gradetop.tui.stack_screen import StackScreen
from gradetop.tui.threads import ThreadTable
from gradetop.tui.timeline import TimelineView
from gradetop.tui.top import TopTable

PANELS = ("flame", "top", "timeline", "phases", "threads", "processes", "output", "gpu")
WINDOWS = (None, 10.0, 60.0, 300.0)
WIDE = (150, 42)
"""From this size up, every panel shows at once; below it, panels are tabs."""


class PictureReady(Message):
    """A new picture of the profile, computed off the UI thread."""

    def __init__(self, picture: Picture) -> None:
        super().__init__()
        self.picture = picture

    @property
    def view(self) -> ViewData:
        return self.picture.view

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PictureReady)


class ViewFailed(Message):
    """A picture could not be computed (a bug): the screen keeps the last one and says so."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class GradetopApp(App):
    CSS_PATH = "gradetop.tcss"
    TITLE = "gradetop"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS = [
        Binding("q", "quit_gradetop", "Quit", tooltip="quit (a run asks whether to stop the workflow)"),
        Binding("s", "save", "Save", tooltip="save a closed snapshot of everything so far"),
        Binding("p", "freeze", "Freeze", tooltip="freeze the view (collection goes on)"),
        Binding("t", "cycle_threads", "Threads", tooltip="cycle: all threads / one process / one thread"),
        Binding("w", "cycle_window", "Window", tooltip="time window: whole run / last 10 s / 60 s / 5 min"),
        Binding("i", "toggle_idle", "Idle", tooltip="count idle time too (wall time), or active time only"),
        Binding("T", "lanes_per_thread", "Lanes", show=False, tooltip="timeline: one lane per thread"),
        Binding("f", "fold_phases", "Fold phases", show=False, tooltip="timeline: fold nested phases"),
        Binding("question_mark", "help", "Help", tooltip="this help"),
        *(Binding(str(i + 1), f"panel('{name}')", name.title(), show=False, tooltip=f"show the {name} panel")
          for i, name in enumerate(PANELS)),
    ]

    filter: reactive[ViewFilter] = reactive(ViewFilter, init=False)
    """What flame, top and processes show: a time range, processes, threads, idle or not."""
    frozen: reactive[bool] = reactive(False, init=False)
    """The view stays as it is while collection goes on."""
    active_panel: reactive[str] = reactive("flame", init=False)
    """The panel shown (narrow) or focused (wide)."""
    phase_depth: reactive[int] = reactive(1, init=False)
    """Nested phase lanes shown on the timeline (0: top-level only)."""
    lanes_by_thread: reactive[bool] = reactive(False, init=False)
    """Timeline lanes per thread instead of per process."""

    def __init__(self, source: Source, refresh_s: float = 1.0) -> None:
        super().__init__()
        self.source = source
        options = source.profile.meta.options
        rules = parse_rules({"phase": options["phase_rules"]}) if options.get("phase_rules") else ()
        self.refresh_s = refresh_s
        self.save_path: str | None = None
        """Where `s` saves; None: a new gradetop-<pid>-<time>-saved.gtop in the current folder."""
        self.refresher = Refresher(source, lambda picture: self.post_message(PictureReady(picture)), rules,
                                   every_s=refresh_s, failed=lambda text: self.post_message(ViewFailed(text)))
        self.picture: Picture | None = None
        self._drawn: set[str] = set()
        """Panels that show `picture` (a hidden one is drawn when it comes up)."""
        self._notices_told = 0
        self._finishing = False
        self._has_gpu = False
        """Whether the last picture had GPUs: the GPU panel shows only then."""
        # Active time by default, as py-spy top: where the CPUs went. 'i' shows idle threads too.
        self.set_reactive(GradetopApp.filter, ViewFilter(include_idle=bool(options.get("idle", False))))

    @property
    def last_view(self) -> ViewData | None:
        return self.picture.view if self.picture is not None else None

    # ---- layout ----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        yield Tabs(*(Tab(f"{i + 1} {name.title()}", id=f"tab-{name}") for i, name in enumerate(PANELS)), id="tabs")
        with Vertical(id="panels"):
            yield FlamePanel(id="flame-panel", classes="panel")
            with Horizontal(id="middle"):
                yield TopTable(id="top", classes="panel")
                with Vertical(id="phases-box"):
                    yield PhaseTable(id="phases", classes="panel")
                    yield PhaseDetail(id="phase-detail")
            with Horizontal(id="bottom"):
                yield TimelineView(id="timeline", classes="panel")
                with Vertical(id="side"):
                    yield ThreadTable(id="threads", classes="panel")
                    yield ProcessTable(id="processes", classes="panel")
                    yield OutputLog(id="output", classes="panel")
                    yield GpuPanel(id="gpu", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        if not self.source.live and not self.source.profile.output:
            self.query_one(OutputLog).write_line("(no output: gradetop keeps what a workflow prints when `run` starts it)")
        self.source.subscribe(self.refresher.wake)
        self.source.start()
        self.refresher.start()
        # SIGTERM and SIGHUP (a closed terminal) end the UI as Ctrl-C does: the screen is restored,
        # the session is finished by the caller, and the recording says where it is.
        try:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, self.exit)
        except (RuntimeError, NotImplementedError, ValueError):
            pass  # not the main thread (tests): nothing to install
        self.apply_layout()
        self.query_one("#flame").focus()
        self.set_interval(min(self.refresh_s, 1.0), self.tick)
        self.request_picture()
        if self.source.writing_to:
            self.notify(f"recording to {self.source.writing_to}", timeout=6)

    def on_unmount(self) -> None:
        self.refresher.stop()
        self.refresher.join(5.0)

    def on_resize(self, event) -> None:
        # This runs before the app records its new size: lay out for the size the event brings.
        self.apply_layout(event.size)
        for name in self.visible_panels():  # wide now: every panel is up
            self.draw_panel(name)
        self.call_after_refresh(self.request_picture)  # (the timeline's lanes, where it just came up)

    def panel_widget(self, name: str):
        return self.query_one("#flame-panel" if name == "flame" else f"#{name}")

    def apply_layout(self, size=None) -> None:
        """The stylesheet lays out; this only says which layout (narrow or wide), which panel is up, and
        whether there are GPUs. In one change of the screen's classes: each change restyles every widget
        (a tenth of a second of CPU at the start, where there were three)."""
        size = size or self.size
        classes = {"narrow": size.width < WIDE[0] or size.height < WIDE[1], "no-gpu": not self._has_gpu}
        classes.update((f"show-{name}", name == self.active_panel) for name in PANELS)
        self.screen_stack[0].update_classes(classes)  # the panels' screen, under any dialog

    # ---- reactive state -----------------------------------------------------------------

    def watch_active_panel(self, name: str) -> None:
        self.query_one(Tabs).active = f"tab-{name}"
        self.apply_layout()
        self.draw_panel(name)
        target = self.panel_widget(name)
        if not target.has_focus_within:
            (target.flame if name == "flame" else target).focus()
        # A panel drawn while hidden had no width: draw it again at its size.
        self.call_after_refresh(self.request_picture)

    def watch_filter(self) -> None:
        self.request_picture()

    def watch_frozen(self, frozen: bool) -> None:
        self.notify("view frozen: collection goes on (p resumes)" if frozen else "live again", timeout=2)
        self.request_picture()

    def watch_phase_depth(self) -> None:
        self.request_picture()

    def watch_lanes_by_thread(self) -> None:
        self.request_picture()

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        self.active_panel = event.tab.id.removeprefix("tab-")

    def on_descendant_focus(self, event) -> None:
        # In the wide layout, focusing a panel (Tab key, mouse) makes its tab the active one.
        for name in PANELS:
            panel = self.panel_widget(name)
            if event.widget is panel or panel in event.widget.ancestors:
                self.active_panel = name
                break

    # ---- pictures -------------------------------------------------------------------------

    def request_picture(self) -> None:
        """Ask the refresher for a picture of the current state (none while frozen)."""
        try:
            bins = self.query_one(TimelineView).bins_wanted
        except NoMatches:
            return  # the app is closing
        self.refresher.request(None if self.frozen else PictureRequest(
            self.filter, bins, self.lanes_by_thread, self.phase_depth, frozenset(self.visible_panels())))

    def tick(self) -> None:
        """The clock (and tests): notice the end of the workflow, tell new notices, ask for a picture."""
        if self.source.poll() and not self._finishing:
            self._finishing = True
            self.finish_source()
        notices = self.source.notices
        for line in notices[self._notices_told:]:
            self.notify(line, severity="warning", timeout=8)
        self._notices_told = len(notices)
        self.request_picture()

    def on_view_failed(self, message: ViewFailed) -> None:
        self.notify(message.text, severity="error", timeout=15)

    def on_picture_ready(self, message: PictureReady) -> None:
        picture = message.picture
        if self.frozen or picture.request.filter != self.filter and self.picture is not None \
                and self.picture.request.filter == self.filter:
            return  # frozen, or late: the screen already shows a picture of the current filter
        self.picture = picture
        self._drawn.clear()
        try:
            if bool(picture.gpu.devices) != self._has_gpu:
                self._has_gpu = bool(picture.gpu.devices)
                self.apply_layout()
            for name in self.visible_panels():
                self.draw_panel(name)
            self.query_one(OutputLog).show(picture.output, self.source.profile.output.maxlen)
        except NoMatches:
            return  # a picture that arrives while the app closes has nowhere to go
        self.update_header()

    def visible_panels(self) -> tuple[str, ...]:
        """All panels in the wide layout; in the narrow one, the panel up."""
        return (self.active_panel,) if self.screen_stack[0].has_class("narrow") else PANELS

    def draw_panel(self, name: str) -> None:
        """Show the current picture in panel `name`, once per picture. A hidden panel is drawn when it comes
        up: filling the tables of hidden tabs every second made the screen lay itself out again each time,
        most of what the live view cost (bench/bench_live.py)."""
        picture = self.picture
        if picture is None or name in self._drawn or (name == "timeline" and not picture.timeline.with_lanes):
            return  # (a picture made while the timeline was hidden has no lanes: the next one will)
        self._drawn.add(name)
        if name == "flame":
            self.query_one(FlamePanel).show(picture.view)
        elif name == "top":
            self.query_one(TopTable).show(picture.view)
        elif name == "processes":
            processes = self.query_one(ProcessTable)
            processes.show(picture.view.processes, picture.gpu)
            # A distributed job's rank skew, where the per-rank lanes are: under the process tree.
            processes.border_subtitle = picture.rank_skew
        elif name == "timeline":
            self.query_one(TimelineView).show(picture.timeline, picture.lanes, picture.gpu)
        elif name == "gpu":
            self.query_one(GpuPanel).show(picture.gpu)
        elif name == "phases":
            self.query_one(PhaseTable).show(picture.phases)
        elif name == "threads":
            self.query_one(ThreadTable).show(picture.threads)

    @work(thread=True, exclusive=True, group="finish")
    def finish_source(self) -> None:
        self.source.finish()
        self.call_from_thread(self.on_source_finished)

    def on_source_finished(self) -> None:
        state = self.source.state()
        saved = f"; the recording is in {self.source.writing_to or self.source.path}" \
            if getattr(self.source, "path", None) and self.source.live else ""
        self.notify(f"workflow {state.label}: this is the final picture (q quits, s saves){saved}", timeout=6)
        self.tick()

    def update_header(self) -> None:
        picture = self.picture
        if picture is None:
            return
        status = picture.status
        filter_text = picture.view.filter.describe()
        self.query_one(StatusHeader).show(
            title=self.source.title,
            elapsed=status.elapsed,
            rate=status.rate,
            asked=status.asked,
            samples=status.samples,
            state=status.state.label,
            frozen=self.frozen,
            filter_text=filter_text,
            alert=f"{picture.stuck} STUCK THREAD{'S' if picture.stuck > 1 else ''} (5)" if picture.stuck else "",
            writing_to=status.writing_to,
            gpu=picture.gpu.headline() if picture.gpu.devices or picture.gpu.state else "",
        )

    def set_filter(self, **changes) -> None:
        self.filter = replace(self.filter, **changes)

    # ---- actions ------------------------------------------------------------------------

    def action_panel(self, name: str) -> None:
        self.active_panel = name

    def action_freeze(self) -> None:
        self.frozen = not self.frozen
        self.update_header()

    def action_cycle_threads(self) -> None:
        choices = self.picture.thread_choices if self.picture else (("all threads", None, None),)
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

    def on_phase_table_selected(self, message: PhaseTable.Selected) -> None:
        try:
            self.query_one(PhaseDetail).update(detail_text(message.group))
        except NoMatches:
            pass

    def on_phase_table_chosen(self, message: PhaseTable.Chosen) -> None:
        group = message.group
        pids = frozenset(pid for pid, _ in group.threads)
        tids = frozenset(tid for _, tid in group.threads)
        self.notify(f"flame and top show phase {group.kind}", timeout=2)
        self.set_filter(t0=group.first_start, t1=group.last_end, pids=pids, tids=tids, last_s=None)
        self.active_panel = "flame"

    def on_thread_table_opened(self, message: ThreadTable.Opened) -> None:
        view = self.last_view
        frames = view.tree.stacks.frames_of(message.row.node) if view is not None else []
        live = self.source.live and not self.source.state().ended
        self.push_screen(StackScreen(message.row, frames, self.source.read_locals if live else None))

    def action_toggle_idle(self) -> None:
        idle = not self.filter.include_idle
        self.notify("idle time included (wall time)" if idle else "active time only", timeout=1.5)
        self.set_filter(include_idle=idle)

    def action_lanes_per_thread(self) -> None:
        self.lanes_by_thread = not self.lanes_by_thread

    def on_timeline_view_range_selected(self, message: TimelineView.RangeSelected) -> None:
        self.notify(f"flame and top show {message.t1 - message.t0:.1f} s of the run", timeout=2)
        self.set_filter(t0=message.t0, t1=message.t1, last_s=None)

    def on_timeline_view_range_cleared(self, message: TimelineView.RangeCleared) -> None:
        self.set_filter(t0=None, t1=None, pids=None, tids=None)

    def action_help(self) -> None:
        panels = [("flame", FlameView.BINDINGS + FlamePanel.BINDINGS), ("top", TopTable.BINDINGS),
                  ("timeline", TimelineView.BINDINGS), ("phases", PhaseTable.BINDINGS),
                  ("threads", ThreadTable.BINDINGS + StackScreen.BINDINGS)]
        everywhere = [b for b in self.BINDINGS if not b.action.startswith("panel(")]
        everywhere.insert(0, Binding(",".join(str(i + 1) for i in range(len(PANELS))), "panel", "",
                                     tooltip=", ".join(PANELS)))
        self.push_screen(HelpScreen([("everywhere", everywhere), *panels]))

    def action_save(self) -> None:
        profile = self.source.profile
        # Named apart from the recording itself (gradetop-<pid>-<time>.gtop), which it must never replace.
        stamp = time.strftime('%Y%m%d-%H%M%S')
        path = self.save_path or f"gradetop-{profile.meta.target_pid or os.getpid()}-{stamp}-saved.gtop"
        self.save_snapshot(path)

    @work(thread=True, group="save")
    def save_snapshot(self, path: str) -> None:
        try:
            self.source.save_copy(path)
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
