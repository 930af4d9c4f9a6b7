"""Records of the GPU and host samplers: plain, frozen, timestamped, serialisable.

Kept apart from model.records so the GPU work merges without touching the
records other collectors share. Same contract: no live objects (no NVML
handles, no psutil objects). An unsupported or unreadable figure is NaN
(floats) or -1 (integers), never 0: zero would claim an idle GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

NAN = float("nan")


@dataclass(frozen=True, slots=True)
class GpuDeviceReading:
    """One device at one instant. Units are SI: bytes, watts, degrees C, MHz, bytes/s, 0-100 %."""

    index: int
    uuid: str
    name: str
    util: float
    """% of the last period a kernel ran (NVML 'utilization.gpu': coarse, not SM activity)."""
    mem_util: float
    """% of the last period device memory was read or written."""
    mem_used: int
    mem_total: int
    power_w: float
    power_limit_w: float
    temp_c: float
    sm_clock_mhz: float
    mem_clock_mhz: float
    pcie_rx_bps: float
    pcie_tx_bps: float
    throttle: int
    """Bitmask of NVML clock throttle (event) reasons, -1 where unknown."""
    sm_active: float = NAN
    """GPM (Hopper+): % of SM cycles with a warp resident, the honest 'busy' figure; NaN without GPM."""
    sm_occupancy: float = NAN
    tensor_active: float = NAN
    dram_bw: float = NAN
    """GPM: % of peak DRAM bandwidth."""
    mig: str = ""
    """'' (no MIG), 'disabled', or 'enabled: N devices (uuid, ...)'."""


@dataclass(frozen=True, slots=True)
class GpuProcessReading:
    """A process the driver says runs on a device, matched (or not) to a process we watch."""

    index: int
    pid: int
    """Our pid (this pid namespace), or -1 when the driver's pid matches no process we watch."""
    driver_pid: int
    """The pid as the driver gave it (host pid namespace)."""
    mem_bytes: int
    """-1 where the driver would not say (WDDM, permissions)."""
    sm_util: float = NAN
    """% of the device's SMs this process used over the last window (NaN: no sample)."""


@dataclass(frozen=True, slots=True)
class GpuBatch:
    t: float
    devices: tuple[GpuDeviceReading, ...]
    processes: tuple[GpuProcessReading, ...] = ()


@dataclass(frozen=True, slots=True)
class GpuStatus:
    """What state the GPU collector is in, in one sentence for the user.

    state: 'ok', 'no-library', 'no-driver', 'no-devices', 'error' (NVML
    failed to start), 'lost' (a device fell off the bus), 'unsupported' (one
    metric of one device), 'no-permission' (per-process data), 'unmatched'.
    """

    t: float
    state: str
    message: str
    index: int = -1
    """The device concerned, -1 for all of them."""


@dataclass(frozen=True, slots=True)
class HostReading:
    """The machine the job runs on. Counters are cumulative since boot, as the kernel keeps them."""

    t: float
    cpu_percent: tuple[float, ...]
    """Per core, since the previous reading."""
    load1: float
    mem_used: int
    mem_total: int
    swap_used: int
    swap_total: int
    disk_read_bytes: int
    disk_write_bytes: int
    net_recv_bytes: int
    net_sent_bytes: int


GPU_RECORDS = (GpuBatch, GpuStatus, HostReading)
"""The record types model.gpu.GpuModel ingests."""


def to_wire(record) -> list:
    """A record as plain msgpack-able data: [type name, fields...] (nested readings as lists)."""
    if isinstance(record, GpuBatch):
        return ["GpuBatch", record.t, [_fields(d) for d in record.devices], [_fields(p) for p in record.processes]]
    return [type(record).__name__, *_fields(record)]


def from_wire(item: list):
    """The record `to_wire` wrote."""
    name, *values = item
    if name == "GpuBatch":
        t, devices, processes = values
        return GpuBatch(t, tuple(GpuDeviceReading(*d) for d in devices),
                        tuple(GpuProcessReading(*p) for p in processes))
    kind = {"GpuStatus": GpuStatus, "HostReading": HostReading}[name]
    if kind is HostReading:
        values[1] = tuple(values[1])
    return kind(*values)


def _fields(record) -> list:
    return [getattr(record, f) for f in record.__slots__]
