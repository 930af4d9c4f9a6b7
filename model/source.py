"""What the UI may ask of where its profile comes from: a live session or a saved file.

The UI never runs a collector. A live `collectors.session.Session` and a
`FileSource` both offer this small surface, and the UI reaches a running
workflow only through it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gradetop.model.profile import Profile
from gradetop.model.snapshot import save


@dataclass(frozen=True)
class SourceState:
    live: bool
    """Collectors are running."""
    label: str
    """Short state for the header: 'running', 'exited 0', 'detached', 'file'."""
    ended: bool = False


class Source(Protocol):
    live: bool
    spawned: bool
    title: str
    profile: Profile
    notices: list[str]

    def start(self) -> object: ...
    def subscribe(self, on_samples: Callable[[], None]) -> None: ...
    def state(self) -> SourceState: ...
    def poll(self) -> bool: ...
    def finish(self) -> None: ...
    def detach(self) -> None: ...
    def stop_workflow(self, grace_s: float = 5.0) -> None: ...
    def save_copy(self, path: str) -> None: ...
    def read_locals(self, pid: int, tid: int) -> list[tuple[str, list[tuple[str, str]]]]: ...
    @property
    def writing_to(self) -> str | None: ...
    @property
    def workflow_running(self) -> bool: ...


class FileSource:
    """A saved snapshot: nothing runs."""

    live = False
    spawned = False
    writing_to = None
    workflow_running = False

    def __init__(self, profile: Profile, path: str) -> None:
        self.profile = profile
        self.path = path
        self.notices = list(profile.warnings)
        self.title = f"open {os.path.basename(path)}: {' '.join(profile.meta.command) or 'attached'}"

    def start(self) -> "FileSource":
        return self

    def subscribe(self, on_samples: Callable[[], None]) -> None:
        pass

    def state(self) -> SourceState:
        return SourceState(False, "file", ended=True)

    def poll(self) -> bool:
        return False

    def finish(self) -> None:
        pass

    def detach(self) -> None:
        pass

    def stop_workflow(self, grace_s: float = 5.0) -> None:
        pass

    def save_copy(self, path: str) -> None:
        save(self.profile, path)

    def read_locals(self, pid: int, tid: int):
        raise LookupError("a saved snapshot has no live process to read locals from")
