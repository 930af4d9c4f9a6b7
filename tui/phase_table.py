"""The phases table: one row per phase type, with its cost and verdict; Enter filters flame and top to it."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from gradetop.model.phase_summary import PhaseGroup
from gradetop.tui.format import seconds, size


class PhaseTable(DataTable):
    BINDINGS = [Binding("enter", "choose", "Show in flame", tooltip="show the phase in flame and top")]

    class Chosen(Message):
        """The user asked to see one phase type: its time span on its processes."""

        def __init__(self, group: PhaseGroup | None) -> None:
            super().__init__()
            self.group = group

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self.groups: list[PhaseGroup] = []

    def on_mount(self) -> None:
        for label, width in (("Phase", 22), ("n", 4), ("Total", 7), ("Wall", 5), ("Verdict", 60), ("Src", 6),
                             ("Mean", 7), ("CPU", 6), ("RSS", 7)):
            self.add_column(label, width=width)

    def show(self, groups: list[PhaseGroup]) -> None:
        self.groups = groups
        keep = self.cursor_row
        self.clear()
        for g in groups:
            name = "  " * g.depth + g.kind
            self.add_row(name if len(name) <= 22 else name[:21] + "…", str(g.count), seconds(g.total_s),
                         f"{100 * g.share:.0f}%", g.verdict, g.source, seconds(g.mean_s), seconds(g.cpu_s),
                         size(g.peak_rss))
        if self.row_count:
            self.move_cursor(row=min(keep, self.row_count - 1), animate=False)

    def action_choose(self) -> None:
        if self.groups and 0 <= self.cursor_row < len(self.groups):
            self.post_message(self.Chosen(self.groups[self.cursor_row]))
