"""The marker reader: follows the phase files that gradetop.phase writes in the workflow.

Each process writes <pid>.phases in one folder (see gradetop/phases.py); this
thread picks up new files and new lines five times a second and hands them
to the model as PhaseMark records. Partial lines wait for their end.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import psutil

from gradetop.collectors.background import Background
from gradetop.model.records import PhaseMark
from gradetop.phases import ENV

POLL_S = 0.2


def phase_folder_of(pid: int) -> str | None:
    """The marker folder a running process writes to, read from its environment."""
    try:
        return psutil.Process(pid).environ().get(ENV)
    except (psutil.Error, OSError):
        return None


def parse_line(pid: int, line: bytes) -> PhaseMark | None:
    try:
        kind, t, tid, name = line.decode(errors="replace").rstrip("\n").split("\t", 3)
        if kind not in ("B", "E"):
            return None
        return PhaseMark(float(t), pid, int(tid), kind, name)
    except ValueError:
        return None


class MarkerReader(Background):
    def __init__(self, folder: str, emit: Callable[[object], None]) -> None:
        super().__init__("gradetop-markers")
        self.folder = folder
        self.emit = emit
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}

    def run(self) -> None:
        while not self._stopping.wait(POLL_S):
            self.read_new()
        self.read_new()

    def read_new(self) -> None:
        try:
            names = [n for n in os.listdir(self.folder) if n.endswith(".phases")]
        except OSError:
            return
        for name in names:
            try:
                pid = int(name.removesuffix(".phases"))
            except ValueError:
                continue
            path = os.path.join(self.folder, name)
            try:
                with open(path, "rb") as f:
                    f.seek(self._offsets.get(name, 0))
                    data = f.read()
                    self._offsets[name] = f.tell()
            except OSError:
                continue
            if not data:
                continue
            data = self._partial.pop(name, b"") + data
            lines = data.split(b"\n")
            if lines[-1]:
                self._partial[name] = lines[-1]
            marks = [m for m in (parse_line(pid, line) for line in lines[:-1] if line) if m is not None]
            for mark in marks:
                self.emit(mark)
