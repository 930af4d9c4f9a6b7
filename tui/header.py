"""The header: what is watched, for how long, how well it is sampled, and its state."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from gradetop.tui.format import clock


class StatusHeader(Static):
    def show(self, title: str, elapsed: float, rate: float, asked: float, samples: int, dropped: int,
             state: str, frozen: bool, filter_text: str, alert: str = "") -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" gradetop ", style="bold black on #5fafd7")
        text.append(f" {title} ", style="bold")
        text.append(f" {clock(elapsed)} ")
        text.append(f" {rate:.0f}/{asked:.0f} Hz ", style="#87d787" if rate >= 0.9 * asked else "#d7af5f")
        text.append(f" {samples:,} samples ")
        if dropped:
            text.append(f" {dropped:,} dropped ", style="#d7af5f")
        style = {"running": "bold black on #87d787", "file": "bold black on #87afd7"}.get(state, "bold black on #d7af5f")
        text.append(f" {state.upper()} ", style=style)
        if frozen:
            text.append(" FROZEN ", style="bold white on #875faf")
        if alert:
            text.append(f" {alert} ", style="bold white on #d70000")
        text.append(f"  {filter_text}", style="#a8a8a8")
        self.update(text)
