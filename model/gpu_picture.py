"""An immutable picture of the GPUs and the host, computed off the UI thread for the widgets to draw.

The GPU panel, the processes table's GPU columns, the timeline's GPU lanes
and the header all draw from one GpuPicture; none of them reads the live
model. Copies only (tuples, fresh arrays): nothing here points into it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gradetop.model.gpu_verdicts import phase_gpu
from gradetop.model.phases import PhaseCost
from gradetop.model.profile import Profile

HISTORY = 60
"""Readings kept for each sparkline (the panel shows as many as fit)."""

THROTTLE_REASONS = (
    (0x1, "idle"), (0x2, "app clocks"), (0x4, "power cap"), (0x8, "HW slowdown"), (0x10, "sync boost"),
    (0x20, "SW thermal"), (0x40, "HW thermal"), (0x80, "power brake"), (0x100, "display clocks"),
)
"""NVML clocks-event (throttle) reason bits, in words."""


@dataclass(frozen=True)
class GpuProcessRow:
    pid: int | None
    """None when the driver's pid matches no watched process."""
    driver_pid: int
    mem_bytes: int
    sm_util: float


@dataclass(frozen=True)
class DevicePicture:
    index: int
    name: str
    lost: bool
    util: float
    sm_active: float
    """NaN without GPM: the panel then says so instead of showing a bar."""
    mem_used: int
    mem_total: int
    power_w: float
    power_limit_w: float
    temp_c: float
    sm_clock_mhz: float
    pcie_rx_bps: float
    pcie_tx_bps: float
    throttle: str
    mig: str
    history: dict[str, tuple[float, ...]]
    """'util', 'sm_active', 'memory' (% of total), 'power' (W), 'temp' (C): the latest readings, oldest first."""
    processes: tuple[GpuProcessRow, ...]


@dataclass(frozen=True)
class HostPicture:
    cores: tuple[float, ...]
    cpu_history: tuple[float, ...]
    load1: float
    mem_used: int
    mem_total: int
    swap_used: int
    swap_total: int
    disk_read_bps: float
    disk_write_bps: float
    net_recv_bps: float
    net_sent_bps: float


@dataclass(frozen=True)
class GpuLane:
    label: str
    util: np.ndarray
    """Mean utilisation % per timeline bin (NaN: no reading)."""


@dataclass(frozen=True)
class GpuPicture:
    sentence: str | None
    state: str = ""
    """The sampler's state ('' when none ran: an old snapshot, where the header says nothing)."""
    devices: tuple[DevicePicture, ...] = ()
    host: HostPicture | None = None
    lanes: tuple[GpuLane, ...] = ()
    per_pid: dict[int, tuple[int, float]] = field(default_factory=dict)
    """Our pid -> (GPU memory bytes summed over devices, SM % summed) at the latest reading."""
    verdicts: tuple[str, ...] = ()
    """'phase type: GPU verdict' for the longest instance of each phase type, in the order they ran."""

    def headline(self) -> str:
        """The header's few words: the sentence when something is wrong, else each device's utilisation."""
        if self.sentence and (not self.devices or all(d.lost for d in self.devices)):
            return self.sentence
        parts = [f"GPU{d.index} {'LOST' if d.lost else _pct(d.util)}" for d in self.devices]
        if self.sentence:
            parts.append("(!)")
        return " ".join(parts)


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.0f}%"


def throttle_words(mask: int) -> str:
    if mask < 0:
        return "unknown"
    words = [w for bit, w in THROTTLE_REASONS if mask & bit]
    return ", ".join(words) or "none"


def gpu_picture(profile: Profile, t0: float | None = None, t1: float | None = None, bins: int = 0,
                costs: list[PhaseCost] = (), history: int = HISTORY) -> GpuPicture:
    with profile.lock:
        gpu = profile.gpu
        devices = tuple(_device(gpu, index, history) for index in sorted(gpu.devices))
        per_pid: dict[int, tuple[int, float]] = {}
        for d in devices:
            for p in d.processes:
                if p.pid is not None:
                    mem, util = per_pid.get(p.pid, (0, 0.0))
                    per_pid[p.pid] = (mem + max(p.mem_bytes, 0), util + (p.sm_util if math.isfinite(p.sm_util) else 0.0))
        lanes = ()
        if bins > 0 and t0 is not None and t1 is not None and t1 > t0:
            lanes = tuple(GpuLane(f"GPU{i} util", _binned(gpu.series[i], t0, t1, bins)) for i in sorted(gpu.series))
        return GpuPicture(gpu.sentence(), gpu.state, devices, _host(gpu, history), lanes, per_pid,
                          phase_verdicts(profile, costs) if devices else ())


