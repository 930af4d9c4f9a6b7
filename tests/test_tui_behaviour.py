"""The app driven by keys over the recorded demo snapshot: what each key does to the state and to the panels.

Every test runs one scenario inside `App.run_test` with its own event loop
(`asyncio.run`; pytest-asyncio is not used), over a FileSource of
tests/data/demo.gtop. Waits poll for the state they need (never a fixed sleep
that could be too short on a slow CI machine).

Two refresh regimes:
- LIVE (refresh_s=0.1): the tests about refreshing itself (flame zoom kept
  across refreshes, freeze) let the timer run, so several refreshes land
  during the test as they would live.
- QUIET (the timer far beyond the test): everywhere else. A filter change
  refreshes at once (set_filter calls tick), and `Scenario.refreshes` calls
  tick itself, as the timer would. On a loaded 2-core machine an app
  refreshing every 0.1 s spends most of the CPU on refreshing, and every key
  then waits for it.

Keys are sent as Pilot.press sends them, but each one is followed by waiting
for the screen to process what is queued rather than by Pilot's wait for the
process to go idle: an app that refreshes every 0.1 s is never idle, and that
wait then costs up to two seconds a key.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import re
import time
import unicodedata
from functools import lru_cache
from pathlib import Path

import pytest
from textual import events
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key
from textual.notifications import Notify
from textual.widgets import Input, Static, Tabs

from gradetop.model.snapshot import load
from gradetop.model.stacks import ROOT
from gradetop.model.views import view_data
from gradetop.tui.app import PANELS, WINDOWS, GradetopApp, PictureReady
from gradetop.tui.colors import box_style
from gradetop.tui.flame import FlameView
from gradetop.tui.flame_panel import FlamePanel
from gradetop.tui.processes import ProcessTable
from gradetop.tui.screens import HelpScreen
from gradetop.model.source import FileSource
from gradetop.tui.timeline import LABEL_W, SELECTED_BG, TimelineView
from gradetop.tui.top import SORTS, TopTable

DEMO = Path(__file__).parent / "data" / "demo.gtop"
WIDE = (160, 48)
NARROW = (80, 24)
WATCHED = (PictureReady, TimelineView.RangeSelected, TimelineView.RangeCleared, FlameView.Selected, Notify)


@lru_cache(maxsize=1)
def demo_profile():
    # A FileSource never writes to its profile, so every test can share one.
    return load(DEMO)


class Scenario:
    """What a scenario gets: the app, its pilot, and the messages seen so far (of the WATCHED kinds)."""

    def __init__(self, app: GradetopApp, pilot) -> None:
        self.app, self.pilot = app, pilot
        self.seen: list = []

    def hook(self, message) -> None:
        # The hook sees a bubbling message once per node that handles it: keep it once.
        if isinstance(message, WATCHED) and not any(m is message for m in self.seen[-50:]):
            self.seen.append(message)

    def messages(self, kind) -> list:
        return [m for m in self.seen if isinstance(m, kind)]

    def notes(self) -> list[str]:
        return [str(m.notification.message) for m in self.messages(Notify)]

    async def wait_for(self, condition, timeout: float = 10.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                # Not an AssertionError: an xfail(raises=AssertionError) must not pass on a hang.
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            await self.pilot.pause(0.02)

    async def press(self, *keys: str) -> None:
        for key in keys:
            self.app.post_message(key_event(key))
            await self.settle()

    async def settle(self) -> None:
        """Let the app and the widgets of the screen handle what is queued, and what that queues."""
        for _ in range(3):
            await self.pilot.pause(0)

    async def refreshes(self, count: int = 1) -> None:
        """Wait until `count` more pictures have been applied (not just computed); QUIET apps are ticked."""
        app = self.app
        for _ in range(count):
            # A new Picture each time; its panels may be the same objects (a saved file's are computed once).
            before = app.picture
            if app.refresh_s >= QUIET:
                app.tick()
            await self.wait_for(lambda: app.picture is not before, what="a refresh")

    async def view_for_filter(self):
        """Wait until the picture on screen was computed for the app's current filter, and return it."""
        app = self.app
        await self.wait_for(lambda: app.last_view is not None and app.last_view.filter == app.filter,
                            what=f"a picture for {app.filter}")
        return app.last_view

    @property
    def flame(self) -> FlameView:
        return self.app.query_one(FlameView)

    @property
    def timeline(self) -> TimelineView:
        return self.app.query_one(TimelineView)

    def detail(self) -> str:
        return str(self.app.query_one("#flame-detail", Static).render())

    def header(self) -> str:
        return str(self.app.query_one("#header", Static).render())

    def header_filter(self) -> str | None:
        """The filter the header shows in brackets; None when it shows none (the whole run, all threads)."""
        found = re.search(r"\[([^\]]*)\]", self.header())
        return found.group(1) if found else None


