"""Modal screens: quitting a run, and help."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

HELP = """\
[b]gradetop[/b] — keys (the footer shows those of the focused view)

[b]everywhere[/b]
  1-8 / Tab   flame, top, timeline, phases, threads, processes, output, gpu
  t           cycle: all threads merged / one process / one thread
  w           time window: whole run / last 10 s / 60 s / 5 min
  i           count idle time too (wall time), or active time only
  p           freeze the view (collection goes on)
  s           save a snapshot now
  q           quit (a run asks whether to stop the workflow)
  ?           this help

[b]flame[/b]     ←→ siblings  ↑ caller  ↓ callee  Enter zoom  Esc zoom out  / search
[b]top[/b]       ↑↓ move  o cycle sort (own / total / name), or click a header
[b]timeline[/b]  ←→ cursor (Shift: ×10)  Space mark range start/end  Esc clear
            T  one lane per thread  f  fold nested phases; a range filters flame and top
[b]phases[/b]    ↑↓ move  Enter show the phase in flame and top (Esc in the timeline clears)
[b]threads[/b]   stuck threads first (red; the header counts them)  Enter full stack, l locals
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static("[dim]Esc to close; arrows scroll[/dim]")
            yield Static(HELP, id="help-text")


class QuitScreen(ModalScreen[str]):
    """Asks what becomes of a workflow gradetop started: 'stop', 'leave' or 'cancel'."""

    BINDINGS = [
        Binding("s", "choose('stop')", "Stop it"),
        Binding("l", "choose('leave')", "Leave running"),
        Binding("escape,c", "choose('cancel')", "Cancel"),
    ]

    def __init__(self, command: str) -> None:
        super().__init__()
        self.command = command

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-box"):
            yield Static(f"Quit gradetop. The workflow is still running:\n[b]{self.command}[/b]")
            with Horizontal(id="quit-buttons"):
                yield Button("[u]S[/u]top it", id="stop", variant="error")
                yield Button("[u]L[/u]eave running", id="leave", variant="primary")
                yield Button("[u]C[/u]ancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
