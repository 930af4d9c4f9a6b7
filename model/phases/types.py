"""What a phase is, and what it cost: the two records every phase source and the cost code share.

A phase is a named interval of one thread, nested in a tree (workflow >
stage > step). Must never compute anything beyond plain properties, nor
depend on textual or rich.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Phase:
    name: str
    path: str
    """Names from the top phase down, joined by '/'."""
    source: str
    """'marker', 'rule' or 'auto'."""
    pid: int
    tid: int
    start: float
    end: float
    depth: int = 0

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def kind(self) -> str:
        """The phase's type: its path without instance numbers ('train/epoch N'), to compare repeats."""
        return re.sub(r"\d+", "N", self.path)


@dataclass(frozen=True)
class PhaseCost:
    phase: Phase
    sampled_s: float
    active_s: float
    """Seconds the thread was running or waiting for a CPU."""
    waiting_s: float
    """Seconds it was idle in a wait (lock, queue, sleep, IO, child)."""
    stalled_s: float
    """Seconds it was idle while in Python code that is no wait: waiting for the GIL."""
    cpu_s: float
    """CPU seconds of the whole process in the interval."""
    thread_cpu_s: float
    children_cpu_s: float
    """CPU seconds of the process's descendants in the interval."""
    peak_rss: int
    read_bytes: int
    write_bytes: int
    top_wait: str = ""
    """The function the thread waited in most, if it waited."""
    wait_reason: str = ""
    """What that wait is (model.waits: 'lock acquire', 'read', 'socket recv'...)."""
    stalled_at: str = ""
    """The frame it sat idle in most outside any known wait (a native call, or the GIL)."""
    verdict: str = ""
    verdict_kind: str = ""
    extra: dict = field(default_factory=dict)
    thread_active_s: float | None = None
    """What the thread's own kernel counter says it spent running or waiting for a CPU in the interval,
    cut by time as `thread_cpu_s` is (None: not read). `active_s` comes from the samples, which place
    a short burst's time on its own stack (model.activity): the two differ in phases shorter than the
    counter's 0.1 s readings, so only the counters are compared with each other."""
