"""What each process of a workflow is for: main, DataLoader worker, pool worker, launcher, rank N.

A role is read from what the process showed: the rank its environment gave
it (RANK / LOCAL_RANK, read once by the resource sampler into
ProcessInfo.env_role), its command line (torchrun is a launcher) and the
entry points in its stacks (torch's `_worker_loop`, a pool's `worker`,
loky's and concurrent.futures' `_process_worker`). Roles prefix worker
phases (`worker: decode_shard`), label the processes panel, the timeline
lanes and the report.

Pure: must never read processes or files, nor import textual or rich.
"""

from __future__ import annotations

import numpy as np

from gradetop.model.profile import Profile
from gradetop.model.roles_env import ranks_of, role_of_ranks

MAIN = "main"
DATALOADER = "DataLoader worker"
WORKER = "worker"
LAUNCHER = "launcher"
HELPER = "helper"
"""multiprocessing's resource tracker or fork server: plumbing, never the work."""
CHILD = "child"

_LAUNCHERS = ("torchrun", "torch.distributed.run", "torch.distributed.launch", "accelerate", "deepspeed")
_DATALOADER_ENTRY = ("torch/utils/data/_utils/worker.py", ("_worker_loop",))
_WORKER_ENTRIES = (
    ("multiprocessing/pool.py", ("worker",)),
    ("concurrent/futures/process.py", ("_process_worker",)),
    ("loky/process_executor.py", ("_process_worker",)),
)
_WORKER_COMMANDS = ("spawn_main", "loky")
_HELPER_COMMANDS = ("resource_tracker", "semaphore_tracker", "forkserver")


def process_roles(profile: Profile) -> dict[int, str]:
    """pid -> role, for every process of the profile."""
    marks = _stack_marks(profile)
    roles: dict[int, str] = {}
    for pid, info in profile.processes.items():
        command = " ".join(info.cmdline)
        if getattr(info, "env_role", ""):
            role = info.env_role
            if pid == profile.meta.target_pid and any(word in command for word in _LAUNCHERS):
                role = LAUNCHER
        elif any(word in command for word in _LAUNCHERS):
            role = LAUNCHER
        elif pid == profile.meta.target_pid:
            role = MAIN
        elif marks.get(pid) == DATALOADER:
            role = DATALOADER
        elif marks.get(pid) == WORKER:
            role = WORKER
        elif any(word in command for word in _HELPER_COMMANDS):
            role = HELPER
        elif any(word in command for word in _WORKER_COMMANDS):
            role = WORKER
        else:
            role = CHILD
        roles[pid] = role
    return roles


def _stack_marks(profile: Profile) -> dict[int, str]:
    """pid -> DATALOADER or WORKER where one of its stacks runs a worker's entry point."""
    frames = profile.frames.frames
    kind_of_frame = np.zeros(len(frames) + 1, dtype=np.int8)
    for i, f in enumerate(frames):
        method = f.function.rsplit(".", 1)[-1]
        if f.file.endswith(_DATALOADER_ENTRY[0]) and method in _DATALOADER_ENTRY[1]:
            kind_of_frame[i] = 2
        elif any(f.file.endswith(suffix) and method in names for suffix, names in _WORKER_ENTRIES):
            kind_of_frame[i] = 1
    if not kind_of_frame.any():
        return {}
    stacks = profile.stacks
    n = len(stacks)
    parent, frame = stacks.parent.view()[:n], stacks.frame.view()[:n]
    depth = stacks.depth.view()[:n]
    mark = np.zeros(n, dtype=np.int8)
    mark[1:] = kind_of_frame[frame[1:]]
    for d in range(2, int(depth.max(initial=0)) + 1):  # a level at a time: parents are one level up
        at = np.flatnonzero(depth == d)
        mark[at] = np.maximum(mark[at], mark[parent[at]])
    tl = profile.timeline
    out: dict[int, str] = {}
    if len(tl) == 0:
        return out
    pids, nodes = tl.pid, tl.stack
    hit = mark[nodes]
    for pid in np.unique(pids[hit > 0]):
        best = int(hit[pids == pid].max())
        out[int(pid)] = DATALOADER if best == 2 else WORKER
    return out


def role_prefix(role: str) -> str:
    """What a phase name of a process in this role starts with ('' for the main process)."""
    return "" if role in (MAIN, "") else f"{role}: "


def env_role(environ: dict[str, str]) -> str:
    """'rank 3' from a process environment's RANK (or LOCAL_RANK, or Slurm's), '' without one."""
    rank, local_rank, _ = ranks_of(environ)
    return role_of_ranks(rank, local_rank)
