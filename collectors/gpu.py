"""The NVML sampler: what each NVIDIA GPU does, and which of our processes use it.

One long-lived thread at 1-10 Hz (default 4: NVML's own utilisation counter
averages over 1/6 to 1 s, so faster buys little). NVML is reached through a
module given as a parameter: `pynvml` (nvidia-ml-py) by default, or the one
named by GRADETOP_NVML_MODULE, a test hook that lets a real `gradetop record`
run against a scripted fake GPU (tests/fake_pynvml.py).

Must never raise into the monitor. No library, no driver, no devices, a
device lost mid-run, a metric the device does not support, per-process data
the user may not read: each becomes a GpuStatus sentence, the figure becomes
NaN (absent, never zero) and every other collector goes on.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gradetop.collectors.background import Background
from gradetop.collectors.gpu_pids import driver_pid_map
from gradetop.model.gpu_records import NAN, GpuBatch, GpuDeviceReading, GpuProcessReading, GpuStatus

NVML_MODULE_ENV = "GRADETOP_NVML_MODULE"
"""Test hook: a dotted module name to use instead of pynvml (it must speak pynvml's API)."""
DEFAULT_HZ = 4.0
MIN_HZ, MAX_HZ = 1.0, 10.0
GPM_METRICS = ("sm_active", "sm_occupancy", "tensor_active", "dram_bw")


NVML_LIBRARY = "libnvidia-ml.so.1"
"""The driver's library, by the name pynvml loads it on Linux."""


def load_nvml(name: str | None = None):
    """The NVML binding: `name`, else $GRADETOP_NVML_MODULE, else pynvml. Raises ImportError."""
    return importlib.import_module(name or os.environ.get(NVML_MODULE_ENV) or "pynvml")


def driver_missing() -> bool:
    """Whether pynvml would find no driver library: then it need not load. Importing it costs 0.017 s of
    CPU, a tenth of what `record` costs to start, on every machine without a GPU; dlopen failing costs
    a path search."""
    import ctypes

    try:
        ctypes.CDLL(NVML_LIBRARY)
    except OSError:
        return True
    return False


@dataclass
class _Device:
    index: int
    handle: object
    uuid: str
    name: str
    mem_total: int
    power_limit_w: float
    mig: str
    gpm: list = field(default_factory=list)
    """[previous sample, current sample] where GPM is supported, else empty."""
    lost: bool = False
    unsupported: set = field(default_factory=set)
    said: set = field(default_factory=set)
    """Keys of statuses already sent for this device: each is said once."""
    last_util_us: int = 0


class GpuSampler(Background):
    """Reads every device `rate_hz` times a second; `watched()` gives the pids whose GPU use we attribute."""

    def __init__(self, emit: Callable[[object], None], watched: Callable[[], Iterable[int]] = lambda: (),
                 rate_hz: float = DEFAULT_HZ, nvml=None) -> None:
        super().__init__("gradetop-gpu")
        self.emit = emit
        self.watched = watched
        self.interval = 1.0 / min(max(rate_hz, MIN_HZ), MAX_HZ)
        self.nvml = nvml
        self.devices: list[_Device] = []
        self.state = "starting"
        self._open = False

    # ---- lifecycle --------------------------------------------------------------------------

    def run(self) -> None:
        if not self.open():
            return
        try:
            next_at = time.monotonic()
            while not self._stopping.is_set():
                self.sample_once()
                next_at = max(next_at + self.interval, time.monotonic())
                self._stopping.wait(next_at - time.monotonic())
        except Exception as exc:  # noqa: BLE001 - a collector bug must not end the recording
            self._status("error", f"GPU: sampling stopped after an unexpected error ({type(exc).__name__}: {exc})")
        finally:
            self.close()

    def open(self) -> bool:
        """Start NVML and learn the devices; False (with the reason said) where there is nothing to read."""
        if self.nvml is None and not os.environ.get(NVML_MODULE_ENV) and driver_missing():
            return self._status("no-driver", f"GPU: no NVIDIA driver found ({NVML_LIBRARY} missing)")
        try:
            nvml = self.nvml = self.nvml or load_nvml()
        except ImportError as exc:
            return self._status("no-library", f"GPU: cannot load the NVML binding ({exc})")
        try:
            nvml.nvmlInit()
        except nvml.NVMLError_LibraryNotFound:
            return self._status("no-driver", f"GPU: no NVIDIA driver found ({NVML_LIBRARY} missing)")
        except nvml.NVMLError_DriverNotLoaded:
            return self._status("no-driver", "GPU: the NVIDIA driver is installed but not loaded")
        except nvml.NVMLError_NoPermission:
            return self._status("error", "GPU: permission denied opening NVML")
        except nvml.NVMLError as exc:
            return self._status("error", f"GPU: NVML could not start ({exc})")
        self._open = True
        try:
            count = nvml.nvmlDeviceGetCount()
            driver = self._quiet(nvml.nvmlSystemGetDriverVersion) or "version unknown"
        except nvml.NVMLError as exc:
            self.close()
            return self._status("error", f"GPU: NVML could not count the devices ({exc})")
        for index in range(count):
            try:
                self.devices.append(self._describe(index))
            except nvml.NVMLError as exc:
                # One bad device (lost, reset, locked) leaves the others readable.
                self._status("lost" if isinstance(exc, nvml.NVMLError_GpuIsLost) else "unsupported",
                             f"GPU {index}: cannot be read ({exc}); left out", index)
        if not self.devices:
            self.close()
            if count:
                return self._status("error", f"GPU: none of the {count} devices could be read")
            return self._status("no-devices", f"GPU: the NVIDIA driver ({driver}) sees no devices")
        names = sorted({d.name for d in self.devices})
        s = "s" if len(self.devices) > 1 else ""
        self._status("ok", f"GPU: {len(self.devices)} device{s} ({', '.join(names)}), driver {driver}")
        return True

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        for dev in self.devices:
            for sample in dev.gpm:
                self._quiet(self.nvml.nvmlGpmSampleFree, sample)
        self._quiet(self.nvml.nvmlShutdown)

    def _describe(self, index: int) -> _Device:
        nvml = self.nvml
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        limit = self._quiet(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        memory = self._quiet(nvml.nvmlDeviceGetMemoryInfo, handle)
        dev = _Device(index, handle, nvml.nvmlDeviceGetUUID(handle), nvml.nvmlDeviceGetName(handle),
                      -1 if memory is None else int(memory.total),
                      NAN if limit is None else limit / 1000.0, self._mig(handle))
        support = self._quiet(nvml.nvmlGpmQueryDeviceSupport, handle)
        if support is not None and support.isSupportedDevice:
            dev.gpm = [nvml.nvmlGpmSampleAlloc(), nvml.nvmlGpmSampleAlloc()]
            self._quiet(nvml.nvmlGpmSampleGet, handle, dev.gpm[0])
        return dev

    def _mig(self, handle) -> str:
        nvml = self.nvml
        mode = self._quiet(nvml.nvmlDeviceGetMigMode, handle)
        if mode is None:
            return ""
        if mode[0] != nvml.NVML_DEVICE_MIG_ENABLE:
            return "disabled"
        uuids = []
        for i in range(self._quiet(nvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0):
            mig = self._quiet(nvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, i)
            if mig is not None:
                uuids.append(self._quiet(nvml.nvmlDeviceGetUUID, mig) or "?")
        return f"enabled: {len(uuids)} MIG device{'s' if len(uuids) != 1 else ''}" + (f" ({', '.join(uuids)})" if uuids else "")

    # ---- sampling -----------------------------------------------------------------------------

    def sample_once(self) -> None:
        now = time.time()
        ours = driver_pid_map(self.watched())
        readings, procs = [], []
        for dev in self.devices:
            if dev.lost:
                continue
            try:
                readings.append(self._read(dev))
                procs += self._processes(dev, ours, now)
            except self.nvml.NVMLError_GpuIsLost:
                dev.lost = True
                self._status("lost", f"GPU {dev.index} ({dev.name}) was lost mid-run (NVML: GPU is lost); "
                                     f"its readings stop here", dev.index)
        if readings or procs:
            self.emit(GpuBatch(now, tuple(readings), tuple(procs)))

    def _read(self, dev: _Device) -> GpuDeviceReading:
        nvml, h = self.nvml, dev.handle
        util = self._metric(dev, "utilisation", nvml.nvmlDeviceGetUtilizationRates, h)
        mem = self._metric(dev, "memory", nvml.nvmlDeviceGetMemoryInfo, h)
        power = self._metric(dev, "power draw", nvml.nvmlDeviceGetPowerUsage, h)
        gpm = self._gpm(dev)
        return GpuDeviceReading(
            index=dev.index, uuid=dev.uuid, name=dev.name,
            util=NAN if util is None else float(util.gpu),
            mem_util=NAN if util is None else float(util.memory),
            mem_used=-1 if mem is None else int(mem.used),
            mem_total=dev.mem_total if mem is None else int(mem.total),
            power_w=NAN if power is None else power / 1000.0,  # NVML says milliwatts
            power_limit_w=dev.power_limit_w,
            temp_c=self._number(dev, "temperature", nvml.nvmlDeviceGetTemperature, h, nvml.NVML_TEMPERATURE_GPU),
            sm_clock_mhz=self._number(dev, "SM clock", nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_SM),
            mem_clock_mhz=self._number(dev, "memory clock", nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_MEM),
            # NVML says KB/s over a 20 ms window.
            pcie_rx_bps=1024 * self._number(dev, "PCIe rx", nvml.nvmlDeviceGetPcieThroughput, h, nvml.NVML_PCIE_UTIL_RX_BYTES),
            pcie_tx_bps=1024 * self._number(dev, "PCIe tx", nvml.nvmlDeviceGetPcieThroughput, h, nvml.NVML_PCIE_UTIL_TX_BYTES),
            throttle=_int(self._metric(dev, "throttle reasons", nvml.nvmlDeviceGetCurrentClocksThrottleReasons, h)),
            mig=dev.mig,
            **gpm,
        )

    def _gpm(self, dev: _Device) -> dict:
        """SM activity, occupancy, tensor-pipe activity and DRAM bandwidth between the last two GPM samples."""
        if not dev.gpm or "GPM" in dev.unsupported:
            return {}
        nvml = self.nvml
        prev, cur = dev.gpm
        try:
            nvml.nvmlGpmSampleGet(dev.handle, cur)
            request = nvml.c_nvmlGpmMetricsGet_t()
            request.version = nvml.NVML_GPM_METRICS_GET_VERSION
            request.numMetrics = len(GPM_METRICS)
            request.sample1, request.sample2 = prev, cur
            ids = (nvml.NVML_GPM_METRIC_SM_UTIL, nvml.NVML_GPM_METRIC_SM_OCCUPANCY,
                   nvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL, nvml.NVML_GPM_METRIC_DRAM_BW_UTIL)
            for i, metric in enumerate(ids):
                request.metrics[i].metricId = metric
            nvml.nvmlGpmMetricsGet(request)
        except nvml.NVMLError_GpuIsLost:
            raise
        except nvml.NVMLError as exc:
            dev.unsupported.add("GPM")
            self._status("unsupported", f"GPU {dev.index}: GPM metrics unavailable ({exc}): SM activity absent", dev.index)
            return {}
        dev.gpm = [cur, prev]
        return {name: (float(m.value) if m.nvmlReturn == 0 else NAN)
                for name, m in zip(GPM_METRICS, request.metrics[: len(GPM_METRICS)])}

    def _processes(self, dev: _Device, ours: dict[int, int], now: float) -> list[GpuProcessReading]:
        """Who is on the device: memory from the compute and graphics lists, SM share from process utilisation."""
        nvml, h = self.nvml, dev.handle
        memory: dict[int, int] = {}
        for what, getter in (("compute processes", nvml.nvmlDeviceGetComputeRunningProcesses),
                             ("graphics processes", nvml.nvmlDeviceGetGraphicsRunningProcesses)):
            for p in self._metric(dev, what, getter, h) or ():
                used = -1 if p.usedGpuMemory is None else int(p.usedGpuMemory)
                memory[p.pid] = max(memory.get(p.pid, -1), used)
        util: dict[int, float] = {}
        if "process utilisation" not in dev.unsupported:
            try:
                samples = nvml.nvmlDeviceGetProcessUtilization(h, dev.last_util_us)
            except nvml.NVMLError_NotFound:
                samples = []  # no sample since the last one we read: normal between kernel launches
            except nvml.NVMLError_GpuIsLost:
                raise
            except nvml.NVMLError_NoPermission:
                samples = []
                dev.unsupported.add("process utilisation")
                self._status("no-permission", f"GPU {dev.index}: no permission to read per-process utilisation "
                                              "(memory per process still shown)", dev.index)
            except nvml.NVMLError as exc:
                samples = []
                dev.unsupported.add("process utilisation")
                self._status("unsupported", f"GPU {dev.index}: per-process utilisation unavailable ({exc})", dev.index)
            for s in samples:
                if s.timeStamp > dev.last_util_us:
                    util[s.pid] = float(s.smUtil)
            dev.last_util_us = max([dev.last_util_us, *(s.timeStamp for s in samples)])
        out = []
        for driver_pid in sorted(set(memory) | set(util)):
            pid = ours.get(driver_pid, -1)
            if pid < 0 and f"pid {driver_pid}" not in dev.said:
                dev.said.add(f"pid {driver_pid}")
                self._status("unmatched", f"GPU {dev.index}: driver pid {driver_pid} matches no watched process "
                                          "(another job, or a pid namespace we cannot see: in a container the "
                                          "driver reports host pids)", dev.index)
            out.append(GpuProcessReading(dev.index, pid, driver_pid, memory.get(driver_pid, -1),
                                         util.get(driver_pid, NAN)))
        return out

    # ---- failure as words ------------------------------------------------------------------------

    def _metric(self, dev: _Device, what: str, fn, *args):
        """fn(*args), or None where the device cannot say (said once per metric). GpuIsLost goes up."""
        if what in dev.unsupported:
            return None
        nvml = self.nvml
        try:
            return fn(*args)
        except nvml.NVMLError_GpuIsLost:
            raise
        except nvml.NVMLError_NotSupported:
            dev.unsupported.add(what)
            self._status("unsupported", f"GPU {dev.index}: {what} not supported by this device or driver "
                                        "(shown as absent)", dev.index)
        except nvml.NVMLError_NoPermission:
            dev.unsupported.add(what)
            self._status("no-permission", f"GPU {dev.index}: no permission to read {what}", dev.index)
        except nvml.NVMLError:
            pass  # a transient failure: absent this once
        return None

    def _number(self, dev: _Device, what: str, fn, *args) -> float:
        value = self._metric(dev, what, fn, *args)
        return NAN if value is None else float(value)

    def _quiet(self, fn, *args):
        try:
            return fn(*args)
        except self.nvml.NVMLError:
            return None

    def _status(self, state: str, message: str, index: int = -1) -> bool:
        if index < 0:
            self.state = state
        self.emit(GpuStatus(time.time(), state, message, index))
        return False


def _int(value) -> int:
    """-1 for absent; 0 is a real answer (no throttle reason)."""
    return -1 if value is None else int(value)
