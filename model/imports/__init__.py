"""Reading other tools' profiles into a Profile: py-spy's raw (collapsed) and speedscope files.

`load_any` sniffs the file: JSON is speedscope, lines of `stack N` are
collapsed stacks (py-spy raw, flamegraph.pl input, gradetop's own export),
anything else goes to the snapshot reader. Every file that cannot be read
raises SnapshotError with one line for the user, whichever reader it reached.
"""

from __future__ import annotations

import os

from gradetop.model.imports.collapsed import looks_collapsed, read_collapsed
from gradetop.model.imports.speedscope import read_speedscope
from gradetop.model.profile import Profile
from gradetop.model.snapshot import SnapshotError, load

SNIFF_BYTES = 4096


def load_any(path: str | os.PathLike, progress=None) -> Profile:
    """A Profile from a gradetop snapshot, a py-spy raw / collapsed file or a speedscope file."""
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError:
        return load(path, progress)  # the snapshot reader words missing files, folders and permissions
    stripped = head.lstrip()
    if stripped.startswith(b"{"):
        return read_speedscope(path, _read_text(path))
    text = _text_or_none(head)
    if text is not None and stripped:
        if looks_collapsed(text):
            return read_collapsed(path, _read_text(path))
        raise SnapshotError(f"{path} is not a gradetop snapshot, nor a py-spy raw (collapsed stacks) "
                            "or speedscope file")
    return load(path, progress)


def _text_or_none(head: bytes) -> str | None:
    if b"\0" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the sniff window is still text.
        if exc.start >= len(head) - 3:
            return head[: exc.start].decode("utf-8")
        return None


def _read_text(path) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except UnicodeDecodeError:
        raise SnapshotError(f"{path} is not UTF-8 text: not a py-spy raw or speedscope file") from None