def phase_verdicts(profile: Profile, costs: list[PhaseCost], limit: int = 8) -> tuple[str, ...]:
    """One GPU verdict per phase type (its longest instance): a few, whatever the number of phases."""
    longest: dict[str, PhaseCost] = {}
    for c in costs:
        if c.phase.kind not in longest or c.phase.duration > longest[c.phase.kind].phase.duration:
            longest[c.phase.kind] = c
    cache: dict = {}
    out = []
    for kind, c in sorted(longest.items(), key=lambda kv: kv[1].phase.start):
        g = phase_gpu(profile, c, cache)
        if g is not None and g.verdict:
            out.append(f"{kind}: {g.verdict}")
    return tuple(out[:limit])


def _device(gpu, index: int, history: int) -> DevicePicture:
    facts = gpu.devices[index]
    s = gpu.series[index]
    n = len(s)
    last = n - 1

    def at(name: str) -> float:
        return float(getattr(s, name)[last]) if n else float("nan")

    def tail(name: str, scale: float = 1.0) -> tuple[float, ...]:
        return tuple((getattr(s, name)[-history:].astype(np.float64) * scale).tolist())

    mem_total = facts.mem_total or 1
    rows: list[GpuProcessRow] = []
    ps = gpu.processes.get(index)
    if ps is not None and len(ps):
        latest = ps.t == ps.t[-1]
        for pid, driver, mem, util in zip(ps.pid[latest], ps.driver_pid[latest], ps.mem_bytes[latest], ps.sm_util[latest]):
            rows.append(GpuProcessRow(int(pid) if pid >= 0 else None, int(driver), int(mem), float(util)))
    return DevicePicture(
        index=index, name=facts.name, lost=facts.lost, util=at("util"), sm_active=at("sm_active"),
        mem_used=int(at("mem_used")) if n else -1, mem_total=facts.mem_total, power_w=at("power_w"),
        power_limit_w=facts.power_limit_w, temp_c=at("temp_c"), sm_clock_mhz=at("sm_clock"),
        pcie_rx_bps=at("pcie_rx"), pcie_tx_bps=at("pcie_tx"),
        throttle=throttle_words(int(at("throttle"))) if n else "unknown", mig=facts.mig,
        history={"util": tail("util"), "sm_active": tail("sm_active"), "memory": tail("mem_used", 100.0 / mem_total),
                 "power": tail("power_w"), "temp": tail("temp_c")},
        processes=tuple(sorted(rows, key=lambda r: -r.mem_bytes)),
    )


def _host(gpu, history: int) -> HostPicture | None:
    h = gpu.host
    if len(h) == 0:
        return None
    last = len(h) - 1

    def rate(name: str) -> float:
        values = getattr(h, name)
        if len(values) < 2 or values[-1] < 0 or h.t[-1] <= h.t[-2]:
            return float("nan")
        return float(values[-1] - values[-2]) / float(h.t[-1] - h.t[-2])

    return HostPicture(
        cores=tuple(gpu.cores), cpu_history=tuple(h.cpu[-history:].astype(np.float64).tolist()),
        load1=float(h.load1[last]), mem_used=int(h.mem_used[last]), mem_total=int(h.mem_total[last]),
        swap_used=int(h.swap_used[last]), swap_total=int(h.swap_total[last]),
        disk_read_bps=rate("disk_read"), disk_write_bps=rate("disk_write"),
        net_recv_bps=rate("net_recv"), net_sent_bps=rate("net_sent"),
    )


def _binned(series, t0: float, t1: float, bins: int) -> np.ndarray:
    t, util = series.t, series.util.astype(np.float64)
    keep = (t >= t0) & (t < t1) & np.isfinite(util)
    idx = ((t[keep] - t0) / (t1 - t0) * bins).astype(np.int64).clip(0, bins - 1)
    sums = np.bincount(idx, weights=util[keep], minlength=bins)
    counts = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    # Bins narrower than the reading interval take the next reading (NVML's figure covers the period
    # before it), between the first and the last reading only: where nothing was read stays blank.
    have = np.flatnonzero(counts)
    if len(have):
        span = slice(have[0], have[-1] + 1)
        n = span.stop - span.start
        position = np.where(counts[span] > 0, np.arange(n), n)
        means[span] = means[span][np.minimum.accumulate(position[::-1])[::-1]]
    return means
