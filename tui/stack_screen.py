"""One thread's whole stack, innermost last, with its wait; 'l' asks the live session for its locals."""

from __future__ import annotations

from collections.abc import Callable

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from gradetop.model.stacks import short_path
from gradetop.model.threads import ThreadRow


class StackScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close", tooltip="close the stack"),
                Binding("l", "locals", "Locals", tooltip="its local variables (asks the live process)")]

    def __init__(self, row: ThreadRow, frames, read_locals: Callable[[int, int], list] | None) -> None:
        super().__init__()
        self.row = row
        self.frames = frames
        self.read_locals_of = read_locals
        """The session's `read_locals(pid, tid)` while the workflow runs; None for a file or an ended run."""
        self.live = read_locals is not None

    def compose(self) -> ComposeResult:
        r = self.row
        head = f"[b]thread {r.tid}[/b] {r.name}  (process {r.pid})  {'[b red]STUCK[/b red] ' if r.stuck else ''}" \
               f"{r.state}, unchanged {r.unchanged_s:.1f} s"
        if r.wait_reason:
            head += f"\nwaits: [b]{r.wait_reason}[/b] in {r.wait_frame}"
        lines = [f"  {f.function} ({short_path(f.file)}:{f.line})" for f in self.frames]
        with VerticalScroll(id="stack-box"):
            yield Static(head)
            yield Static("\n".join(lines) or "  (no Python frames)", id="stack-frames")
            yield Static("", id="stack-locals")
            hint = "l: local variables (asks py-spy now)   Esc: close" if self.live else "Esc: close"
            yield Static(f"[dim]{hint}[/dim]")

    def action_locals(self) -> None:
        if self.live:
            self.query_one("#stack-locals", Static).update("[dim]reading locals…[/dim]")
            self.read_locals()

    @work(thread=True, exclusive=True)
    def read_locals(self) -> None:
        try:
            frames = self.read_locals_of(self.row.pid, self.row.tid)
        except Exception as exc:  # whatever the session says went wrong, the screen shows one line
            self.app.call_from_thread(self.query_one("#stack-locals", Static).update, f"[red]{exc}[/red]")
            return
        lines = []
        for function, variables in frames:
            lines.append(f"  [b]{function}[/b]")
            lines += [f"    {name} = {value[:200]}" for name, value in variables]
        text = "\n".join(lines) or "[dim]no local variables (or the thread is gone)[/dim]"
        self.app.call_from_thread(self.query_one("#stack-locals", Static).update, text)
