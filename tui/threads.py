"""The threads view: one row per thread with its state, top frame and how long it has not moved.

Stuck threads come first, in red. Enter opens the full stack.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from gradetop.model.threads import ThreadRow
from gradetop.tui.format import seconds

STUCK = "bold white on #af0000"


class ThreadTable(DataTable):
    BINDINGS = [Binding("enter", "open", "Stack", tooltip="the thread's whole stack (stuck threads come first)")]

    class Opened(Message):
        def __init__(self, row: ThreadRow) -> None:
            super().__init__()
            self.row = row

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self.thread_rows: list[ThreadRow] = []

    def on_mount(self) -> None:
        for label, width in (("PID", 7), ("TID", 7), ("Thread", 14), ("State", 8), ("Still", 7),
                             ("Waits on", 16), ("Top frame", None)):
            self.add_column(label, width=width)

    def show(self, rows: list[ThreadRow]) -> None:
        self.thread_rows = rows
        keep = self.cursor_row
        self.clear()
        for r in rows:
            state = "STUCK" if r.stuck else ("waiting" if r.waiting_on else r.state)
            wait = f"{r.wait_reason} on {r.waiting_on}" if r.waiting_on else (r.wait_reason or "")
            cells = [str(r.pid), str(r.tid), r.name[:14], state, seconds(r.unchanged_s), wait, r.top]
            style = STUCK if r.stuck else ("#87d787" if r.state == "running" else "")
            self.add_row(*(Text(c, style=style) for c in cells))
        if self.row_count:
            self.move_cursor(row=min(keep, self.row_count - 1), animate=False)

    def action_open(self) -> None:
        if self.thread_rows and 0 <= self.cursor_row < len(self.thread_rows):
            self.post_message(self.Opened(self.thread_rows[self.cursor_row]))
