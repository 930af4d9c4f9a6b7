"""Pictures of the main screens over the recorded demo snapshot, at a narrow and a wide terminal size.

The app reads tests/data/demo.gtop through a FileSource: the duration, the
header and every panel are fixed by the file, so the pictures do not depend on
the clock. The refresh timer is set far beyond the test and the refreshes are
driven by hand (app.tick(), what the timer calls): a busy app never looks idle
to Textual's pilot, which then waits a second per key. Each picture is taken
after at least one refresh following the keys, once the timeline (where shown)
was computed for the width it has, so every panel draws data for its size.

Regenerate after an intended change of the UI:
    python -m pytest tests/test_tui_snapshots.py --snapshot-update
and look at the SVGs under tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gradetop.model.snapshot import load
from gradetop.tui.app import PANELS, GradetopApp
from gradetop.tui.screens import HelpScreen
from gradetop.model.source import FileSource
from gradetop.tui.timeline import TimelineView

DEMO = Path(__file__).parent / "data" / "demo.gtop"
NARROW = (80, 24)
WIDE = (160, 48)
SIZES = [pytest.param(NARROW, id="80x24"), pytest.param(WIDE, id="160x48")]


@pytest.fixture(scope="module")
def demo_profile():
    # Nothing writes to a FileSource's profile, so the apps can share one.
    return load(DEMO)


def demo_app(profile) -> GradetopApp:
    return GradetopApp(FileSource(profile, str(DEMO)), refresh_s=3600)


async def wait_for(pilot, condition, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def fresh_views(pilot, count: int = 2) -> None:
    """Refresh `count` times, as the timer would, each time waiting until the new picture is applied."""
    app = pilot.app
    for _ in range(count):
        before = app.picture
        app.tick()
        await wait_for(pilot, lambda: app.picture is not None and app.picture is not before, what="a refresh")
        await pilot.pause()


def panel_key(name: str) -> str:
    return str(PANELS.index(name) + 1)


def keys_then_settle(*keys: str):
    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: pilot.app.last_view is not None, what="the first picture")
        if keys:
            await pilot.press(*keys)
        # Refresh until the timeline (if shown) was computed for the width it has now: the first picture
        # can bring it a vertical scrollbar, and a timeline computed while hidden has only 10 bins.
        timeline = pilot.app.query_one(TimelineView)
        for _ in range(3):
            await fresh_views(pilot, 1)
            if not timeline.display or timeline.data.bins == timeline.bins_wanted:
                break
        else:
            raise AssertionError(
                f"the timeline never settled: {timeline.data.bins} bins, {timeline.bins_wanted} wanted")
        if "question_mark" in keys:
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), what="the help screen")
            await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_flame(snap_compare, demo_profile, size):
    """Default screen: the flame of the whole run, root selected, detail line at the bottom of the panel."""
    assert snap_compare(demo_app(demo_profile), terminal_size=size, run_before=keys_then_settle())


@pytest.mark.parametrize("size", SIZES)
def test_top(snap_compare, demo_profile, size):
    """Top functions in the default sort, the table focused."""
    run_before = keys_then_settle(panel_key("top"))
    assert snap_compare(demo_app(demo_profile), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_timeline(snap_compare, demo_profile, size):
    """The timeline: one lane per process with CPU and RSS sparklines, the cursor on the last bin."""
    run_before = keys_then_settle(panel_key("timeline"))
    assert snap_compare(demo_app(demo_profile), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_processes(snap_compare, demo_profile, size):
    """The process tree (main process, resource tracker, two pool workers), all ended."""
    run_before = keys_then_settle(panel_key("processes"))
    assert snap_compare(demo_app(demo_profile), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, demo_profile, size):
    """'?': the help box over the flame screen."""
    assert snap_compare(demo_app(demo_profile), terminal_size=size, run_before=keys_then_settle("question_mark"))
