"""The diff flame: `gradetop open A --diff B`, run B's tree drawn with each frame coloured by B minus A.

Red frames spent more time in B (a loss), blue ones less (a gain), grey ones
about the same; the deeper the colour, the larger the change relative to
the frame's own time. Widths are B's (`w` switches to A's, to see what B no
longer runs). Drawing is tui.flame's icicle; only the colours differ. This
app only reads the two profiles it is given.
"""

from __future__ import annotations

from rich.color import Color
from rich.style import Style
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Footer, Static

from gradetop.model.diff import DiffTree
from gradetop.model.stacks import ROOT, short_path
from gradetop.tui.colors import box_style
from gradetop.tui.flame import FlameView
from gradetop.tui.format import seconds

NEUTRAL = (138, 138, 138)
LOSS = (215, 48, 39)
GAIN = (69, 117, 180)
SAME_SHARE = 0.01
"""Changes below this share of the larger run's total are drawn as unchanged: sampling noise."""


def change_color(delta: float, a: float, b: float, whole: float) -> tuple[int, int, int]:
    """Grey for no change, towards red (more time in B) or blue (less), deeper as the change grows."""
    if abs(delta) < SAME_SHARE * whole or max(a, b) <= 0:
        return NEUTRAL
    strength = 0.35 + 0.65 * min(1.0, abs(delta) / max(a, b))
    target = LOSS if delta > 0 else GAIN
    return tuple(int(round(n + (t - n) * strength)) for n, t in zip(NEUTRAL, target))


class DiffFlameView(FlameView):
    """FlameView whose boxes are coloured by change between two runs."""

    def __init__(self, diff: DiffTree, **kwargs) -> None:
        super().__init__(**kwargs)
        self.diff = diff
        self.whole = max(diff.a.root_s, diff.b.root_s, 1e-9)

    def box_style_for(self, node: int) -> Style:
        if node == self.selected or self.matches(node) or node == ROOT:
            return box_style("all", selected=node == self.selected, matched=self.matches(node))
        a, b = float(self.diff.a.total_s[node]), float(self.diff.b.total_s[node])
        return Style(color="black", bgcolor=Color.from_rgb(*change_color(b - a, a, b, self.whole)))


class DiffApp(App):
    CSS_PATH = "diff_app.tcss"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("w", "widths", "Widths A/B"),
    ]

    widths_from: reactive[str] = reactive("b")
    """Which run's times set the boxes' widths: 'a' or 'b'."""

    def __init__(self, diff: DiffTree, name_a: str, name_b: str) -> None:
        super().__init__()
        self.diff = diff
        self.names = {"a": name_a, "b": name_b}
        frames = diff.stacks.frames.frames
        self.labels = [f.label for f in frames]
        self.files = [f.file for f in frames]

    def compose(self) -> ComposeResult:
        yield Static("", id="diff-title")
        yield DiffFlameView(self.diff, id="flame")
        yield Static("", id="diff-detail")
        yield Footer()

    @property
    def flame(self) -> DiffFlameView:
        return self.query_one(DiffFlameView)

    def on_mount(self) -> None:
        self.show_tree()
        self.flame.focus()

    def watch_widths_from(self) -> None:
        if self.is_mounted:
            self.show_tree()

    def show_tree(self) -> None:
        tree = self.diff.b if self.widths_from == "b" else self.diff.a
        self.flame.show(tree, tree.children_index(), self.labels, self.files)
        title = (f"A {self.names['a']} ({seconds(self.diff.a.root_s)})  vs  B {self.names['b']} "
                 f"({seconds(self.diff.b.root_s)})   red: more time in B  blue: less  widths: "
                 f"{self.widths_from.upper()}")
        self.query_one("#diff-title", Static).update(title)
        self.describe(self.flame.selected)

    def on_flame_view_selected(self, message: FlameView.Selected) -> None:
        self.describe(message.node)

    def describe(self, node: int) -> None:
        a, b = float(self.diff.a.total_s[node]), float(self.diff.b.total_s[node])
        if node == ROOT:
            name = "all"
        else:
            f = self.diff.stacks.frames.frames[self.diff.stacks.frame[node]]
            name = f"{f.function} ({short_path(f.file)})"
        change = b - a
        share = f" ({100 * change / a:+.0f}%)" if a > 0 else (" (new in B)" if b > 0 else "")
        word = "loss" if change > 0 else "gain" if change < 0 else "same"
        self.query_one("#diff-detail", Static).update(
            f"{name}  A {seconds(a)}  B {seconds(b)}  Δ {'+' if change >= 0 else '-'}{seconds(abs(change))}{share} {word}")

    def action_widths(self) -> None:
        self.widths_from = "a" if self.widths_from == "b" else "b"
