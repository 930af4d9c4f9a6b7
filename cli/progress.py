"""A progress bar on stderr for loads and saves that take more than a second (terminals only)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

DELAY_S = 1.0
WIDTH = 30


@contextlib.contextmanager
def progress_bar(label: str, stream=None) -> Iterator[Callable[[float], None]]:
    """Yields `update(fraction)`; draws nothing for work done within DELAY_S, or where stderr is no terminal."""
    stream = stream or sys.stderr
    began = time.monotonic()
    drawn = False

    def update(fraction: float) -> None:
        nonlocal drawn
        if time.monotonic() - began < DELAY_S or not stream.isatty():
            return
        filled = int(WIDTH * max(0.0, min(1.0, fraction)))
        stream.write(f"\rgradetop: {label} [{'#' * filled}{'.' * (WIDTH - filled)}] {100 * fraction:3.0f}%")
        stream.flush()
        drawn = True

    try:
        yield update
    finally:
        if drawn:
            stream.write("\r\x1b[K")
            stream.flush()
