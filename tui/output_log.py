"""The Output panel: what the workflow printed, appended as it comes."""

from __future__ import annotations

from textual.widgets import Log

from gradetop.model.records import OutputLine


class OutputLog(Log):
    """A Log that is handed the whole bounded buffer of output lines each picture and writes only the new ones."""

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=5000, **kwargs)
        self._seen = 0

    def show(self, lines: tuple[OutputLine, ...], maxlen: int) -> None:
        new = len(lines) - self._seen if len(lines) < maxlen else None
        if new is None:
            # The bounded buffer rolled over: show its tail.
            self.clear()
            self.write_lines([line.text for line in lines[-1000:]])
            self._seen = 0
        elif new > 0:
            self.write_lines([line.text for line in lines[-new:]])
            self._seen = len(lines)
