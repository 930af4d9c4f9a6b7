"""One long-lived thread with a stop event: what every sampler is.

Composition, not a Thread subclass: Thread's own private attributes
(_stop, _stderr...) are easy to shadow by accident, and were once.
"""

from __future__ import annotations

import threading


class Background:
    """Subclasses implement `run()`, which should return soon after `self._stopping` is set."""

    def __init__(self, name: str) -> None:
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def run(self) -> None:
        raise NotImplementedError
