"""The GPU and host parts of `report`: JSON fields and their text, computed headless.

Contract (report --json): `gpus` [{index, uuid, name, memory_total_bytes,
util_mean, util_max, sm_active_mean|null, memory_peak_bytes, energy_j, ...}],
`gpu_status` (one sentence when gpus is empty or partial, else null),
`gpu_processes`, `host_resources` (cpu, memory, disk, net summaries or null:
`host` already names the machine), and per phase `gpu_util_mean`,
`gpu_util_max`, `gpu_sm_active_mean`, `gpu_memory_peak_bytes`, `gpu_idle_s`,
`gpu_read_s` (seconds of the phase the GPU was read), `gpu_energy_j`,
`gpu_verdict` and `gpu_verdict_kind`: null where no GPU was read during it.
"""

from __future__ import annotations

import textwrap

import numpy as np

from gradetop.model.gpu_verdicts import phase_gpu
from gradetop.model.phases import PhaseCost
from gradetop.model.profile import Profile


def _r(value, digits: int = 2):
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def gpu_section(profile: Profile) -> dict:
    gpu = profile.gpu
    t0 = profile.meta.start_time
    t1 = profile.meta.end_time or max([t0, *(float(s.t[-1]) for s in gpu.series.values() if len(s))])
    gpus = []
    for index, facts in sorted(gpu.devices.items()):
        w = gpu.window(index, t0 - 1.0, t1 + 1.0)
        gpus.append({
            "index": index, "uuid": facts.uuid, "name": facts.name, "memory_total_bytes": facts.mem_total,
            "util_mean": _r(w.util_mean) if w else None, "util_max": _r(w.util_max) if w else None,
            "sm_active_mean": _r(w.sm_active_mean) if w else None,
            "memory_peak_bytes": w.mem_peak if w else None, "energy_j": _r(w.energy_j, 1) if w else None,
            "idle_s": _r(w.idle_s, 3) if w else None, "mig": facts.mig or None, "lost": facts.lost,
        })
    return {"gpus": gpus, "gpu_status": gpu.sentence(), "gpu_processes": gpu.process_peaks(),
            "host_resources": host_summary(profile)}


def host_summary(profile: Profile) -> dict | None:
    h = profile.gpu.host
    if len(h) == 0:
        return None
    t = h.t
    span = float(t[-1] - t[0]) if len(t) > 1 else 0.0

    def grew(column: str) -> tuple[int | None, float | None]:
        values = getattr(h, column)
        if values.min() < 0 or len(values) < 2:
            return None, None
        total = int(values[-1] - values[0])
        return total, _r(total / span, 1) if span > 0 else None

    disk_r, disk_r_bps = grew("disk_read")
    disk_w, disk_w_bps = grew("disk_write")
    net_r, net_r_bps = grew("net_recv")
    net_s, net_s_bps = grew("net_sent")
    return {
        "cpu": {"cores": int(h.cores[-1]), "mean_percent": _r(np.nanmean(h.cpu)), "max_percent": _r(np.nanmax(h.cpu)),
                "busiest_core_max_percent": _r(np.nanmax(h.cpu_max)), "load1_max": _r(np.nanmax(h.load1))},
        "memory": {"total_bytes": int(h.mem_total[-1]), "peak_used_bytes": int(h.mem_used.max()),
                   "swap_total_bytes": int(h.swap_total[-1]), "swap_peak_used_bytes": int(h.swap_used.max())},
        "disk": {"read_bytes": disk_r, "write_bytes": disk_w, "read_bps": disk_r_bps, "write_bps": disk_w_bps},
        "net": {"recv_bytes": net_r, "sent_bytes": net_s, "recv_bps": net_r_bps, "sent_bps": net_s_bps},
        "seconds": _r(span, 3),
    }


