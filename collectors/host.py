"""The host sampler: the machine an ML job runs on (CPU per core, load, memory, swap, disk, network).

Machine-wide, not per process: it answers "was the box itself saturated?"
next to the per-process readings. One thread, psutil only; counters go to
the model cumulative (since boot), so any window's rate is a difference.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psutil

from gradetop.collectors.background import Background
from gradetop.model.gpu_records import HostReading

DEFAULT_HZ = 1.0


def read_host() -> HostReading:
    """One reading; CPU per core is since the previous call (psutil keeps that state)."""
    mem = psutil.virtual_memory()
    swap = psutil.swap_memory()
    disk = psutil.disk_io_counters()
    net = psutil.net_io_counters()
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = float("nan")
    return HostReading(
        t=time.time(),
        cpu_percent=tuple(float(x) for x in psutil.cpu_percent(percpu=True)),
        load1=load1,
        mem_used=int(mem.total - mem.available),
        mem_total=int(mem.total),
        swap_used=int(swap.used),
        swap_total=int(swap.total),
        disk_read_bytes=-1 if disk is None else int(disk.read_bytes),
        disk_write_bytes=-1 if disk is None else int(disk.write_bytes),
        net_recv_bytes=-1 if net is None else int(net.bytes_recv),
        net_sent_bytes=-1 if net is None else int(net.bytes_sent),
    )


class HostSampler(Background):
    def __init__(self, emit: Callable[[object], None], rate_hz: float = DEFAULT_HZ) -> None:
        super().__init__("gradetop-host")
        self.emit = emit
        self.interval = 1.0 / rate_hz

    def run(self) -> None:
        psutil.cpu_percent(percpu=True)  # primes the per-core counters
        while not self._stopping.wait(self.interval):
            try:
                self.emit(read_host())
            except (psutil.Error, OSError):
                continue  # one bad read of /proc: the next one will do
        try:
            self.emit(read_host())
        except (psutil.Error, OSError):
            pass
