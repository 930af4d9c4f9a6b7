"""What the screens draw, as plain immutable data: the picture types.

A picture is a frozen value computed off the UI thread (model.views) and
handed to it whole: the UI only reads it. Must never point into live model
state (the Profile, its growing arrays), compute anything, nor import
textual or rich.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradetop.model.calltree import CallTree, FunctionRow


@dataclass(frozen=True)
class ViewFilter:
    """Which samples a view shows: a time range (epoch s) and a set of processes / threads."""

    t0: float | None = None
    t1: float | None = None
    pids: frozenset[int] | None = None
    tids: frozenset[int] | None = None
    last_s: float | None = None
    """Only the last N seconds (relative to the newest sample); applied before t0/t1."""
    include_idle: bool = True

    def describe(self) -> str:
        parts = ["wall time" if self.include_idle else "active time"]
        if self.last_s is not None:
            parts.append(f"last {self.last_s:g} s")
        if self.t0 is not None or self.t1 is not None:
            parts.append("selected range")
        if self.tids is not None:
            parts.append(f"thread {', '.join(map(str, sorted(self.tids)))}")
        elif self.pids is not None:
            parts.append(f"process {', '.join(map(str, sorted(self.pids)))}")
        if len(parts) == 1:
            parts.append("whole run, all threads")
        return ", ".join(parts)


@dataclass(frozen=True)
class ProcessRow:
    pid: int
    ppid: int
    command: str
    state: str
    cpu_percent: float
    rss: int
    threads: int
    sampled: str
    depth: int = 0
    role: str = ""
    """main, DataLoader worker, worker, launcher, rank N, child (model.roles)."""
    host_pid: int | None = None
    """The pid on its own host, in a view of many hosts (where `pid` was renumbered)."""
    place: str = ""
    """Its host and rank in a view of many hosts or a distributed job ("node2 r3"); "" for a plain local job."""
    alike: int = 1
    """How many ended processes of its kind this row stands for (model.alike): it shows the last of them."""


@dataclass(frozen=True)
class Lane:
    """One row of the timeline: a process or a thread."""

    key: tuple[int, int | None]
    label: str
    dominant: np.ndarray
    """Per bin: function id of the dominant frame, -1 where no sample."""
    activity: np.ndarray
    """Per bin: share of the lane's sampled time that was active (0..1), NaN where no sample."""
    cpu: np.ndarray | None = None
    """Per bin: CPU percent of the process (process lanes)."""
    rss: np.ndarray | None = None
    """Per bin: RSS bytes of the process (process lanes)."""


@dataclass(frozen=True)
class TimelineData:
    t0: float
    t1: float
    bins: int
    lanes: list[Lane]
    function_names: list[str]
    with_lanes: bool = True
    """False: only the span and bins were computed (the timeline was not up), not the lanes."""

    @property
    def bin_s(self) -> float:
        return (self.t1 - self.t0) / self.bins if self.bins else 0.0


@dataclass(frozen=True)
class ViewData:
    """One consistent picture of the profile for one filter."""

    taken_at: float
    filter: ViewFilter
    tree: CallTree
    functions: list[FunctionRow]
    processes: list[ProcessRow]
    samples: int
    span: tuple[float, float] | None
    children: dict[int, np.ndarray] = field(default_factory=dict)
    """Node -> child nodes with weight (computed with the tree, off the UI thread)."""
    labels: list[str] = field(default_factory=list)
    """Display label per frame id."""
    files: list[str] = field(default_factory=list)
    """File per frame id (colours are stable per file)."""
