"""A process's place in a distributed job, from its environment: pure functions, no imports of the model.

torchrun, torch.distributed launchers and Slurm say where a process stands
in variables; the resource sampler reads them once per process, and the
model turns them into a role ('rank 3') and a place ('node2:4242, rank 3').
"""

from __future__ import annotations

RANK_VARIABLES = (("RANK", "SLURM_PROCID"), ("LOCAL_RANK", "SLURM_LOCALID"), ("WORLD_SIZE", "SLURM_NTASKS"))
"""(rank, local rank, world size): where each is put; the first one set wins."""


def ranks_of(environ: dict[str, str]) -> tuple[int | None, int | None, int | None]:
    """(rank, local rank, world size) from a process's environment; None where unset or not a number."""
    found = []
    for names in RANK_VARIABLES:
        value = None
        for name in names:
            try:
                value = int(environ[name])
                break
            except (KeyError, ValueError):
                continue
        found.append(value)
    return found[0], found[1], found[2]


def role_of_ranks(rank: int | None, local_rank: int | None) -> str:
    """'rank 3', else 'local rank 1', else ''."""
    if rank is not None:
        return f"rank {rank}"
    if local_rank is not None:
        return f"local rank {local_rank}"
    return ""