LIVE = 0.1
QUIET = 3600.0


def run(scenario, size: tuple[int, int] = WIDE, refresh_s: float = QUIET) -> GradetopApp:
    """Run `async scenario(s: Scenario)` in a fresh app, once its first picture is on screen."""

    async def main() -> GradetopApp:
        app = GradetopApp(FileSource(demo_profile(), str(DEMO)), refresh_s=refresh_s)
        s = Scenario(app, None)
        async with app.run_test(size=size, message_hook=s.hook) as pilot:
            s.pilot = pilot
            try:
                await s.wait_for(lambda: app.last_view is not None, what="the first picture")
                await scenario(s)
            finally:
                # Leave through App.exit, as 'q' does: run_test's own teardown removes the widgets
                # while the app may still be handling a picture from the refresher.
                if app.is_running:
                    app.exit()
        return app

    return asyncio.run(main())


def require(condition: bool, what: str) -> None:
    """A precondition of a test: failing it is an error, never the expected failure of an xfail test."""
    if not condition:
        raise RuntimeError(f"precondition failed: {what}")


def panel_key(name: str) -> str:
    return str(PANELS.index(name) + 1)


def key_event(key: str) -> events.Key:
    """The event Pilot.press sends for `key` (textual 8.2 App._press_keys)."""
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    try:
        char = unicodedata.lookup(_get_unicode_name_from_key(REPLACED_KEYS.get(key, key)))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


def style_at(strip, x: int):
    """The style of the cell at column x of a rendered line."""
    for segment in strip:
        if x < len(segment.text):
            return segment.style
        x -= len(segment.text)
    raise IndexError(x)


def frame_of(view, node: int):
    return view.tree.stacks.frames.frames[view.tree.stacks.frame[node]]


def whole_samples() -> int:
    return demo_profile().timeline.samples


# ---- (a) flame ------------------------------------------------------------------------------


