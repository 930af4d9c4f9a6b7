"""The phases table: one row per phase type, with its cost and verdict; Enter filters flame and top to it.

At 80 columns the verdict column shows ~35 characters: the row under the cursor has its whole verdict,
evidence and breakdown in the detail line below the table (`PhaseDetail`).
"""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static

from gradetop.model.phase_summary import PhaseGroup
from gradetop.tui.format import seconds, size


def detail_text(group: PhaseGroup | None) -> str:
    """What the detail line says of one phase type: name, share of what, the longest instance's whole verdict."""
    if group is None:
        return ""
    procs = f" in {group.processes} processes" if group.processes > 1 else ""
    head = (f"{group.kind}: {group.count} x, {seconds(group.total_s)} summed{procs}, "
            f"{100 * group.share:.0f}% of the run")
    return f"{head}. {group.detail or group.verdict}"


class PhaseDetail(Static):
    """The selected phase's whole verdict and evidence (the table's column is cut at 80 columns)."""

    DEFAULT_CSS = """
    PhaseDetail {
        height: auto;
        max-height: 5;
        padding: 0 1;
        color: $text-muted;
    }
    """


class PhaseTable(DataTable):
    BINDINGS = [Binding("enter", "choose", "Show in flame", tooltip="show the phase in flame and top")]

    class Chosen(Message):
        """The user asked to see one phase type: its time span on its processes."""

        def __init__(self, group: PhaseGroup | None) -> None:
            super().__init__()
            self.group = group

    class Selected(Message):
        """The cursor rests on one phase type (its detail line follows it)."""

        def __init__(self, group: PhaseGroup | None) -> None:
            super().__init__()
            self.group = group

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self.groups: list[PhaseGroup] = []

    def on_mount(self) -> None:
        # "Run": the share of the run's wall time when at least one instance ran (never over 100%).
        for label, width in (("Phase", 22), ("n", 4), ("Total", 7), ("Run", 5), ("Verdict", 60), ("Src", 6),
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
        self.post_message(self.Selected(self.selected()))

    def selected(self) -> PhaseGroup | None:
        if self.groups and 0 <= self.cursor_row < len(self.groups):
            return self.groups[self.cursor_row]
        return None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.post_message(self.Selected(self.selected()))

    def action_choose(self) -> None:
        if self.groups and 0 <= self.cursor_row < len(self.groups):
            self.post_message(self.Chosen(self.groups[self.cursor_row]))
