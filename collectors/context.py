"""The samplers of what a job runs on (GPUs, the host), started and stopped as one.

The monitor owns the session; this keeps its part of the GPU work to three
lines, and lets `demo` or a future agent start the same pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from gradetop.collectors.background import Background
from gradetop.collectors.gpu import DEFAULT_HZ, GpuSampler
from gradetop.collectors.host import HostSampler


def context_samplers(emit: Callable[[object], None], watched: Callable[[], Iterable[int]],
                     gpu_hz: float = DEFAULT_HZ) -> list[Background]:
    return [GpuSampler(emit, watched, gpu_hz), HostSampler(emit)]


def stop_all(samplers: list[Background]) -> None:
    for sampler in samplers:
        sampler.stop()
    for sampler in samplers:
        sampler.join()
