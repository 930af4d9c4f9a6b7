"""The flame view with its detail line and search box."""

from __future__ import annotations

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Static

from gradetop.model.stacks import ROOT, short_path
from gradetop.model.pictures import ViewData
from gradetop.tui.flame import FlameView
from gradetop.tui.format import seconds


def search_share(view: ViewData, text: str) -> tuple[int, float]:
    """How many frames match, and the seconds under them (a match inside a match counts once)."""
    tree = view.tree
    stacks = tree.stacks
    needle = text.lower()
    frame_hit = np.array([needle in label.lower() for label in view.labels], dtype=bool)
    frame = stacks.frame.view()[: tree.size]
    parent = stacks.parent.view()[: tree.size]
    depth = stacks.depth.view()[: tree.size]
    hit = np.zeros(tree.size, dtype=bool)
    hit[1:] = frame_hit[frame[1:]] & (tree.total_n[1:] > 0)
    # Whether an ancestor matched, one depth at a time (children sit one level below parents).
    covered = np.zeros(tree.size, dtype=bool)
    for level in range(2, int(depth.max(initial=0)) + 1):
        nodes = np.flatnonzero(depth == level)
        covered[nodes] = covered[parent[nodes]] | hit[parent[nodes]]
    return int(hit.sum()), float(tree.total_s[hit & ~covered].sum())


class SearchBox(Input):
    """The flame's search field: Esc clears it and gives the keys back to the flame."""

    BINDINGS = [Binding("escape", "clear_search", "Clear search", show=False)]

    def action_clear_search(self) -> None:
        self.parent.action_clear_search()


class FlamePanel(Vertical):
    BINDINGS = [Binding("slash", "search", "Search", tooltip="search functions (Enter keeps, Esc clears)")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.view: ViewData | None = None

    def compose(self) -> ComposeResult:
        yield FlameView(id="flame")
        yield SearchBox(placeholder="search functions (Enter keeps, Esc clears)", id="flame-search", classes="hidden")
        yield Static("", id="flame-detail")

    @property
    def flame(self) -> FlameView:
        return self.query_one(FlameView)

    def show(self, view: ViewData) -> None:
        self.view = view
        self.flame.show(view.tree, view.children, view.labels, view.files)
        self.describe(self.flame.selected)

    def on_flame_view_selected(self, message: FlameView.Selected) -> None:
        self.describe(message.node)

    def describe(self, node: int) -> None:
        detail = self.query_one("#flame-detail", Static)
        view = self.view
        if view is None or view.samples == 0:
            detail.update("no samples yet", layout=False)  # (one line high: see StatusHeader)
            return
        if view.tree.size == 0 or view.tree.total_s[ROOT] <= 0:
            detail.update(f"no active time in {view.samples} samples: every thread waited (i counts idle time)",
                          layout=False)
            return
        tree = view.tree
        whole = tree.total_s[ROOT]
        if node == ROOT:
            text = f"all: {seconds(whole)} in {view.samples} samples ({view.filter.describe()})"
        else:
            frame = view.tree.stacks.frames.frames[tree.stacks.frame[node]]
            text = (f"{frame.function} ({short_path(frame.file)}:{frame.line})  "
                    f"total {seconds(tree.total_s[node])} {100 * tree.total_s[node] / whole:.1f}%  "
                    f"self {seconds(tree.self_s[node])} {100 * tree.self_s[node] / whole:.1f}%")
        search = self.flame.search
        if search:
            hits, share = search_share(view, search)
            text += f"  | '{search}': {hits} frames, {100 * share / whole:.1f}%"
        detail.update(text, layout=False)

    def action_search(self) -> None:
        box = self.query_one("#flame-search", Input)
        box.remove_class("hidden")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.flame.search = event.value
        self.describe(self.flame.selected)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.input.add_class("hidden")
        self.flame.focus()

    def action_clear_search(self) -> None:
        box = self.query_one("#flame-search", Input)
        box.value = ""
        box.add_class("hidden")
        self.flame.focus()