def test_flame_keys_select_and_zoom_and_refresh_keeps_both():
    async def scenario(s: Scenario) -> None:
        flame, app = s.flame, s.app
        assert app.focused is flame
        assert flame.zoom == ROOT and flame.selected == ROOT
        assert s.detail().startswith("all: ") and f"in {app.last_view.samples} samples" in s.detail()
        parent = app.last_view.tree.stacks.parent

        def box_of(node: int):
            y, i = flame._layout.find(node)
            return y, flame._layout.rows[y][i]

        def has_right_sibling(node: int) -> bool:
            y, box = box_of(node)
            return any(b.x0 > box.x0 and parent[b.node] == parent[node] for b in flame._layout.rows[y])

        # Down picks the widest callee; go down until the selection has a sibling to its right.
        path = []
        while True:
            before = flame.selected
            await s.press("down")
            node = flame.selected
            assert node != before and parent[node] == before, "down selects a callee"
            y, box = box_of(node)
            callees = [b for b in flame._layout.rows[y] if parent[b.node] == before]
            assert max(callees, key=lambda b: b.x1 - b.x0).node == node, "down selects the widest callee"
            path.append(node)
            if has_right_sibling(node) or len(path) > 40:
                break
        assert has_right_sibling(path[-1]), "the demo's flame has a fork"

        await s.press("right")
        target = flame.selected
        assert target != path[-1] and parent[target] == parent[path[-1]]
        assert box_of(target)[1].x0 > box_of(path[-1])[1].x0
        assert flame.zoom == ROOT

        await s.press("enter")
        assert flame.zoom == target and flame.selected == target
        # The zoomed node is the whole top row.
        assert [(b.node, b.x0, b.x1) for b in flame._layout.rows[0]] == [(target, 0, flame._layout.width)]
        frame = frame_of(app.last_view, target)
        assert s.detail().startswith(f"{frame.function} (") and f":{frame.line})" in s.detail()
        assert re.search(r"total \S+ \d+\.\d%  self \S+ \d+\.\d%", s.detail())
        assert any(isinstance(m, FlameView.Selected) and m.node == target for m in s.seen)

        # A refresh replaces the picture; zoom and selection stay.
        picture = app.picture
        await s.refreshes(1)
        assert app.picture is not picture
        assert flame.zoom == target and flame.selected == target
        assert s.detail().startswith(f"{frame.function} (")

        # Up stops at the zoomed node; Esc zooms back out to where Enter came from.
        await s.press("up")
        assert flame.selected == target
        await s.press("escape")
        assert flame.zoom == ROOT and flame.selected == target
        assert s.detail().startswith(f"{frame.function} (")
        await s.press(*["up"] * len(path))
        assert flame.selected == ROOT
        assert s.detail().startswith("all: ")

    run(scenario)


def test_flame_zoom_and_selection_survive_live_refreshes():
    async def scenario(s: Scenario) -> None:
        app, flame = s.app, s.flame
        await s.press("down", "down", "enter", "down")
        zoom, selected = flame.zoom, flame.selected
        assert zoom != ROOT and selected != zoom
        detail = s.detail()
        picture = app.picture
        # The timer refreshes every 0.1 s: wait for three pictures it made.
        await s.refreshes(3)
        assert app.picture is not picture
        assert (flame.zoom, flame.selected) == (zoom, selected)
        assert flame._layout.rows[0][0].node == zoom
        assert s.detail() == detail
        await s.press("escape")
        assert flame.zoom == ROOT and flame.selected == selected

    run(scenario, refresh_s=LIVE)


def test_flame_search_cost_does_not_grow_with_the_square_of_the_hits():
    async def scenario(s: Scenario) -> None:
        panel, flame = s.app.query_one(FlamePanel), s.flame

        def cost(search: str) -> tuple[float, int]:
            flame.search = search
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                panel.describe(flame.selected)
                best = min(best, time.perf_counter() - started)
            hits = int(re.search(r"(\d+) frames", s.detail()).group(1))
            return best, hits

        few, few_hits = cost("train")
        many, many_hits = cost("e")
        require(few_hits <= 3 and many_hits > 100, f"'train' hits a few frames ({few_hits}), 'e' most ({many_hits})")
        # Both scan every node for matches; only the extra work per hit may differ (linear: a few times).
        assert many < 10 * max(few, 1e-3), f"'e': {many * 1000:.0f} ms, 'train': {few * 1000:.0f} ms"

    run(scenario)


# ---- (b) search ---------------------------------------------------------------------------------


