"""The records collectors hand to the model: plain, timestamped, serialisable.

Collectors only produce these; the model only consumes them. Keeping them
free of live objects (no psutil.Process, no file handles) is what lets a
remote agent stream them later and a test build them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # arrays in annotations only: records load without numpy (collectors.launch)
    import numpy as np


@dataclass(frozen=True, slots=True)
class ThreadSamples:
    """One thread's samples in one window, oldest first."""

    pid: int
    tid: int
    name: str
    times: np.ndarray
    """Wall-clock time of each sample, epoch seconds (float64)."""
    weights: np.ndarray
    """Wall seconds each sample stands for (float32)."""
    stacks: list[tuple[int, ...]]
    """Root-first indices into the batch's `frames`, one tuple per sample."""


@dataclass(frozen=True, slots=True)
class StackBatch:
    """Everything one sampling window saw of one process."""

    pid: int
    t_start: float
    t_end: float
    ticks: int
    """Sampling ticks in the window (py-spy's own rate drifts; this is what it did)."""
    frames: list[tuple[str, str, int]]
    threads: list[ThreadSamples]
    commands: dict[int, str] = field(default_factory=dict)
    """pid -> command line, as py-spy saw it."""
    asked_hz: float = 0.0
    """The rate this window asked for (lower for a quiet child); 0 where unknown: the profile's rate."""
    parked: bool = False
    """No py-spy ran: the kernel said no thread of the process ran, so its last stacks stand for the time."""


@dataclass(frozen=True, slots=True)
class ProcessReading:
    pid: int
    ppid: int
    name: str
    cmdline: list[str]
    create_time: float
    status: str
    cpu_s: float
    rss: int
    read_bytes: int
    write_bytes: int
    num_threads: int
    thread_times: dict[int, tuple[float, float]]
    """OS thread id -> (CPU seconds, seconds running or runnable), both cumulative."""
    ranks: tuple[int | None, int | None, int | None] = (None, None, None)
    """(rank, local rank, world size) from its environment, read once per process; None where unset."""
    host_busy_s: float = -1.0
    """On the root's reading only: CPU seconds the whole machine was busy, cumulative (-1: not read).
    With `monitor_cpu_s` it says who held the cores when a thread of the workflow waited for one."""
    host_cores: int = 0
    monitor_cpu_s: float = -1.0
    """On the root's reading only: CPU seconds of gradetop itself and its py-spy samplers, cumulative (-1: not
    read this time; it is read once a second)."""


@dataclass(frozen=True, slots=True)
class ResourceBatch:
    t: float
    processes: list[ProcessReading]


@dataclass(frozen=True, slots=True)
class ProcessEnded:
    pid: int
    t: float
    exit_code: int | None
    """None where the monitor is not the parent and could not learn it."""


@dataclass(frozen=True, slots=True)
class SamplerNote:
    """Something a collector wants the user to know: why a process has no stacks, say."""

    t: float
    pid: int
    kind: str
    """'sampling', 'not-python', 'permission', 'gone', 'error'."""
    message: str


@dataclass(frozen=True, slots=True)
class OutputLine:
    """A line the workflow printed (kept with the snapshot)."""

    t: float
    stream: str
    text: str


@dataclass(frozen=True, slots=True)
class PhaseMark:
    """One phase marker event written by gradetop.phase in the workflow."""

    t: float
    pid: int
    tid: int
    kind: str
    """'B' (phase began) or 'E' (phase ended)."""
    name: str
