"""A scripted stand-in for pynvml: exactly the functions gradetop calls, with the real shapes.

Structs, constants and exception classes are the real ones from pynvml (so
`except pynvml.NVMLError_NotSupported` behaves as against a driver, and
NVMLError(code) maps to its subclass the same way); units are NVML's:
milliwatts, bytes, KB/s for PCIe, MHz, degrees C, microsecond timestamps.

The GPU follows a script (a dict, or JSON in $GRADETOP_FAKE_GPU):

    {"devices": [{"name": "NVIDIA H100 80GB HBM3", "memory_total": 85899345920,
                  "gpm": true, "mig": 0, "unsupported": ["power"]}],
     "timeline": [{"until_s": 2, "util": 0, "sm_active": 0, "mem_used": 1e9, "power_mw": 70000},
                  {"until_s": 1e9, "util": 95, "lost": [0]}],
     "processes": "children",      # the recorder's child processes run on device 0
     "process_memory": 1073741824, "pid_offset": 0,
     "init_error": null,           # e.g. "LibraryNotFound", "DriverNotLoaded"
     "process_util_error": null}   # e.g. "NoPermission"

Time is seconds since nvmlInit; the segment whose `until_s` is first past
now holds; later segments inherit what they do not say. Used in-process via
`configure(script, clock)` and by a real `gradetop record` through
GRADETOP_NVML_MODULE=fake_pynvml (tests/ on PYTHONPATH).
"""

from __future__ import annotations

import ctypes
import json
import os
import time

import psutil
import pynvml as _real
from pynvml import (  # noqa: F401 - re-exported: the collector reaches them as attributes of this module
    NVML_CLOCK_MEM,
    NVML_CLOCK_SM,
    NVML_DEVICE_MIG_ENABLE,
    NVML_GPM_METRIC_ANY_TENSOR_UTIL,
    NVML_GPM_METRIC_DRAM_BW_UTIL,
    NVML_GPM_METRIC_SM_OCCUPANCY,
    NVML_GPM_METRIC_SM_UTIL,
    NVML_GPM_METRICS_GET_VERSION,
    NVML_PCIE_UTIL_RX_BYTES,
    NVML_PCIE_UTIL_TX_BYTES,
    NVML_TEMPERATURE_GPU,
    NVMLError,
    NVMLError_DriverNotLoaded,
    NVMLError_GpuIsLost,
    NVMLError_LibraryNotFound,
    NVMLError_NoPermission,
    NVMLError_NotFound,
    NVMLError_NotSupported,
    c_nvmlGpmMetricsGet_t,
)

ENV = "GRADETOP_FAKE_GPU"
DEFAULT_DEVICE = {"name": "NVIDIA H100 80GB HBM3", "memory_total": 80 * 1024**3, "gpm": True, "mig": 0,
                  "unsupported": []}
DEFAULT_STATE = {"util": 0, "mem_util": 0, "mem_used": 512 * 1024**2, "power_mw": 70_000, "power_limit_mw": 700_000,
                 "temp": 35, "sm_clock": 1980, "mem_clock": 2619, "pcie_rx_kbs": 1000, "pcie_tx_kbs": 500,
                 "throttle": 0, "sm_active": 0.0, "sm_occupancy": 0.0, "tensor_active": 0.0, "dram_bw": 0.0,
                 "lost": []}

_script: dict | None = None
_clock = time.monotonic
_t0: float | None = None


def configure(script: dict | None, clock=time.monotonic) -> None:
    global _script, _clock, _t0
    _script, _clock, _t0 = script, clock, None


class _Handle:
    def __init__(self, index: int, mig: int = -1) -> None:
        self.index, self.mig = index, mig


def _load() -> dict:
    global _script
    if _script is None:
        raw = os.environ.get(ENV, "{}")
        _script = json.loads(open(raw).read() if os.path.isfile(raw) else raw)
    return _script


def _device(handle: _Handle) -> dict:
    """The device's script; every call on a lost device raises GpuIsLost, as the driver's do."""
    _state(handle)
    devices = _load().get("devices") or [{}]
    return {**DEFAULT_DEVICE, **devices[handle.index]}