def add_phase_gpu(profile: Profile, costs: list[PhaseCost], entries: list[dict]) -> None:
    """Give each phase entry its GPU fields (null where no GPU was read during it)."""
    cache: dict = {}
    for cost, entry in zip(costs, entries):
        g = phase_gpu(profile, cost, cache)
        entry.update({
            "gpu_util_mean": _r(g.util_mean) if g else None,
            "gpu_util_max": _r(g.util_max) if g else None,
            "gpu_sm_active_mean": _r(g.sm_active_mean) if g else None,
            "gpu_memory_peak_bytes": g.memory_peak if g else None,
            "gpu_idle_s": _r(g.idle_s, 3) if g else None,
            "gpu_read_s": _r(g.read_s, 3) if g else None,
            "gpu_energy_j": _r(g.energy_j, 1) if g else None,
            "gpu_verdict": g.verdict if g else None,
            "gpu_verdict_kind": g.verdict_kind if g else None,
        })


def _gib(value) -> str:
    return "?" if value is None or value < 0 else f"{value / 1024**3:.1f} GiB"


def format_gpu(report: dict, width: int = 100) -> list[str]:
    """GPUs, per-phase GPU verdicts and the host, for the text report."""
    def clip(text: str) -> str:
        return text if len(text) <= width else text[: width - 1] + "…"

    lines = ["", "GPUs"]
    if report.get("gpu_status"):
        lines.append(clip(f"  {report['gpu_status']}"))
    for g in report.get("gpus", []):
        util = "n/a" if g["util_mean"] is None else f"{g['util_mean']:.0f}% (max {g['util_max']:.0f}%)"
        sm = "n/a (no GPM)" if g["sm_active_mean"] is None else f"{g['sm_active_mean']:.0f}%"
        energy = "n/a" if g["energy_j"] is None else f"{g['energy_j']:.0f} J"
        lines.append(clip(f"  GPU {g['index']} {g['name']}{' (LOST)' if g['lost'] else ''}"
                          f"{', MIG ' + g['mig'] if g['mig'] and g['mig'] != 'disabled' else ''}"))
        lines.append(clip(f"    util {util}, SM active {sm}, memory peak {_gib(g['memory_peak_bytes'])} of "
                          f"{_gib(g['memory_total_bytes'])}, energy {energy}"))
    for p in report.get("gpu_processes", []):
        who = f"pid {p['pid']}" if p["pid"] is not None else f"driver pid {p['driver_pid']} (not matched)"
        sm = "" if p["sm_util_mean"] is None else f", SM {p['sm_util_mean']:.0f}%"
        lines.append(clip(f"    on GPU {p['index']}: {who}, memory peak {_gib(p['memory_peak_bytes'])}{sm}"))
    seen = set()
    for p in report.get("phases", []):
        if p.get("gpu_verdict") and p["type"] not in seen:
            seen.add(p["type"])
            lines += textwrap.wrap(f"{p['type']}: {p['gpu_verdict']}", width, initial_indent="  ",
                                   subsequent_indent="      ")
    host = report.get("host_resources")
    if host:
        cpu, mem, disk, net = host["cpu"], host["memory"], host["disk"], host["net"]
        lines += ["", "Host"]
        lines.append(clip(f"  CPU {cpu['cores']} cores, mean {cpu['mean_percent']:.0f}% (max {cpu['max_percent']:.0f}%, "
                          f"busiest core {cpu['busiest_core_max_percent']:.0f}%), load max {cpu['load1_max']}"))
        lines.append(clip(f"  memory peak {_gib(mem['peak_used_bytes'])} of {_gib(mem['total_bytes'])}, "
                          f"swap peak {_gib(mem['swap_peak_used_bytes'])}"))
        mb = lambda v: "n/a" if v is None else f"{v / 1e6:.1f} MB/s"  # noqa: E731
        lines.append(clip(f"  disk read {mb(disk['read_bps'])}, write {mb(disk['write_bps'])}; "
                          f"net in {mb(net['recv_bps'])}, out {mb(net['sent_bps'])}"))
    return lines
