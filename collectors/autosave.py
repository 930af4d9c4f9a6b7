"""The thread that streams a live recording to disk: a flush every FLUSH_S.

At most FLUSH_S plus the monitor's join delay (about a second) of samples is
lost when gradetop is killed; a flush costs one fsync and the compression of
what came in since the last one.
"""

from __future__ import annotations

from collections.abc import Callable

from gradetop.collectors.background import Background
from gradetop.model.snapshot import SnapshotWriter

FLUSH_S = 1.0


class Autosave(Background):
    def __init__(self, writer: SnapshotWriter, notify: Callable[[str], None], every_s: float = FLUSH_S) -> None:
        super().__init__("gradetop-autosave")
        self.writer = writer
        self.notify = notify
        self.every_s = every_s

    def run(self) -> None:
        while not self._stopping.wait(self.every_s):
            if not self.writer.flush():
                if self.writer.error:
                    self.notify(self.writer.error)
                return