def test_flame_search_highlights_and_reports_share_then_escape_clears():
    async def scenario(s: Scenario) -> None:
        app, flame = s.app, s.flame
        box = app.query_one("#flame-search", Input)
        assert not box.display
        await s.press("slash")
        assert box.display and box.has_focus
        await s.press(*"train")
        assert flame.search == "train"
        # Typing in the box is not a command: 't' did not cycle threads.
        assert app.filter.pids is None and app.filter.tids is None
        found = re.search(r"\| 'train': (\d+) frames, (\d+\.\d)%$", s.detail())
        assert found, s.detail()
        view = app.last_view
        tree = view.tree
        expected = [n for n in range(1, tree.size)
                    if tree.total_n[n] and "train" in flame.node_label(n).lower()]
        assert int(found.group(1)) == len(expected) > 0
        assert 0.0 < float(found.group(2)) <= 100.0
        # The matching boxes on screen are drawn in the match colour.
        match_bg = box_style("any", matched=True).bgcolor
        shown = [(y, b) for y, row in enumerate(flame._layout.rows) for b in row
                 if b.node in expected and b.node != flame.selected]
        assert shown, "a matching frame is drawn"
        for y, b in shown:
            assert style_at(flame.render_row(y, flame._layout.width), b.x0).bgcolor == match_bg

        # The report survives refreshes.
        await s.refreshes(1)
        assert "'train':" in s.detail()

        await s.press("escape")
        assert flame.search == "" and box.value == ""
        assert not box.display and flame.has_focus
        assert "'train'" not in s.detail() and "|" not in s.detail()
        assert flame.zoom == ROOT  # Esc closed the box; it did not also zoom out.

        # Enter keeps the search and gives the keys back to the flame.
        await s.press("slash", *"forward", "enter")
        assert flame.search == "forward" and not box.display and flame.has_focus
        assert "'forward':" in s.detail()

    run(scenario)


# ---- (c) threads -------------------------------------------------------------------------------


def test_thread_key_cycles_processes_and_threads_then_back_to_all():
    profile = demo_profile()
    choices = [(None, None)]
    for pid in sorted(profile.processes):
        tids = sorted(t for (p, t) in profile.threads if p == pid)
        if tids:
            choices.append((frozenset([pid]), None))
            choices += [(frozenset([pid]), frozenset([tid])) for tid in tids]

    async def scenario(s: Scenario) -> None:
        app = s.app
        whole = app.last_view.samples
        assert whole == whole_samples()
        seen_filters = []
        per_process: dict[int, int] = {}
        per_thread: dict[int, int] = {}
        for _ in range(len(choices) - 1):
            await s.press("t")
            view = await s.view_for_filter()
            seen_filters.append((app.filter.pids, app.filter.tids))
            assert 0 < view.samples < whole
            assert app.query_one(TopTable).view is view
            (pid,) = app.filter.pids
            if app.filter.tids is None:
                per_process[pid] = view.samples
                assert f"process {pid}" in view.filter.describe() and s.header_filter() == view.filter.describe()
            else:
                (tid,) = app.filter.tids
                per_thread[tid] = view.samples
                assert f"thread {tid}" in view.filter.describe() and s.header_filter() == view.filter.describe()
                assert s.detail().endswith(f"in {view.samples} samples ({view.filter.describe()})")
        assert seen_filters == choices[1:]
        # Processes split the run; threads split their process.
        assert sum(per_process.values()) == whole
        for pid, n in per_process.items():
            assert sum(per_thread[t] for (p, t) in profile.threads if p == pid) == n

        await s.press("t")
        view = await s.view_for_filter()
        assert app.filter.pids is None and app.filter.tids is None
        assert view.samples == whole
        assert "process" not in view.filter.describe() and s.header_filter() is None

    run(scenario)


# ---- (d) window --------------------------------------------------------------------------------


def test_window_key_cycles_last_10_60_300_then_whole_run():
    async def scenario(s: Scenario) -> None:
        app = s.app
        assert app.filter.last_s is None
        for expected in (*WINDOWS[1:], WINDOWS[0]):
            await s.press("w")
            assert app.filter.last_s == expected
            view = await s.view_for_filter()
            if expected is None:
                assert s.header_filter() is None
            else:
                assert f"last {expected:g} s" in view.filter.describe() and s.header_filter() == view.filter.describe()
            # The demo run lasts 9 s: every window holds all of it.
            assert view.samples == whole_samples()
        assert [str(n) for n in s.notes()] == ["last 10 s", "last 60 s", "last 300 s", "whole run"]

    run(scenario)


# ---- (e) timeline ---------------------------------------------------------------------------------


