"""The records collectors hand to the model: plain, timestamped, serialisable.

Collectors only produce these; the model only consumes them. Keeping them
free of live objects (no psutil.Process, no file handles) is what lets a
remote agent stream them later and a test build them by hand. One sampler's
stack batches share ids (StackBatch): they are read in the order they came.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
    stacks: list[tuple[int, ...]] | None = None
    """Only to build a batch by hand: each sample's stack (root-first frame ids). The batch moves them
    into its own `stacks` and leaves this None."""
    stack_of: np.ndarray | None = None
    """Each sample's stack: its id in the batch's stacks (int32)."""
    ran: np.ndarray | None = None
    """Where the sampler knows it (bool, per sample): whether the thread ran, or waited for a CPU, since the
    tick before. One that did not is idle, whatever the 10 Hz counter's spread says of its interval."""


@dataclass(frozen=True, slots=True)
class StackBatch:
    """Everything one sampling window saw of one process.

    Frames and stacks are named by ids. Where `space` is 0 the ids are this
    batch's own, from 0. Else they are a collector's (collectors.pyspy.StackIds),
    which keeps them from batch to batch: a batch names only the frames and
    stacks no earlier batch of the space did, from `first_frame` and
    `first_stack` on, and the model maps each of them once per run, not once
    per window (a sample is then one array lookup).
    """

    pid: int
    t_start: float
    t_end: float
    ticks: int
    """Sampling ticks in the window (py-spy's own rate drifts; this is what it did)."""
    frames: list[tuple[str, str, int]]
    """(function, file, line) of frame ids `first_frame`, `first_frame + 1`..."""
    threads: list[ThreadSamples]
    commands: dict[int, str] = field(default_factory=dict)
    """pid -> command line, as py-spy saw it."""
    asked_hz: float = 0.0
    """The rate this window asked for (lower for a quiet child); 0 where unknown: the profile's rate."""
    parked: bool = False
    """No py-spy ran: the kernel said no thread of the process ran, so its last stacks stand for the time."""
    space: int = 0
    first_frame: int = 0
    stacks: list[tuple[int, ...]] = field(default_factory=list)
    """Root-first frame ids of stack ids `first_stack`, `first_stack + 1`..."""
    first_stack: int = 0

    def __post_init__(self) -> None:
        if any(ts.stack_of is None for ts in self.threads):  # built by hand: number the threads' stacks
            import numpy as np

            index = {stack: k for k, stack in enumerate(self.stacks, start=self.first_stack)}
            threads = [ts if ts.stack_of is not None else replace(
                ts, stacks=None, stack_of=np.fromiter((index.setdefault(stack, self.first_stack + len(index)) for stack in ts.stacks),
                                                      np.int32, len(ts.stacks)))
                       for ts in self.threads]
            object.__setattr__(self, "threads", threads)
            object.__setattr__(self, "stacks", list(index))

    def stacks_of(self, samples: ThreadSamples) -> list[tuple[int, ...]]:
        """Each sample's stack, of a thread of this batch whose stacks it names (a space's first batch)."""
        return [self.stacks[k - self.first_stack] for k in samples.stack_of.tolist()]


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
