"""What the model knows of each process and thread it watched."""

from __future__ import annotations

from dataclasses import asdict, dataclass

HOST_PID = -1
"""Rows of the process series under this pid are the whole machine: cpu_s busy seconds, threads its cores."""
MONITOR_PID = -2
"""Rows of the process series under this pid are gradetop itself with its samplers (cpu_s)."""


@dataclass
class ProcessInfo:
    pid: int
    ppid: int
    cmdline: list[str]
    name: str = ""
    host: str = ""
    create_time: float = 0.0
    end_time: float | None = None
    exit_code: int | None = None
    """Exit status where the monitor could learn it; a negative value is the signal that ended it."""
    sampled: bool = False
    """Stacks were read from this process."""
    why_not_sampled: str = ""
    sampled_s: float = 0.0
    """Wall seconds covered by this process's sampling windows."""
    ticks: int = 0
    """Sampling ticks py-spy made on it (its rate drifts from the asked one)."""
    env_role: str = ""
    """'rank 3' from RANK / LOCAL_RANK in its environment ('' without); model.roles reads it."""

    @property
    def command(self) -> str:
        return " ".join(self.cmdline) if self.cmdline else self.name

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ProcessInfo":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class ThreadInfo:
    pid: int
    tid: int
    name: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ThreadInfo":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