async def show_full_timeline(s: Scenario) -> TimelineView:
    await s.press(panel_key("timeline"))
    timeline = s.timeline
    assert s.app.focused is timeline
    # The picture drawn must have the bins of the width the timeline has now (which can change once,
    # when the first picture brings a vertical scrollbar).
    for _ in range(3):
        await s.refreshes(1)
        if timeline.data.bins == timeline.bins_wanted:
            await s.refreshes(1)
            if timeline.data.bins == timeline.bins_wanted:
                return timeline
    raise RuntimeError(f"the timeline never settled: {timeline.data.bins} bins for {timeline.bins_wanted} wanted")


def cursor_keys(steps: int) -> list[str]:
    """Keys that move the timeline cursor `steps` bins right (Shift+Right moves ten)."""
    return ["shift+right"] * (steps // 10) + ["right"] * (steps % 10)


def highlighted_bins(timeline: TimelineView) -> list[int]:
    """Bins drawn on the selection background in the row of the first process lane."""
    label = timeline.data.lanes[0].label
    row_label = f"{label[:LABEL_W - 1]:<{LABEL_W}}"
    y = next(i + 1 for i, line in enumerate(timeline._lines) if line and line[0].text == row_label)
    require(y < timeline.scrollable_content_region.height, "the first lane row is on screen")
    out, x = [], 0
    for segment in timeline.render_line(y):
        style = segment.style
        for _ in segment.text:
            if style is not None and style.bgcolor is not None and style.bgcolor.triplet is not None \
                    and style.bgcolor.triplet.hex.lower() == SELECTED_BG:
                out.append(x - LABEL_W)
            x += 1
    return out


def test_timeline_range_filters_flame_and_top_then_escape_clears():
    async def scenario(s: Scenario) -> None:
        app = s.app
        timeline = await show_full_timeline(s)
        bins = timeline.data.bins
        assert timeline.cursor == -1 and timeline.cursor_bin() == bins - 1
        await s.press("left")
        assert timeline.cursor == bins - 2
        await s.press("home")
        assert timeline.cursor == 0
        await s.press(*["right"] * 5)
        assert timeline.cursor == 5
        await s.press("space")
        assert timeline.mark_start == timeline.bin_time(5) and timeline.selection is None
        assert app.filter.t0 is None  # One mark is not a range yet.
        await s.press(*["right"] * 10)
        await s.press("space")
        data = timeline.data
        t0, t1 = data.t0 + 5 * data.bin_s, data.t0 + 16 * data.bin_s
        ranges = s.messages(TimelineView.RangeSelected)
        assert len(ranges) == 1
        assert ranges[0].t0 == pytest.approx(t0, abs=1e-6) and ranges[0].t1 == pytest.approx(t1, abs=1e-6)
        assert (app.filter.t0, app.filter.t1) == (ranges[0].t0, ranges[0].t1)
        assert app.filter.last_s is None

        view = await s.view_for_filter()
        assert 0 < view.samples < whole_samples()
        assert view.samples == view_data(demo_profile(), app.filter).samples
        assert app.query_one(TopTable).view is view
        assert "selected range" in view.filter.describe() and s.header_filter() == view.filter.describe()
        # The selection stays on the timeline across refreshes.
        await s.refreshes(1)
        assert timeline.selection == (ranges[0].t0, ranges[0].t1)

        await s.press("escape")
        assert len(s.messages(TimelineView.RangeCleared)) == 1
        assert app.filter.t0 is None and app.filter.t1 is None
        assert timeline.selection is None and timeline.mark_start is None
        view = await s.view_for_filter()
        assert view.samples == whole_samples()
        # A second Esc has nothing to clear and says nothing.
        await s.press("escape")
        assert len(s.messages(TimelineView.RangeCleared)) == 1

    run(scenario)


def test_timeline_highlight_covers_exactly_the_marked_bins():
    async def scenario(s: Scenario) -> None:
        timeline = await show_full_timeline(s)
        wrong = []
        # About half the bins are affected at any width: six ranges make a false pass very unlikely.
        for start, end in ((5, 10), (8, 20), (23, 31), (37, 50), (61, 75), (90, 99)):
            # A new first mark starts a new range: no Esc (and no refresh) needed between them.
            await s.press("home", *cursor_keys(start), "space", *cursor_keys(end - start), "space")
            require(timeline.selection is not None, "a range is selected")
            marked = list(range(start, end + 1))
            drawn = highlighted_bins(timeline)
            if drawn != marked:
                wrong.append(f"marked {start}..{end}, drawn {drawn[0]}..{drawn[-1]}")
        assert not wrong, "; ".join(wrong)

    run(scenario)


def test_timeline_lanes_per_thread_key():
    profile = demo_profile()

    async def scenario(s: Scenario) -> None:
        timeline = await show_full_timeline(s)
        assert {lane.key for lane in timeline.data.lanes} == {(pid, None) for pid in profile.processes}
        await s.press("T")
        await s.wait_for(lambda: timeline.data.lanes[0].key[1] is not None, what="thread lanes")
        keys = {lane.key for lane in timeline.data.lanes}
        assert keys == set(profile.threads)
        await s.press("T")
        await s.wait_for(lambda: timeline.data.lanes[0].key[1] is None, what="process lanes")

    run(scenario)


# ---- (f) top -------------------------------------------------------------------------------------


def column(table: TopTable, index: int) -> list[str]:
    return [str(table.get_row_at(row)[index]) for row in range(table.row_count)]


def assert_sorted_by(table: TopTable, sort_by: str) -> None:
    assert table.sort_by == sort_by
    if sort_by == "name":
        names = [cell.split(" (")[0].lower() for cell in column(table, 4)]
        assert names == sorted(names)
    else:
        values = [float(cell) for cell in column(table, 0 if sort_by == "own" else 1)]
        assert values == sorted(values, reverse=True)


def test_top_sort_key_cycles_total_own_name():
    async def scenario(s: Scenario) -> None:
        app = s.app
        await s.press(panel_key("top"))
        table = app.query_one(TopTable)
        assert app.focused is table and app.active_panel == "top"
        assert table.row_count == min(len(app.last_view.functions), 200) > 10
        start = table.sort_by
        assert start == SORTS[0]
        assert_sorted_by(table, start)
        first_row = column(table, 4)[0]
        order = [SORTS[(SORTS.index(start) + i) % len(SORTS)] for i in range(1, len(SORTS) + 1)]
        assert set(order) == {"total", "own", "name"}
        for expected in order:
            await s.press("o")
            assert_sorted_by(table, expected)
            # The order holds across refreshes (each one rebuilds the rows).
            await s.refreshes(1)
            assert_sorted_by(table, expected)
        assert table.sort_by == start and column(table, 4)[0] == first_row
        assert s.notes() == [f"sorted by {name}" for name in order]

    run(scenario)


# ---- (g) save ------------------------------------------------------------------------------------


def test_save_key_writes_a_snapshot_that_loads_back(tmp_path):
    target = tmp_path / "saved.gtop"

    async def scenario(s: Scenario) -> None:
        s.app.save_path = str(target)
        await s.press("s")
        await s.wait_for(lambda: f"saved {target}" in s.notes(), what="the save to finish")

    run(scenario)
    saved, original = load(target), demo_profile()
    assert saved.timeline.samples == original.timeline.samples
    assert len(saved.timeline) == len(original.timeline)
    assert set(saved.processes) == set(original.processes)
    assert saved.meta.command == original.meta.command


def test_save_to_an_unwritable_place_says_so_and_keeps_running(tmp_path):
    target = tmp_path / "missing-folder" / "saved.gtop"

    async def scenario(s: Scenario) -> None:
        s.app.save_path = str(target)
        await s.press("s")
        await s.wait_for(lambda: any(n.startswith(f"cannot save {target}") for n in s.notes()),
                         what="the error notification")
        await s.refreshes(1)
        assert s.app.is_running

    run(scenario)
    assert not target.exists()


# ---- (h) freeze ----------------------------------------------------------------------------------


def test_freeze_holds_the_picture_and_unfreeze_resumes():
    async def scenario(s: Scenario) -> None:
        app = s.app
        await s.press("p")
        assert app.frozen
        assert "FROZEN" in s.header()
        held = app.last_view
        ready_before = len(s.messages(PictureReady))
        await s.pilot.pause(0.5)  # Five refresh periods.
        assert app.last_view is held
        # Changing the filter while frozen does not redraw either...
        await s.press("t")
        await s.pilot.pause(0.3)
        assert app.last_view is held and app.filter.pids is not None
        # ...and a picture that arrives anyway (computed before the freeze) is not applied.
        last = s.messages(PictureReady)[-1].picture
        late = PictureReady(dataclasses.replace(last, view=view_data(demo_profile(), app.filter)))
        app.post_message(late)
        await s.pilot.pause(0.1)
        assert app.last_view is held
        assert len(s.messages(PictureReady)) > ready_before  # It was delivered, and ignored.

        await s.press("p")
        assert not app.frozen
        view = await s.view_for_filter()
        assert view is not held and view.samples < held.samples
        assert "FROZEN" not in s.header()
        await s.refreshes(1)
        assert s.notes()[:1] == ["view frozen: collection goes on (p resumes)"]
        assert "live again" in s.notes()

    run(scenario, refresh_s=LIVE)


def test_a_finished_run_costs_its_phases_once(monkeypatch):
    import gradetop.tui.refresher as app_module

    calls = []
    real = app_module.cost_phases
    monkeypatch.setattr(app_module, "cost_phases", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))

    async def scenario(s: Scenario) -> None:
        await s.refreshes(3)

    run(scenario)
    assert len(calls) == 1


