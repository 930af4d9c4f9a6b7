"""The flame (icicle) view of the calling-context tree: root on top, callees below.

Layout is plain data computed from a CallTree (testable without an app);
drawing uses the Line API, one Strip per row, so a 20k-node tree costs only
the boxes wide enough to see.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from gradetop.model.calltree import CallTree
from gradetop.model.stacks import ROOT
from gradetop.tui.colors import box_style

BLANK = Style()


@dataclass(frozen=True)
class Box:
    node: int
    x0: int
    x1: int


@dataclass(frozen=True)
class FlameLayout:
    rows: list[list[Box]]
    width: int

    def find(self, node: int) -> tuple[int, int] | None:
        for y, row in enumerate(self.rows):
            for i, box in enumerate(row):
                if box.node == node:
                    return y, i
        return None


def layout(tree: CallTree, children: dict[int, list[int]], zoom: int, width: int, max_depth: int,
           labels_of) -> FlameLayout:
    """Boxes per row under `zoom`, widths proportional to total time, children in name order.

    Name order (not weight order) keeps boxes where they were as live counts change.
    """
    rows: list[list[Box]] = []
    if width <= 0 or tree.size == 0 or tree.total_s[zoom] <= 0:
        return FlameLayout(rows, width)
    level = [(zoom, 0.0, float(width))]
    for _ in range(max_depth):
        if not level:
            break
        row, below = [], []
        for node, x0, x1 in level:
            a, b = int(round(x0)), int(round(x1))
            if b - a >= 1:
                row.append(Box(node, a, b))
            kids = children.get(node)
            if kids is None or len(kids) == 0 or x1 - x0 < 1:
                continue
            scale = (x1 - x0) / tree.total_s[node]
            x = x0
            for kid in sorted(kids, key=labels_of):
                span = tree.total_s[kid] * scale
                if span >= 1.0:
                    below.append((int(kid), x, x + span))
                x += span
        rows.append(row)
        level = below
    return FlameLayout(rows, width)


class FlameView(ScrollView, can_focus=True):
    """Icicle of the tree; arrows move, Enter zooms, Esc zooms out, / searches."""

    BINDINGS = [
        Binding("left,h", "move(-1)", "Left", show=False, tooltip="previous sibling"),
        Binding("right,l", "move(1)", "Right", show=False, tooltip="next sibling"),
        Binding("up,k", "up", "Caller", show=False, tooltip="caller"),
        Binding("down,j", "down", "Callee", show=False, tooltip="callee"),
        Binding("enter", "zoom_in", "Zoom", tooltip="zoom into the selected frame"),
        Binding("escape,backspace", "zoom_out", "Zoom out", tooltip="zoom out"),
    ]

    class Selected(Message):
        """The selected frame changed (the detail line shows it)."""

        def __init__(self, node: int) -> None:
            super().__init__()
            self.node = node

    zoom: reactive[int] = reactive(ROOT)
    """Node at the top of the view."""
    selected: reactive[int] = reactive(ROOT)
    """Node the detail line describes."""
    search: reactive[str] = reactive("")
    """Case-insensitive substring highlighted in function labels."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calltree: CallTree | None = None
        self.children_of: dict[int, list[int]] = {}
        self.labels: list[str] = []
        self.files: list[str] = []
        self._layout = FlameLayout([], 0)
        self._zoom_stack: list[int] = []

    # ---- data ----------------------------------------------------------

    def show(self, tree: CallTree, children: dict[int, list[int]], labels: list[str], files: list[str]) -> None:
        """Draw a new tree, keeping zoom and selection where those frames still exist."""
        self.calltree, self.children_of, self.labels, self.files = tree, children, labels, files
        for attr in ("zoom", "selected"):
            node = getattr(self, attr)
            if node >= tree.size or tree.total_n[node] == 0:
                setattr(self, attr, ROOT)
        self._relayout()

    def node_label(self, node: int) -> str:
        if node == ROOT or self.calltree is None:
            return "all"
        return self.labels[self.calltree.stacks.frame[node]]

    def node_file(self, node: int) -> str:
        if node == ROOT or self.calltree is None:
            return ""
        return self.files[self.calltree.stacks.frame[node]]

    def _relayout(self) -> None:
        if self.calltree is None:
            return
        width = max(self.scrollable_content_region.width, 1)
        self._layout = layout(self.calltree, self.children_of, self.zoom, width, 200, self.node_label)
        self.virtual_size = Size(width, len(self._layout.rows))
        self.refresh()

    def on_resize(self) -> None:
        self._relayout()

    def watch_zoom(self) -> None:
        self._relayout()

    def watch_selected(self, node: int) -> None:
        self.post_message(self.Selected(node))
        found = self._layout.find(node)
        if found is not None:
            self.scroll_to_region_y(found[0])
        self.refresh()

    def scroll_to_region_y(self, y: int) -> None:
        top, height = int(self.scroll_offset.y), self.scrollable_content_region.height
        if y < top:
            self.scroll_to(y=y, animate=False)
        elif y >= top + height:
            self.scroll_to(y=y - height + 1, animate=False)

    def watch_search(self) -> None:
        self.refresh()

    def matches(self, node: int) -> bool:
        return bool(self.search) and self.search.lower() in self.node_label(node).lower()

    # ---- drawing -------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        row_index = y + int(self.scroll_offset.y)
        width = self.scrollable_content_region.width
        if row_index >= len(self._layout.rows):
            return Strip.blank(width)
        return self.render_row(row_index, width)

    def box_style_for(self, node: int) -> Style:
        """A box's colours: stable per file here; a subclass colours by something else (the diff flame)."""
        return box_style(self.node_file(node) or "all", selected=node == self.selected, matched=self.matches(node))

    def render_row(self, row_index: int, width: int) -> Strip:
        segments: list[Segment] = []
        x = 0
        for box in self._layout.rows[row_index]:
            if box.x0 > x:
                segments.append(Segment(" " * (box.x0 - x), BLANK))
            span = box.x1 - box.x0
            label = self.node_label(box.node)
            text = (" " + label)[:span].ljust(span) if span > 1 else "▏"
            segments.append(Segment(text, self.box_style_for(box.node)))
            x = box.x1
        if x < width:
            segments.append(Segment(" " * (width - x), BLANK))
        return Strip(segments, width)

    # ---- actions -------------------------------------------------------------

    def action_move(self, step: int) -> None:
        found = self._layout.find(self.selected)
        if found is None:
            return
        y, i = found
        row = self._layout.rows[y]
        self.selected = row[max(0, min(len(row) - 1, i + step))].node

    def action_up(self) -> None:
        if self.calltree is not None and self.selected != self.zoom:
            self.selected = int(self.calltree.stacks.parent[self.selected])

    def action_down(self) -> None:
        found = self._layout.find(self.selected)
        if found is None or found[0] + 1 >= len(self._layout.rows):
            return
        below = [b for b in self._layout.rows[found[0] + 1]
                 if self.calltree.stacks.parent[b.node] == self.selected]
        if below:
            self.selected = max(below, key=lambda b: b.x1 - b.x0).node

    def action_zoom_in(self) -> None:
        if self.selected != self.zoom:
            self._zoom_stack.append(self.zoom)
            self.zoom = self.selected

    def action_zoom_out(self) -> None:
        if self._zoom_stack:
            self.zoom = self._zoom_stack.pop()
        elif self.zoom != ROOT and self.calltree is not None:
            self.zoom = int(self.calltree.stacks.parent[self.zoom])
