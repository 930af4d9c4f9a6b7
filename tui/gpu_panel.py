"""The GPU panel: per device bars and history sparklines, the processes on it, and the host underneath.

Draws a model.gpu_picture.GpuPicture and nothing else (no NVML, no psutil,
no live model). Lines are built by pure functions (`panel_lines`) so they
can be tested without an app. At 80 columns every figure keeps its label,
bar and value; the sparkline gets what is left.
"""

from __future__ import annotations

import math
import textwrap

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from gradetop.model.gpu_picture import DevicePicture, GpuPicture, HostPicture
from gradetop.tui.format import size
from gradetop.tui.timeline import sparkline

LABEL_W = 8
BAR_W = 16
VALUE_W = 19
DIM = Style(color="#808080")
WARN = Style(color="#d7af5f", bold=True)
COLORS = {"util": "#5fd75f", "sm_active": "#87d7ff", "memory": "#5fafff", "power": "#d7af5f", "temp": "#d75f5f"}


def bar(fraction: float, width: int = BAR_W) -> str:
    if not math.isfinite(fraction):
        return "·" * width
    filled = int(round(min(max(fraction, 0.0), 1.0) * width))
    return "█" * filled + "░" * (width - filled)


def rate(bps: float) -> str:
    return "n/a" if not math.isfinite(bps) else f"{size(bps)}/s"


def metric_line(label: str, fraction: float, value: str, history: tuple[float, ...], top: float, color: str,
                width: int) -> Text:
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f" {label:<{LABEL_W - 1}}", DIM)
    # In the wide layout's side column the bar gives way first, so label and value stay whole.
    bar_w = max(4, min(BAR_W, width - LABEL_W - VALUE_W))
    line.append(bar(fraction, bar_w), Style(color=color))
    line.append(f" {value:<{VALUE_W - 1}}")
    room = width - LABEL_W - bar_w - VALUE_W
    if room > 4 and history:
        line.append(sparkline(history[-room:], top), Style(color=color))
    return line


def device_lines(d: DevicePicture, width: int) -> list[Text]:
    head = Text(no_wrap=True, overflow="ellipsis")
    head.append(f"GPU {d.index} ", Style(bold=True))
    head.append(d.name)
    if d.lost:
        head.append("  LOST: readings stopped", Style(color="white", bgcolor="#d70000", bold=True))
    extras = [f"{d.temp_c:.0f}°C" if math.isfinite(d.temp_c) else "", f"{d.sm_clock_mhz:.0f} MHz"
              if math.isfinite(d.sm_clock_mhz) else ""]
    head.append("  " + "  ".join(e for e in extras if e), DIM)
    h = d.history
    lines = [head]
    lines.append(metric_line("util", d.util / 100, f"{_pct(d.util)} kernel ran", h["util"], 100, COLORS["util"], width))
    if math.isfinite(d.sm_active) or any(math.isfinite(v) for v in h["sm_active"]):
        lines.append(metric_line("SM act", d.sm_active / 100, f"{_pct(d.sm_active)} SMs busy", h["sm_active"], 100,
                                 COLORS["sm_active"], width))
    else:
        lines.append(Text(f" {'SM act':<{LABEL_W - 1}}n/a: no GPM on this device (util above is coarser)", DIM,
                          no_wrap=True, overflow="ellipsis"))
    mem = f"{size(d.mem_used)}/{size(d.mem_total)}" if d.mem_used >= 0 else "n/a"
    lines.append(metric_line("memory", d.mem_used / d.mem_total if d.mem_total > 0 and d.mem_used >= 0 else math.nan,
                             mem, h["memory"], 100, COLORS["memory"], width))
    limit = d.power_limit_w if math.isfinite(d.power_limit_w) and d.power_limit_w > 0 else math.nan
    power = "n/a" if not math.isfinite(d.power_w) else (f"{d.power_w:.0f}/{limit:.0f} W" if math.isfinite(limit)
                                                        else f"{d.power_w:.0f} W")
    lines.append(metric_line("power", d.power_w / limit if math.isfinite(limit) else math.nan, power, h["power"],
                             limit if math.isfinite(limit) else max([v for v in h["power"] if math.isfinite(v)] or [1]),
                             COLORS["power"], width))
    lines.append(metric_line("temp", d.temp_c / 100, "n/a" if not math.isfinite(d.temp_c) else f"{d.temp_c:.0f}°C",
                             h["temp"], 100, COLORS["temp"], width))
    io = Text(f" PCIe rx {rate(d.pcie_rx_bps)} tx {rate(d.pcie_tx_bps)}  throttle: ", DIM, no_wrap=True,
              overflow="ellipsis")
    io.append(d.throttle, WARN if d.throttle not in ("none", "idle", "unknown") else DIM)
    if d.mig and d.mig != "disabled":
        io.append(f"  MIG {d.mig}", DIM)
    lines.append(io)
    for p in d.processes:
        who = f"pid {p.pid}" if p.pid is not None else f"driver pid {p.driver_pid} (not matched)"
        mem = size(p.mem_bytes) if p.mem_bytes >= 0 else "n/a"
        sm = f"  SM {p.sm_util:.0f}%" if math.isfinite(p.sm_util) else ""
        lines.append(Text(f"   {who:<34} {mem:>8}{sm}", Style() if p.pid is not None else DIM,
                          no_wrap=True, overflow="ellipsis"))
    if not d.processes:
        lines.append(Text("   no process of ours on this device", DIM))
    return lines


