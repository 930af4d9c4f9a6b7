"""One thread's whole stack, innermost last, with its wait; 'l' asks py-spy for its locals."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from gradetop.model.stacks import short_path
from gradetop.model.threads import ThreadRow


class StackScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close"), Binding("l", "locals", "Locals")]

    def __init__(self, row: ThreadRow, frames, live: bool) -> None:
        super().__init__()
        self.row = row
        self.frames = frames
        self.live = live

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
        from gradetop.collectors.dump import DumpError, DumpOptions, dump

        try:
            result = dump(self.row.pid, DumpOptions(watch_s=0, subprocesses=False, locals=True))
        except DumpError as exc:
            self.app.call_from_thread(self.query_one("#stack-locals", Static).update, f"[red]{exc}[/red]")
            return
        lines = []
        for proc in result.processes:
            for thread in proc.threads:
                if thread.tid != self.row.tid:
                    continue
                for frame in thread.frames:
                    if frame.locals:
                        lines.append(f"  [b]{frame.function}[/b]")
                        lines += [f"    {v.get('name')} = {str(v.get('repr'))[:200]}" for v in frame.locals]
        text = "\n".join(lines) or "[dim]no local variables (or the thread is gone)[/dim]"
        self.app.call_from_thread(self.query_one("#stack-locals", Static).update, text)