# ---- (i) help ------------------------------------------------------------------------------------


def test_help_opens_and_closes_without_quitting():
    async def scenario(s: Scenario) -> None:
        app = s.app
        for close in ("escape", "question_mark", "q"):
            await s.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            if close == "escape":
                # Refreshes go on underneath.
                await s.refreshes(1)
            await s.press(close)
            assert not isinstance(app.screen, HelpScreen), close
            assert app.is_running
            assert app.focused is s.flame

    run(scenario)


def test_help_shows_all_of_its_text_on_a_large_terminal():
    async def scenario(s: Scenario) -> None:
        await s.press("question_mark")
        screen = s.app.screen
        require(isinstance(screen, HelpScreen), "the help screen is open")
        box = screen.query_one("#help-box")
        last = list(box.query(Static))[-1]
        require("Esc" in str(last.render()), "the last line of the box is the Esc hint")
        inside = box.content_region
        assert inside.contains_region(screen.query_one("#help-text").region)
        assert inside.contains_region(last.region)

    run(scenario)


# ---- (j) layout ----------------------------------------------------------------------------------


def displayed(app: GradetopApp) -> dict[str, bool]:
    """Whether each panel is really on screen: displayed itself and in every container above it."""
    out = {}
    for name in PANELS:
        widget = app.panel_widget(name)
        out[name] = widget.display and all(a.display for a in widget.ancestors if hasattr(a, "display")) \
            and widget.region.area > 0
    return out


