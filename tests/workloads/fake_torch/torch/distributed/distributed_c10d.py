"""Where torch.distributed's collectives live: a wait here is a collective, as in torch."""

import time


def all_reduce(tensor, group=None):
    time.sleep(0.05)  # the other ranks are late
    return tensor