def host_lines(h: HostPicture, width: int) -> list[Text]:
    head = Text("Host", Style(bold=True), no_wrap=True)
    head.append(f"  {len(h.cores)} cores, load {h.load1:.2f}", DIM)
    mean = sum(h.cores) / len(h.cores) if h.cores else math.nan
    cores = Text(f" {'cores':<{LABEL_W - 1}}", DIM, no_wrap=True, overflow="ellipsis")
    cores.append(sparkline(h.cores[: max(width - LABEL_W, 1)], 100) if h.cores else "n/a", Style(color="#5fd75f"))
    lines = [head, metric_line("CPU", mean / 100, f"{_pct(mean)} mean", h.cpu_history, 100, "#5fd75f", width), cores]
    mem_frac = h.mem_used / h.mem_total if h.mem_total else math.nan
    lines.append(metric_line("memory", mem_frac, f"{size(h.mem_used)}/{size(h.mem_total)}", (), 1, "#5fafff", width))
    if h.swap_total:
        lines.append(metric_line("swap", h.swap_used / h.swap_total, f"{size(h.swap_used)}/{size(h.swap_total)}", (),
                                 1, "#d75f5f", width))
    lines.append(Text(f" disk r {rate(h.disk_read_bps)} w {rate(h.disk_write_bps)}   "
                      f"net in {rate(h.net_recv_bps)} out {rate(h.net_sent_bps)}", DIM, no_wrap=True,
                      overflow="ellipsis"))
    return lines


def panel_lines(picture: GpuPicture | None, width: int) -> list[Text]:
    if picture is None:
        return [Text("waiting for GPU readings…", DIM)]
    lines: list[Text] = []
    if picture.sentence:
        lines.append(Text(picture.sentence, WARN, no_wrap=False))
    for d in picture.devices:
        if lines:
            lines.append(Text(""))
        lines += device_lines(d, width)
    if picture.verdicts:
        lines += [Text(""), Text("What the GPU waited for (per phase type)", Style(bold=True))]
        for verdict in picture.verdicts:
            # Wrapped, not cut: the numbers at the end are the evidence.
            lines += [Text(line) for line in textwrap.wrap(verdict, max(width - 1, 20), initial_indent=" ",
                                                          subsequent_indent="     ")]
    if picture.host is not None:
        lines.append(Text(""))
        lines += host_lines(picture.host, width)
    return lines


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.0f}%"


class GpuPanel(VerticalScroll, can_focus=True):
    """GPUs and the host; arrow keys and PgUp/PgDn scroll when it does not fit."""

    DEFAULT_CSS = """
    GpuPanel > Static { width: 1fr; height: auto; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.picture: GpuPicture | None = None
        self.border_title = "GPUs and host"

    def compose(self) -> ComposeResult:
        yield Static(id="gpu-body")

    def on_mount(self) -> None:
        self._draw()

    def show(self, picture: GpuPicture | None) -> None:
        self.picture = picture
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        width = max(self.scrollable_content_region.width, 20)
        text = Text("\n").join(panel_lines(self.picture, width))
        text.no_wrap, text.overflow = True, "ellipsis"  # a line cut short beats a figure split over two
        self.query_one("#gpu-body", Static).update(text)