def test_narrow_terminal_shows_one_panel_and_number_keys_switch():
    async def scenario(s: Scenario) -> None:
        app = s.app
        assert app.screen.has_class("narrow")
        assert displayed(app) == {name: name == "flame" for name in PANELS}
        for name in [*PANELS[1:], PANELS[0]]:
            await s.press(panel_key(name))
            assert app.active_panel == name
            assert displayed(app) == {n: n == name for n in PANELS}, name
            assert app.query_one(Tabs).active == f"tab-{name}"
            panel = app.panel_widget(name)
            assert app.focused is panel or panel in app.focused.ancestors
            assert app.panel_widget(name).region.width == NARROW[0]

    run(scenario, size=NARROW)


def test_wide_terminal_shows_every_panel():
    async def scenario(s: Scenario) -> None:
        app = s.app
        assert not app.screen.has_class("narrow")
        assert all(displayed(app).values()), displayed(app)
        await s.press(panel_key("processes"))
        assert all(displayed(app).values())
        assert app.focused is app.query_one(ProcessTable)
        assert app.query_one(Tabs).active == "tab-processes"
        assert app.query_one(ProcessTable).row_count == len(demo_profile().processes)

    run(scenario)


def test_resizing_the_terminal_switches_between_wide_and_narrow():
    async def scenario(s: Scenario) -> None:
        app = s.app
        require(not app.screen.has_class("narrow"), "starts wide")
        await s.pilot.resize_terminal(*NARROW)
        await s.pilot.pause(0.3)
        require(app.size == NARROW, "the app took the new size")
        assert app.screen.has_class("narrow")
        assert displayed(app) == {name: name == "flame" for name in PANELS}

    run(scenario)


