"""Stable colours: the same file gets the same colour in every view, run after run."""

from __future__ import annotations

import zlib

from rich.color import Color
from rich.style import Style

# Muted hues that keep black text readable, chosen from the 256-colour cube so
# they look the same over SSH in a 256-colour terminal as in truecolor.
PALETTE = [
    "#d7875f", "#d7af5f", "#afaf5f", "#87af5f", "#5faf87", "#5fafaf", "#5f87af", "#875faf",
    "#af5faf", "#af5f87", "#d78787", "#d7af87", "#afd787", "#87d7af", "#87afd7", "#af87d7",
]
IDLE = "#585858"


def color_for(key: str) -> str:
    return PALETTE[zlib.crc32(key.encode()) % len(PALETTE)]


def box_style(key: str, selected: bool = False, matched: bool = False, dim: bool = False) -> Style:
    if selected:
        return Style(color="black", bgcolor="white", bold=True)
    if matched:
        return Style(color="black", bgcolor="#ff5fd7", bold=True)
    bg = Color.parse(IDLE if dim else color_for(key))
    return Style(color="black", bgcolor=bg)
