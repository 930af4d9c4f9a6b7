"""One rank of a small distributed job, for the many-nodes tests: phases `compute` and `allreduce`.

Under torchrun with torch importable, a real torch.distributed gloo job (RANK,
WORLD_SIZE, MASTER_ADDR come from torchrun); without torch, the same loop with
a sleep standing in for the collective, RANK taken from the environment.
Runs for the seconds given as its argument (default 30), then exits 0.
"""

import os
import sys
import time

import gradetop


def compute(n: int) -> int:
    x = 0
    for i in range(n):
        x += i * i
    return x


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    rank = int(os.environ.get("RANK", "0"))
    dist = None
    if "MASTER_ADDR" in os.environ:
        import torch
        import torch.distributed as dist

        dist.init_process_group("gloo")
        tensor = torch.ones(1 << 16)
    deadline = time.monotonic() + seconds
    while True:
        # Every rank stops after the same step: the slowest says when (a rank that left early
        # would leave the others hanging in a collective).
        done = time.monotonic() >= deadline
        if dist is not None:
            flag = torch.tensor([1.0 if done else 0.0])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            done = bool(flag.item())
        if done:
            break
        with gradetop.phase("compute"):
            compute(200_000 * (rank + 1))  # rank 1 works twice as long: a skew to see
        with gradetop.phase("allreduce"):
            if dist is not None:
                dist.all_reduce(tensor)
            else:
                time.sleep(0.02)
    if dist is not None:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