def test_narrow_timeline_is_full_width_as_soon_as_shown():
    async def scenario(s: Scenario) -> None:
        await s.press(panel_key("timeline"))
        await s.pilot.pause()
        timeline = s.timeline
        # Its lanes are computed only while it is up: the key asks for a picture at once.
        await s.wait_for(lambda: timeline.data is not None, what="the timeline's first picture")
        require(timeline.bins_wanted > 50, "the timeline has the terminal's width")
        assert timeline.data.bins == timeline.bins_wanted

    # No refresh tick during the test (refresh_s is an hour): what comes, the key asked for.
    run(scenario, size=NARROW)


def test_wide_timeline_has_no_horizontal_scrollbar():
    async def scenario(s: Scenario) -> None:
        timeline = await show_full_timeline(s)
        # Whether or not the lanes need a vertical scrollbar, nothing scrolls sideways.
        assert timeline.max_scroll_x == 0
        assert not timeline.show_horizontal_scrollbar

    run(scenario)


# ---- (k) quit ------------------------------------------------------------------------------------


def test_quit_on_a_file_exits_at_once():
    async def scenario(s: Scenario) -> None:
        await s.press("q")
        await s.wait_for(lambda: not s.app.is_running, what="the app to exit")
        assert s.app.return_value is None
        assert len(s.app.screen_stack) <= 1  # No question asked: nothing runs to stop.

    app = run(scenario)
    assert not app.is_running


def test_the_selected_phase_shows_its_whole_verdict_at_80_columns():
    from gradetop.tui.phase_table import PhaseDetail, PhaseTable, detail_text

    async def scenario(s: Scenario) -> None:
        app = s.app
        await s.press(panel_key("phases"))
        table = app.query_one(PhaseTable)
        await s.wait_for(lambda: table.row_count > 0, what="phases in the table")
        detail = app.query_one(PhaseDetail)
        for row in range(min(table.row_count, 3)):
            table.move_cursor(row=row, animate=False)
            group = table.groups[row]
            await s.wait_for(lambda: str(detail.render()) == detail_text(group), what=f"the detail of row {row}")
            text = str(detail.render())
            assert group.verdict in text and f"{100 * group.share:.0f}% of the run" in text
            assert len(group.verdict) <= 35 or detail.region.height >= 2  # the whole of it, wrapped
        assert detail.region.width <= NARROW[0] and detail.region.height > 0

    run(scenario, size=NARROW)


def test_a_view_that_fails_is_said_once_and_later_pictures_still_come(monkeypatch):
    """A bug in one computation ended the refresher's thread: the screen kept its last picture forever
    and said nothing. Now it says what failed, once, and the next request is drawn."""
    import gradetop.tui.refresher as refresher

    real = refresher.Refresher.picture
    failing = {"on": False}

    def picture(self, request):
        if failing["on"]:
            raise ValueError("a view's bug")
        return real(self, request)

    monkeypatch.setattr(refresher.Refresher, "picture", picture)
    monkeypatch.delenv("GRADETOP_DEBUG", raising=False)

    async def scenario(s: Scenario) -> None:
        failing["on"] = True
        for _ in range(2):
            s.app.tick()
            await s.wait_for(lambda: any("a view's bug" in n for n in s.notes()), what="the failure said")
        await s.settle()
        assert sum("internal error drawing the view: ValueError: a view's bug" in n for n in s.notes()) == 1, s.notes()
        failing["on"] = False
        await s.refreshes()  # the refresher lives on

    run(scenario)
