"""Top functions, like py-spy top: own and total time, sortable, for the current filter."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import DataTable

from gradetop.model.stacks import short_path
from gradetop.model.pictures import ViewData
from gradetop.tui.format import seconds

SORTS = ("own", "total", "name")
"""Own time first, as py-spy top: where the time is actually spent."""
ROWS_SHOWN = 200


class TopTable(DataTable):
    BINDINGS = [Binding("o", "cycle_sort", "Sort", tooltip="cycle sort: own / total / name (or click a header)")]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.sort_by = "own"
        self.view: ViewData | None = None

    def on_mount(self) -> None:
        for label, key, width in (("%Own", "own_pct", 6), ("%Total", "total_pct", 7), ("Own", "own", 7),
                                  ("Total", "total", 7), ("Function", "function", None)):
            self.add_column(label, key=key, width=width)

    def show(self, view: ViewData) -> None:
        self.view = view
        whole = max(view.tree.total_s[0], 1e-12) if view.tree.size else 1.0
        rows = list(view.functions)  # by total time
        if self.sort_by == "own":
            rows.sort(key=lambda f: (-f.self_s, -f.total_s))
        elif self.sort_by == "name":
            rows.sort(key=lambda f: f.function.lower())
        keep = self.cursor_row
        self.clear()
        for f in rows[:ROWS_SHOWN]:
            self.add_row(
                f"{100 * f.self_s / whole:5.1f}", f"{100 * f.total_s / whole:6.1f}", seconds(f.self_s),
                seconds(f.total_s), f"{f.function} ({short_path(f.file)}:{f.line})",
            )
        if self.row_count:
            self.move_cursor(row=min(keep, self.row_count - 1), animate=False)

    def action_cycle_sort(self) -> None:
        self.sort_by = SORTS[(SORTS.index(self.sort_by) + 1) % len(SORTS)]
        self.notify(f"sorted by {self.sort_by}", timeout=1.5)
        if self.view is not None:
            self.show(self.view)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        self.sort_by = "own" if key in ("own", "own_pct") else "name" if key == "function" else "total"
        if self.view is not None:
            self.show(self.view)
