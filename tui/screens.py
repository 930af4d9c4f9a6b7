"""Modal screens: quitting a run, and help."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

def key_names(binding: Binding) -> str:
    """'left,h' -> '← h': how the keys of a binding read in the help."""
    names = {"left": "←", "right": "→", "up": "↑", "down": "↓", "question_mark": "?", "slash": "/",
             "escape": "Esc", "enter": "Enter", "space": "Space", "backspace": "Backspace"}
    names.update(home="Home", end="End", pageup="PgUp", pagedown="PgDn")

    def one(key: str) -> str:
        *mods, base = key.split("+")
        return "+".join([*(m.title() for m in mods), names.get(base, base)])

    return " ".join(one(k) for k in binding.key.split(","))


def help_text(sections: list[tuple[str, list[Binding]]]) -> str:
    """The help, written from the bindings themselves, so that it cannot drift from the keys."""
    lines = ["[b]gradetop[/b] — keys (the footer shows those of the focused view)", ""]
    for title, bindings in sections:
        lines.append(f"[b]{title}[/b]")
        for binding in bindings:
            lines.append(f"  {key_names(binding):<16} {binding.tooltip or binding.description}")
        lines.append("")
    return "\n".join(lines).rstrip()


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, sections: list[tuple[str, list[Binding]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static("[dim]Esc to close; arrows scroll[/dim]")
            yield Static(help_text(self.sections), id="help-text")


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
