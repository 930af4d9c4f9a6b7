"""The flame view with its detail line and search box."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Static

from gradetop.model.stacks import ROOT, short_path
from gradetop.model.views import ViewData
from gradetop.tui.flame import FlameView
from gradetop.tui.format import seconds


class FlamePanel(Vertical):
    BINDINGS = [Binding("slash", "search", "Search")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.view: ViewData | None = None

    def compose(self) -> ComposeResult:
        yield FlameView(id="flame")
        yield Input(placeholder="search functions (Enter keeps, Esc clears)", id="flame-search", classes="hidden")
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
            detail.update("no samples yet")
            return
        if view.tree.size == 0 or view.tree.total_s[ROOT] <= 0:
            detail.update(f"no active time in {view.samples} samples: every thread waited (i counts idle time)")
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
            hits = [n for n in range(1, tree.size) if tree.total_n[n] and self.flame.matches(n)]
            outer = [n for n in hits if not any(self._is_ancestor(a, n) for a in hits if a != n)]
            share = sum(tree.total_s[n] for n in outer) / whole
            text += f"  | '{search}': {len(hits)} frames, {100 * share:.1f}%"
        detail.update(text)

    def _is_ancestor(self, maybe: int, node: int) -> bool:
        parent = self.view.tree.stacks.parent
        while node > ROOT:
            node = int(parent[node])
            if node == maybe:
                return True
        return False

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

    def on_key(self, event) -> None:
        box = self.query_one("#flame-search", Input)
        if event.key == "escape" and box.has_focus:
            box.value = ""
            box.add_class("hidden")
            self.flame.focus()
            event.stop()
