"""The process picker of `gradetop attach` with no PID: this machine's Python processes, filtered by typing."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Input, Static

from gradetop.tui.format import size


class PickerApp(App[int]):
    """Returns the chosen pid (or None on Esc)."""

    CSS = """
    #filter { height: 3; }
    #hint { height: 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("enter", "choose", "Attach", priority=True),
        # Arrows move the list while typing goes to the filter.
        Binding("up", "move('cursor_up')", show=False, priority=True),
        Binding("down", "move('cursor_down')", show=False, priority=True),
        Binding("pageup", "move('page_up')", show=False, priority=True),
        Binding("pagedown", "move('page_down')", show=False, priority=True),
    ]

    def __init__(self, list_processes: Callable[[], list[dict]]) -> None:
        super().__init__()
        self.list_processes = list_processes
        """Scans the machine (collectors.processes.python_processes): the picker itself never does."""
        self.processes: list[dict] = []

    def compose(self) -> ComposeResult:
        yield Static("Attach to which Python process? Type to filter, arrows to pick, Enter to attach.", id="hint")
        yield Input(placeholder="filter by pid or command", id="filter")
        yield DataTable(id="list", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, width in (("PID", 8), ("CPU%", 6), ("RSS", 8), ("Thr", 4), ("Command", None)):
            table.add_column(label, width=width)
        self.processes = self.list_processes()
        self.fill("")
        self.query_one(Input).focus()
        self.set_interval(2.0, self.reload)

    def reload(self) -> None:
        self.processes = self.list_processes()
        self.fill(self.query_one(Input).value)

    def fill(self, text: str) -> None:
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        for p in self.processes:
            if text and text.lower() not in f"{p['pid']} {p['command']}".lower():
                continue
            table.add_row(str(p["pid"]), f"{p['cpu']:.0f}", size(p["rss"]), str(p["threads"]), p["command"],
                          key=str(p["pid"]))
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))

    def on_input_changed(self, event: Input.Changed) -> None:
        self.fill(event.value)

    async def action_move(self, table_action: str) -> None:
        await self.query_one(DataTable).run_action(table_action)

    def action_choose(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            self.exit(int(table.get_row_at(table.cursor_row)[0]))

    def action_cancel(self) -> None:
        self.exit(None)
