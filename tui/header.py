"""The header: state first (it matters most), then time, sampling health, filter, and what is watched.

Whatever does not fit is cut from the end, so the title goes last.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from gradetop.tui.format import clock

STATE_STYLES = {"running": "bold black on #87d787", "file": "bold black on #87afd7"}


class StatusHeader(Static):
    def show(self, title: str, elapsed: float, rate: float, asked: float, samples: int,
             state: str, frozen: bool, filter_text: str, alert: str = "", writing_to: str | None = None,
             gpu: str = "") -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" gradetop ", style="bold black on #5fafd7")
        text.append(f" {state.upper()} ", style=STATE_STYLES.get(state, "bold black on #d7af5f"))
        if writing_to:
            # Recording (to disk, as it runs): the badge fits at 80 columns, the path where there is room.
            text.append(" REC ", style="bold white on #af0000")
        if frozen:
            text.append(" FROZEN ", style="bold white on #875faf")
        if alert:
            text.append(f" {alert} ", style="bold white on #d70000")
        text.append(f" {clock(elapsed)}")
        text.append(f"  {rate:.0f}/{asked:.0f} Hz", style="#87d787" if rate >= 0.9 * asked else "#d7af5f")
        text.append(f"  {samples:,} samples")
        if gpu:
            text.append(f"  {gpu}", style="#87d7ff" if gpu.startswith("GPU") and ":" not in gpu else "#d7af5f")
        if not filter_text.endswith("whole run, all threads"):
            text.append(f"  [{filter_text}]", style="bold #d7af5f")
        if writing_to:
            text.append(f"  → {writing_to}", style="dim")
        text.append(f"  {title}", style="bold")
        # One line high (gradetop.tcss): new text never moves anything, so no layout of the screen,
        # which each update every second cost.
        self.update(text, layout=False)
