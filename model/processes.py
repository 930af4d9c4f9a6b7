"""What the model knows of each process and thread it watched."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gradetop.model.roles_env import role_of_ranks

HOST_PID = -1
"""Rows of the process series under this pid are the whole machine: cpu_s busy seconds, threads its cores."""
MONITOR_PID = -2
"""Rows of the process series under this pid are gradetop itself with its samplers (cpu_s)."""
PID_STRIDE = 1 << 22
"""Linux's largest pid_max (4194304). A view of many hosts (model.merge) gives agent k's processes the
ids k * PID_STRIDE + pid, so `pid % PID_STRIDE` is always the pid its host knows."""


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
    asked_ticks: float = 0.0
    """Ticks its windows asked for: their seconds times their rates (0 in files older than this field)."""
    quiet_s: float = 0.0
    """Wall seconds of its windows at the lower rate of a child that hardly ran (collectors.stacks)."""
    parked_s: float = 0.0
    """Of those, seconds it did not run at all: no stacks were read, its last ones stood for the time."""
    rank: int | None = None
    """Its rank in a distributed job (RANK, else SLURM_PROCID, in its environment), where it has one."""
    local_rank: int | None = None
    world_size: int | None = None
    host_pid: int | None = None
    """Its pid on its own host, where `pid` was renumbered to keep hosts apart (a view of many agents)."""

    @property
    def env_role(self) -> str:
        """'rank 3' (or 'local rank 1') from its environment, '' without one: what model.roles calls it."""
        return role_of_ranks(self.rank, self.local_rank)

    @property
    def real_pid(self) -> int:
        """The pid a user on its host would see."""
        return self.pid if self.host_pid is None else self.host_pid

    @property
    def place(self) -> str:
        """Where it runs, as a user names it: `pid`, or `host:pid` in a view of many hosts; with its rank."""
        where = str(self.pid) if self.host_pid is None else f"{self.host}:{self.host_pid}"
        return where if self.rank is None else f"{where}, rank {self.rank}"

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