def _state(handle: _Handle | None = None) -> dict:
    """The scripted state now; raises GpuIsLost for a lost device, as every call on it would."""
    if _t0 is None:
        raise NVMLError(_real.NVML_ERROR_UNINITIALIZED)
    now = _clock() - _t0
    state = dict(DEFAULT_STATE)
    for segment in _load().get("timeline", []):
        state.update({k: v for k, v in segment.items() if k != "devices"})
        state.update(segment.get("devices", {}).get(str(handle.index) if handle else "", {}))
        if now < segment.get("until_s", float("inf")):
            break
    if handle is not None and handle.index in state["lost"]:
        raise NVMLError(_real.NVML_ERROR_GPU_IS_LOST)
    return state


def _value(handle: _Handle, metric: str):
    if metric in _device(handle)["unsupported"]:
        raise NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)
    return _state(handle)[metric]


# ---- the API ------------------------------------------------------------------------------------

def nvmlInit() -> None:
    global _t0
    error = _load().get("init_error")
    if error:
        raise getattr(_real, f"NVMLError_{error}")(getattr(_real, _ERROR_CODES[error]))
    _t0 = _clock()


_ERROR_CODES = {"LibraryNotFound": "NVML_ERROR_LIBRARY_NOT_FOUND", "DriverNotLoaded": "NVML_ERROR_DRIVER_NOT_LOADED",
                "NoPermission": "NVML_ERROR_NO_PERMISSION", "Unknown": "NVML_ERROR_UNKNOWN"}


def nvmlShutdown() -> None:
    global _t0
    _t0 = None


def nvmlSystemGetDriverVersion() -> str:
    return "550.54.15"


def nvmlDeviceGetCount() -> int:
    _state()
    return len(_load().get("devices", [{}]))


def nvmlDeviceGetHandleByIndex(index: int) -> _Handle:
    if not 0 <= index < nvmlDeviceGetCount():
        raise NVMLError(_real.NVML_ERROR_INVALID_ARGUMENT)
    return _Handle(index)


def nvmlDeviceGetName(handle: _Handle) -> str:
    return _device(handle)["name"]


def nvmlDeviceGetUUID(handle: _Handle) -> str:
    if handle.mig >= 0:
        return f"MIG-{handle.index:08x}-0000-0000-0000-{handle.mig:012x}"
    return f"GPU-{handle.index:08x}-1111-2222-3333-444455556666"


def nvmlDeviceGetMemoryInfo(handle: _Handle, version=None):
    total, used = _device(handle)["memory_total"], int(_value(handle, "mem_used"))
    return _real.c_nvmlMemory_t(total, total - used, used)


def nvmlDeviceGetUtilizationRates(handle: _Handle):
    if "util" in _device(handle)["unsupported"]:
        raise NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)
    state = _state(handle)
    return _real.c_nvmlUtilization_t(int(state["util"]), int(state["mem_util"]))


def nvmlDeviceGetPowerUsage(handle: _Handle) -> int:
    if "power" in _device(handle)["unsupported"]:
        raise NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)
    return int(_state(handle)["power_mw"])


def nvmlDeviceGetEnforcedPowerLimit(handle: _Handle) -> int:
    if "power" in _device(handle)["unsupported"]:
        raise NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)
    return int(_state(handle)["power_limit_mw"])


def nvmlDeviceGetTemperature(handle: _Handle, sensor: int) -> int:
    return int(_value(handle, "temp"))


def nvmlDeviceGetClockInfo(handle: _Handle, type: int) -> int:  # noqa: A002 - pynvml's own name
    return int(_value(handle, "sm_clock" if type == NVML_CLOCK_SM else "mem_clock"))


def nvmlDeviceGetPcieThroughput(device: _Handle, counter: int) -> int:
    return int(_value(device, "pcie_rx_kbs" if counter == NVML_PCIE_UTIL_RX_BYTES else "pcie_tx_kbs"))


