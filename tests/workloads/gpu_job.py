"""A job whose host side does one thing for ~3 s in phase `train`, as a GPU job would.

    input  the main thread waits on a queue its feeder fills slowly (a DataLoader)
    host   the main thread runs Python (launching kernels one by one)
    sync   the main thread sits in `loss.item()` (the GPU result is late)
    comm   the main thread waits in torch.distributed.all_reduce
The fake GPU (tests/fake_pynvml.py) says what the device does meanwhile.
"""

import os
import queue
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_torch"))

import gradetop  # noqa: E402

SECONDS = float(os.environ.get("GPU_JOB_SECONDS", "3"))


class Loss:
    def item(self):
        time.sleep(0.05)  # cudaStreamSynchronize, as far as the host can tell
        return 0.5


def feeder(q):
    while True:
        time.sleep(0.2)
        q.put(1)


def main(mode: str) -> None:
    q = queue.Queue()
    threading.Thread(target=feeder, args=(q,), daemon=True).start()
    loss = Loss()
    end = time.time() + SECONDS
    with gradetop.phase("train"):
        if mode == "input":
            while time.time() < end:
                q.get()
        elif mode == "host":
            n = 0
            while time.time() < end:
                n += sum(range(200))
        elif mode == "sync":
            while time.time() < end:
                value = loss.item()
        elif mode == "comm":
            import torch.distributed as dist
            while time.time() < end:
                dist.all_reduce(value := [1.0])
    print(f"{mode} done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
