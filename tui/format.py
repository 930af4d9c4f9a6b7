"""Numbers as a reader wants them in a narrow terminal."""

from __future__ import annotations


def seconds(value: float) -> str:
    if value >= 3600:
        return f"{value / 3600:.1f}h"
    if value >= 60:
        return f"{value / 60:.1f}m"
    if value >= 10:
        return f"{value:.0f}s"
    return f"{value:.2f}s"


def clock(value: float) -> str:
    value = int(max(value, 0))
    return f"{value // 3600:02d}:{value % 3600 // 60:02d}:{value % 60:02d}"


def size(value: float) -> str:
    for unit in ("B", "K", "M", "G", "T"):
        if abs(value) < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}T"