def nvmlDeviceGetCurrentClocksThrottleReasons(handle: _Handle) -> int:
    return int(_value(handle, "throttle"))


def nvmlDeviceGetMigMode(device: _Handle) -> list[int]:
    mig = int(_device(device)["mig"])
    return [1 if mig else 0, 1 if mig else 0]


def nvmlDeviceGetMaxMigDeviceCount(device: _Handle) -> int:
    return 7 if _device(device)["mig"] else 0


def nvmlDeviceGetMigDeviceHandleByIndex(device: _Handle, index: int) -> _Handle:
    if index >= int(_device(device)["mig"]):
        raise NVMLError(_real.NVML_ERROR_NOT_FOUND)
    return _Handle(device.index, index)


def nvmlGpmQueryDeviceSupport(device: _Handle):
    support = _real.c_nvmlGpmSupport_t()
    support.isSupportedDevice = 1 if _device(device)["gpm"] else 0
    return support


_samples: dict[int, list] = {}
"""Address of each allocated GPM sample -> [the sample, the device it was last taken on]."""


def nvmlGpmSampleAlloc():
    sample = ctypes.pointer(_real.struct_c_nvmlGpmSample_t())  # c_nvmlGpmSample_t, as the real one returns
    _samples[ctypes.addressof(sample.contents)] = [sample, None]
    return sample


def nvmlGpmSampleFree(gpmSample) -> None:
    _samples.pop(ctypes.addressof(gpmSample.contents), None)


def nvmlGpmSampleGet(device: _Handle, gpmSample):
    _state(device)
    _samples[ctypes.addressof(gpmSample.contents)][1] = device
    return gpmSample


_GPM = {NVML_GPM_METRIC_SM_UTIL: "sm_active", NVML_GPM_METRIC_SM_OCCUPANCY: "sm_occupancy",
        NVML_GPM_METRIC_ANY_TENSOR_UTIL: "tensor_active", NVML_GPM_METRIC_DRAM_BW_UTIL: "dram_bw"}


def nvmlGpmMetricsGet(metricsGet):
    # As the real call, the device is the one the samples were taken on.
    state = _state(_samples[ctypes.addressof(metricsGet.sample2.contents)][1])
    for i in range(metricsGet.numMetrics):
        metric = metricsGet.metrics[i]
        metric.value = float(state[_GPM[metric.metricId]])
        metric.nvmlReturn = 0
    return metricsGet


def _our_processes(handle: _Handle) -> list[int]:
    script = _load()
    if handle.index != 0 or script.get("processes") != "children":
        return [int(p) for p in script.get("processes", [])] if isinstance(script.get("processes"), list) else []
    offset = int(script.get("pid_offset", 0))
    # The recorder's children are the workflow's processes, and its py-spy helpers: not on the GPU.
    return [p.pid + offset for p in psutil.Process().children(recursive=True) if "py-spy" not in p.name()]


def nvmlDeviceGetComputeRunningProcesses(handle: _Handle):
    _state(handle)
    memory = int(_load().get("process_memory", 1024**3))
    return [_real.nvmlStructToFriendlyObject(_real.c_nvmlProcessInfo_v3_t(pid, memory, 0xFFFFFFFF, 0xFFFFFFFF))
            for pid in _our_processes(handle)]


def nvmlDeviceGetGraphicsRunningProcesses(handle: _Handle):
    _state(handle)
    return []


def nvmlDeviceGetProcessUtilization(handle: _Handle, timeStamp: int):
    error = _load().get("process_util_error")
    if error:
        raise NVMLError(getattr(_real, _ERROR_CODES[error]))
    state = _state(handle)
    now_us = int(time.time() * 1e6)
    pids = _our_processes(handle)
    if not pids or now_us <= timeStamp:
        raise NVMLError(_real.NVML_ERROR_NOT_FOUND)
    return [_real.c_nvmlProcessUtilizationSample_t(pid, now_us, int(state["util"]), int(state["mem_util"]), 0, 0)
            for pid in pids]
