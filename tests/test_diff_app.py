"""The diff flame app under Pilot: it opens on B's tree, colours loss red and gain blue, and q quits."""

from __future__ import annotations

import asyncio

from export_helpers import small_profile
from gradetop.model.diff import union_tree
from gradetop.tui.diff_app import GAIN, LOSS, NEUTRAL, DiffApp, change_color


def node_of(tree, function: str) -> int:
    frames = tree.stacks.frames.frames
    return next(n for n in range(1, tree.b.size) if frames[tree.stacks.frame[n]].function == function)


def rgb(style) -> tuple[int, int, int]:
    return style.bgcolor.get_truecolor()


def test_change_colour_scale():
    assert change_color(0.0, 1.0, 1.0, 10.0) == NEUTRAL
    assert change_color(0.05, 1.0, 1.05, 10.0) == NEUTRAL, "under 1% of the run is noise"
    assert change_color(5.0, 0.0, 5.0, 10.0) == LOSS, "all new: the full colour"
    assert change_color(-5.0, 5.0, 0.0, 10.0) == GAIN
    mild = change_color(1.0, 4.0, 5.0, 10.0)
    assert NEUTRAL[0] < mild[0] < LOSS[0], "a partial change, a partial colour"


def test_diff_app_shows_gain_and_loss_and_quits():
    # B: alpha slower (60 -> 90 samples), beta faster (30 -> 10), child_work the same.
    tree = union_tree(small_profile(), small_profile({(100, 100): 90, (100, 101): 10}))
    app = DiffApp(tree, "a.gtop", "b.gtop")
    seen = {}

    async def scenario():
        async with app.run_test(size=(100, 20)) as pilot:
            await pilot.pause()
            flame = app.flame
            title = str(app.query_one("#diff-title").render())
            seen["title"] = title
            alpha, beta, child = (node_of(tree, f) for f in ("alpha", "beta", "child_work"))
            seen["colours"] = {name: rgb(flame.box_style_for(n)) for name, n in
                               (("alpha", alpha), ("beta", beta), ("child", child))}
            # The boxes are drawn with those colours: find alpha's box on screen.
            rows = [flame.render_row(y, 100) for y in range(len(flame._layout.rows))]
            seen["drawn"] = {seg.text.strip(): rgb(seg.style) for strip in rows for seg in strip
                             if seg.style and seg.style.bgcolor and seg.text.strip()}
            await pilot.press("down", "down")  # root -> main -> its heaviest callee, alpha
            await pilot.pause()
            seen["detail"] = str(app.query_one("#diff-detail").render())
            await pilot.press("w")
            await pilot.pause()
            seen["title_a"] = str(app.query_one("#diff-title").render())
            await pilot.press("q")
            await pilot.pause()
            seen["running"] = app.is_running

    asyncio.run(scenario())
    assert "A a.gtop" in seen["title"] and "B b.gtop" in seen["title"] and "widths: B" in seen["title"]
    red, blue, grey = seen["colours"]["alpha"], seen["colours"]["beta"], seen["colours"]["child"]
    assert red[0] > red[2] + 40, f"alpha got slower: red, not {red}"
    assert blue[2] > blue[0] + 40, f"beta got faster: blue, not {blue}"
    assert grey == NEUTRAL
    assert any(text.startswith("alpha") and colour == red for text, colour in seen["drawn"].items())
    assert "alpha (train.py)" in seen["detail"] and "loss" in seen["detail"] and "+50%" in seen["detail"]
    assert "widths: A" in seen["title_a"]
    assert seen["running"] is False
