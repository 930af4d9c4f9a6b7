"""The process tree: pid, command, state, CPU%, RSS, threads, and whether stacks are read (or why not)."""

from __future__ import annotations

from textual.widgets import DataTable

from gradetop.model.pictures import ProcessRow
from gradetop.tui.format import size


class ProcessTable(DataTable):
    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", **kwargs)

    def on_mount(self) -> None:
        for label, width in (("PID", 8), ("State", 8), ("CPU%", 6), ("RSS", 7), ("Thr", 4), ("Stacks", 10),
                             ("Command", None)):
            self.add_column(label, width=width)

    def show(self, rows: list[ProcessRow]) -> None:
        keep = self.cursor_row
        self.clear()
        for r in rows:
            # Many hosts: the pid its host knows, and host and rank before the command.
            shown = r.pid if r.host_pid is None else r.host_pid
            self.add_row(str(shown), r.state, f"{r.cpu_percent:5.0f}", size(r.rss), str(r.threads),
                         r.sampled if len(r.sampled) <= 10 else r.sampled[:9] + "…",
                         "  " * r.depth + (f"({r.place}) " if r.place else "") + r.command, key=str(r.pid))
        if self.row_count:
            self.move_cursor(row=min(keep, self.row_count - 1), animate=False)

    def selected_pid(self) -> int | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key((self.cursor_row, 0))
        return int(row_key.value)
