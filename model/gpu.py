"""GPU and host readings over time, in bounded memory, and their sums over any time window.

Per device one columnar Series (model.series: thinned to 1 s past 10
minutes). Integrals are kept cumulative at ingest (energy in joules, busy,
idle and SM-active seconds), so thinning loses resolution, never totals, and
any window's energy or idle time is a difference of two interpolated values,
as for the process counters.

Written only by Profile.ingest (under the profile's lock); pure numpy.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, replace

import numpy as np

from gradetop.model.gpu_records import GpuBatch, GpuDeviceReading, GpuStatus, HostReading
from gradetop.model.series import Series

IDLE_UTIL = 5.0
"""A device under this utilisation % is idle (NVML counts any kernel in the period as busy)."""
MAX_GAP_S = 5.0
"""A gap between readings longer than this (a stalled sampler) adds no energy or idle time."""
STATUSES_KEPT = 500
THIN_EVERY = 2_000
"""New rows between thinnings: a few hundred kB per device at most before old readings are thinned."""

F32, F64, I64 = np.float32, np.float64, np.int64
DEVICE_COLUMNS = {
    "t": F64, "util": F32, "mem_util": F32, "mem_used": I64, "power_w": F32, "temp_c": F32,
    "sm_clock": F32, "mem_clock": F32, "pcie_rx": F64, "pcie_tx": F64, "throttle": I64,
    "sm_active": F32, "sm_occupancy": F32, "tensor_active": F32, "dram_bw": F32,
    # Cumulative since the first reading:
    "energy_j": F64, "busy_s": F64, "idle_s": F64, "known_s": F64, "sm_s": F64, "sm_known_s": F64,
}
PROCESS_COLUMNS = {"t": F64, "pid": np.int32, "driver_pid": np.int32, "mem_bytes": I64, "sm_util": F32}
HOST_COLUMNS = {
    "t": F64, "cpu": F32, "cpu_max": F32, "cores": np.int16, "load1": F32, "mem_used": I64, "mem_total": I64,
    "swap_used": I64, "swap_total": I64, "disk_read": I64, "disk_write": I64, "net_recv": I64, "net_sent": I64,
}


@dataclass
class DeviceFacts:
    index: int
    uuid: str
    name: str
    mem_total: int
    power_limit_w: float
    mig: str = ""
    lost: bool = False


@dataclass(frozen=True)
class DeviceWindow:
    """One device over [t0, t1]: the figures a phase or the report is judged by."""

    index: int
    seconds: float
    util_mean: float | None
    util_max: float | None
    sm_active_mean: float | None
    """None where the device has no GPM (only the coarser utilisation exists)."""
    mem_peak: int
    energy_j: float | None
    """None where the device does not report its power draw."""
    idle_s: float


class GpuModel:
    def __init__(self) -> None:
        self.devices: dict[int, DeviceFacts] = {}
        self.series: dict[int, Series] = {}
        self.processes: dict[int, Series] = {}
        self.host = Series(HOST_COLUMNS)
        self.cores: tuple[float, ...] = ()
        """The latest per-core CPU %: the panel's bars (history is kept as mean and busiest core)."""
        self.statuses: deque[GpuStatus] = deque(maxlen=STATUSES_KEPT)
        self.state = ""
        """The collector's overall state ('' when it never said: an old snapshot, or not started)."""
        self.message = ""

    # ---- ingest ---------------------------------------------------------------------------

    def ingest(self, record) -> None:
        if isinstance(record, GpuBatch):
            for reading in record.devices:
                self._ingest_device(record.t, reading)
            self._ingest_processes(record)
        elif isinstance(record, GpuStatus):
            self.statuses.append(record)
            if record.index < 0:
                self.state, self.message = record.state, record.message
            elif record.state == "lost" and record.index in self.devices:
                self.devices[record.index].lost = True
        elif isinstance(record, HostReading):
            self._ingest_host(record)

    def _ingest_device(self, t: float, r: GpuDeviceReading) -> None:
        facts = self.devices.get(r.index)
        if facts is None or facts.uuid != r.uuid:
            facts = self.devices[r.index] = DeviceFacts(r.index, r.uuid, r.name, r.mem_total, r.power_limit_w, r.mig)
            self.series[r.index] = Series(DEVICE_COLUMNS)
        facts.mig = r.mig
        series = self.series[r.index]
        if len(series) == 0:
            energy = busy = idle = known = sm = sm_known = 0.0
        else:
            prev = {name: float(getattr(series, name)[-1]) for name in
                    ("t", "util", "power_w", "sm_active", "energy_j", "busy_s", "idle_s", "known_s", "sm_s", "sm_known_s")}
            dt = t - prev["t"]
            dt = dt if 0 < dt <= MAX_GAP_S else 0.0
            # Each reading stands for the period up to the next one (NVML averages backwards, so the
            # new reading's value is what the period held).
            util, power, smv = r.util, r.power_w, r.sm_active
            energy = prev["energy_j"] + (power * dt if math.isfinite(power) else 0.0)
            ok = math.isfinite(util)
            busy = prev["busy_s"] + (util / 100.0 * dt if ok else 0.0)
            idle = prev["idle_s"] + (dt if ok and util < IDLE_UTIL else 0.0)
            known = prev["known_s"] + (dt if ok else 0.0)
            sm = prev["sm_s"] + (smv / 100.0 * dt if math.isfinite(smv) else 0.0)
            sm_known = prev["sm_known_s"] + (dt if math.isfinite(smv) else 0.0)
        series.append(
            t=t, util=r.util, mem_util=r.mem_util, mem_used=r.mem_used, power_w=r.power_w, temp_c=r.temp_c,
            sm_clock=r.sm_clock_mhz, mem_clock=r.mem_clock_mhz, pcie_rx=r.pcie_rx_bps, pcie_tx=r.pcie_tx_bps,
            throttle=r.throttle, sm_active=r.sm_active, sm_occupancy=r.sm_occupancy, tensor_active=r.tensor_active,
            dram_bw=r.dram_bw, energy_j=energy, busy_s=busy, idle_s=idle, known_s=known, sm_s=sm, sm_known_s=sm_known,
        )
        series.thin(THIN_EVERY)

    def _ingest_processes(self, batch: GpuBatch) -> None:
        by_device: dict[int, list] = {}
        for p in batch.processes:
            by_device.setdefault(p.index, []).append(p)
        for index, procs in by_device.items():
            series = self.processes.get(index)
            if series is None:
                series = self.processes[index] = Series(PROCESS_COLUMNS)
            series.append(t=batch.t, pid=np.array([p.pid for p in procs]),
                          driver_pid=np.array([p.driver_pid for p in procs]),
                          mem_bytes=np.array([p.mem_bytes for p in procs]),
                          sm_util=np.array([p.sm_util for p in procs], dtype=np.float32))
            series.thin(THIN_EVERY)

    def _ingest_host(self, r: HostReading) -> None:
        cores = r.cpu_percent or (float("nan"),)
        self.cores = tuple(r.cpu_percent)
        self.host.append(t=r.t, cpu=float(np.mean(cores)), cpu_max=float(np.max(cores)), cores=len(r.cpu_percent),
                         load1=r.load1, mem_used=r.mem_used, mem_total=r.mem_total, swap_used=r.swap_used,
                         swap_total=r.swap_total, disk_read=r.disk_read_bytes, disk_write=r.disk_write_bytes,
                         net_recv=r.net_recv_bytes, net_sent=r.net_sent_bytes)
        self.host.thin(THIN_EVERY)

    # ---- questions --------------------------------------------------------------------------

    @property
    def sampled(self) -> bool:
        return any(len(s) for s in self.series.values())

    def sentence(self) -> str | None:
        """The one sentence the header, the panel and the report say when GPU data is missing or partial."""
        if not self.state:
            return None if self.sampled else "GPU: not recorded (no GPU sampler ran)"
        if self.state != "ok":
            return self.message
        lost = [d for d in self.devices.values() if d.lost]
        if lost:
            which = ", ".join(f"GPU {d.index}" for d in lost)
            return f"GPU: {len(lost)} of {len(self.devices)} device{'s' if len(self.devices) > 1 else ''} " \
                   f"lost mid-run ({which}); readings stop where each was lost"
        if any(s.state == "unmatched" for s in self.statuses) and \
                not any(np.any(s.pid >= 0) for s in self.processes.values()):
            return ("GPU: no process on the GPUs matched a watched one (in a container the driver reports host "
                    "pids): per-process GPU figures are missing")
        issues = [s for s in self.statuses if s.state in ("unsupported", "no-permission")]
        if issues:
            more = f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""
            return issues[0].message + more
        return None

    def window(self, index: int, t0: float, t1: float) -> DeviceWindow | None:
        s = self.series.get(index)
        if s is None or len(s) == 0 or t1 <= t0:
            return None
        t = s.t
        lo, hi = np.searchsorted(t, [t0, t1], side="left")
        # Readings inside the window, plus the first after it (it covers the window's tail).
        inside = slice(lo, min(hi + 1, len(t)))

        def grew(name: str) -> float:
            return _delta(t, getattr(s, name), t0, t1)

        known, sm_known = grew("known_s"), grew("sm_known_s")
        util = s.util[inside]
        finite = util[np.isfinite(util)]
        mem = s.mem_used[inside]
        power_known = bool(np.isfinite(s.power_w[inside]).any())
        return DeviceWindow(
            index=index,
            seconds=known,
            util_mean=100.0 * grew("busy_s") / known if known > 0 else None,
            util_max=float(finite.max()) if len(finite) else None,
            sm_active_mean=100.0 * grew("sm_s") / sm_known if sm_known > 0 else None,
            mem_peak=int(mem.max()) if len(mem) else -1,
            energy_j=grew("energy_j") if power_known else None,
            idle_s=grew("idle_s"),
        )

    def devices_of(self, pids: set[int]) -> list[int]:
        """Devices where any of `pids` held memory or ran; every device where none did (attribution
        by time is then all we have)."""
        used = [i for i, s in self.processes.items() if len(s) and np.isin(s.pid, list(pids)).any()]
        return sorted(used) or sorted(self.series)

    def process_peaks(self) -> list[dict]:
        """Per (device, process): peak GPU memory and mean SM share, unmatched processes included."""
        out = []
        for index, s in sorted(self.processes.items()):
            pid, driver = s.pid, s.driver_pid
            for key in sorted(set(zip(pid.tolist(), driver.tolist()))):
                mask = (pid == key[0]) & (driver == key[1])
                util = s.sm_util[mask]
                util = util[np.isfinite(util)]
                out.append({"index": index, "pid": key[0] if key[0] >= 0 else None, "driver_pid": key[1],
                            "memory_peak_bytes": int(s.mem_bytes[mask].max()),
                            "sm_util_mean": round(float(util.mean()), 2) if len(util) else None,
                            "sm_util_max": round(float(util.max()), 2) if len(util) else None})
        return out

    @property
    def nbytes(self) -> int:
        return self.host.nbytes + sum(s.nbytes for s in (*self.series.values(), *self.processes.values()))

    def frozen(self) -> "GpuModel":
        """This model as it is now, for a picture: series share buffers that later ingest leaves alone."""
        copy = GpuModel()
        copy.devices = {i: replace(d) for i, d in self.devices.items()}
        copy.series = {i: s.frozen() for i, s in self.series.items()}
        copy.processes = {i: s.frozen() for i, s in self.processes.items()}
        copy.host = self.host.frozen()
        copy.cores = self.cores
        copy.statuses = deque(self.statuses, maxlen=self.statuses.maxlen)
        copy.state, copy.message = self.state, self.message
        return copy

    # ---- snapshot ------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "devices": [asdict(d) for d in self.devices.values()],
            "series": {str(i): _pack(s.rows()) for i, s in self.series.items()},
            "processes": {str(i): _pack(s.rows()) for i, s in self.processes.items()},
            "host": _pack(self.host.rows()),
            "cores": list(self.cores),
            "statuses": [[s.t, s.state, s.message, s.index] for s in self.statuses],
            "state": self.state,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> "GpuModel":
        """Read what to_dict wrote; a snapshot without GPU data (older files) gives an empty model."""
        model = cls()
        if not data:
            return model
        for d in data.get("devices", []):
            facts = DeviceFacts(**{k: v for k, v in d.items() if k in DeviceFacts.__dataclass_fields__})
            model.devices[facts.index] = facts
        for target, columns, key in ((model.series, DEVICE_COLUMNS, "series"),
                                     (model.processes, PROCESS_COLUMNS, "processes")):
            for index, packed in data.get(key, {}).items():
                series = target[int(index)] = Series(columns)
                _unpack_into(series, packed)
        _unpack_into(model.host, data.get("host", {}))
        model.cores = tuple(data.get("cores", ()))
        model.statuses.extend(GpuStatus(*s) for s in data.get("statuses", []))
        model.state, model.message = data.get("state", ""), data.get("message", "")
        return model


def _delta(t: np.ndarray, values: np.ndarray, t0: float, t1: float) -> float:
    if len(t) < 2:
        return 0.0
    return float(np.interp(t1, t, values) - np.interp(t0, t, values))


def _pack(cols: dict[str, np.ndarray]) -> dict:
    return {name: {"dtype": a.dtype.str, "data": np.ascontiguousarray(a).tobytes()} for name, a in cols.items()}


def _unpack_into(series: Series, packed: dict) -> None:
    cols = {name: np.frombuffer(v["data"], dtype=np.dtype(v["dtype"])).copy() for name, v in packed.items()}
    if not cols or not len(cols.get("t", ())):
        return
    if len({len(v) for v in cols.values()}) > 1:
        raise ValueError("GPU columns of unequal length")
    # Columns a newer writer added are dropped; ones an older writer lacked read as absent.
    template = series.rows()
    n = len(cols["t"])
    series.append(**{name: cols[name] if name in cols else np.full(n, np.nan if arr.dtype.kind == "f" else -1,
                                                                       dtype=arr.dtype)
                     for name, arr in template.items()})
