"""The timeline: time on x, one lane per process (or thread), CPU% and RSS sparklines per process, GPU util per device.

Each lane cell is coloured by the dominant frame of that time bin (the frame
at the depth where the lane's work splits: load, preprocess, train...),
shaded by how active the lane was. A cursor selects a time range, which the
app turns into a filter of the flame and top views.
"""

from __future__ import annotations

import math

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from gradetop.model.pictures import TimelineData
from gradetop.tui.colors import IDLE, color_for
from gradetop.tui.format import seconds, size

LABEL_W = 14
SPARK = " ▁▂▃▄▅▆▇█"
DIM = Style(color="#808080")
CURSOR = Style(reverse=True)
SELECTED_BG = "#303060"


def shade(activity: float) -> str:
    """A cell's glyph by how active the lane was: full when busy, light when mostly waiting."""
    if math.isnan(activity):
        return " "
    if activity >= 0.6:
        return "█"
    if activity >= 0.2:
        return "▓"
    return "░"


def sparkline(values: np.ndarray | None, top: float) -> str:
    if values is None:
        return ""
    out = []
    for v in values:
        if v is None or not np.isfinite(v):
            out.append(" ")
        else:
            out.append(SPARK[int(round(min(max(v / top, 0.0), 1.0) * (len(SPARK) - 1)))] if top > 0 else SPARK[0])
    return "".join(out)


class TimelineView(ScrollView, can_focus=True):
    BINDINGS = [
        Binding("left", "cursor(-1)", "Earlier", show=False, tooltip="cursor earlier"),
        Binding("right", "cursor(1)", "Later", show=False, tooltip="cursor later"),
        Binding("shift+left", "cursor(-10)", show=False, tooltip="cursor 10 steps earlier"),
        Binding("shift+right", "cursor(10)", show=False, tooltip="cursor 10 steps later"),
        Binding("home", "cursor_to(0)", show=False, tooltip="cursor to the start"),
        Binding("end", "cursor_to(-1)", show=False, tooltip="cursor to the end"),
        Binding("space", "mark", "Mark range", tooltip="mark range start / end: the range filters flame and top"),
        Binding("escape", "clear_range", "Clear range", tooltip="clear the range"),
    ]

    class RangeSelected(Message):
        def __init__(self, t0: float, t1: float) -> None:
            super().__init__()
            self.t0, self.t1 = t0, t1

    class RangeCleared(Message):
        pass

    cursor: reactive[int] = reactive(-1)
    """Bin under the cursor (-1: the latest)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data: TimelineData | None = None
        self.mark_start: float | None = None
        self.selection: tuple[float, float] | None = None
        self._lines: list[list[Segment]] = []

    @property
    def bins_wanted(self) -> int:
        return max(self.scrollable_content_region.width - LABEL_W, 10)

    def show(self, data: TimelineData, phase_lanes: list | None = None, gpu=None) -> None:
        self.data = data
        gpu_lines = [[Segment(f"{lane.label[:LABEL_W - 1]:<{LABEL_W}}", Style(bold=True, color="#87d7ff")),
                      Segment(sparkline(lane.util, 100.0), Style(color="#87d7ff"))] for lane in (gpu.lanes if gpu else ())]
        self._lines = self.build_phase_lines(phase_lanes or []) + gpu_lines + self.build_lines(data)
        self.virtual_size = Size(self.scrollable_content_region.width, len(self._lines) + 1)
        self.refresh()

    def cursor_bin(self) -> int:
        if self.data is None:
            return 0
        return self.cursor % self.data.bins if self.cursor < 0 else min(self.cursor, self.data.bins - 1)

    def bin_time(self, index: int) -> float:
        return self.data.t0 + index * self.data.bin_s

    def _selected_bins(self) -> tuple[int, int] | None:
        if self.data is None or self.data.bin_s <= 0:
            return None
        t0, width = self.data.t0, self.data.bin_s
        if self.selection is not None:
            # The selection is [start, end): its last bin is the one before `end`. Epoch times near
            # 1.8e9 s keep ~2e-7 s of precision: a thousandth of a bin absorbs it.
            lo = math.floor((self.selection[0] - t0) / width + 1e-3)
            hi = math.ceil((self.selection[1] - t0) / width - 1e-3) - 1
            return lo, max(lo, hi)
        if self.mark_start is not None:
            at = math.floor((self.mark_start - t0) / width + 1e-3)
            return at, at
        return None

    @staticmethod
    def build_phase_lines(lanes) -> list[list[Segment]]:
        """Phase lanes: each phase a coloured band with its name written in it where it fits."""
        lines = []
        for lane in lanes:
            segs = [Segment(f"{lane.label[:LABEL_W - 1]:<{LABEL_W}}", Style(bold=True, color="#d7af5f"))]
            cells = list(lane.cells)
            i = 0
            while i < len(cells):
                j = i
                while j < len(cells) and cells[j] == cells[i]:
                    j += 1
                if cells[i] < 0:
                    segs.append(Segment(" " * (j - i)))
                else:
                    name = lane.names[cells[i]]
                    text = (name[: j - i]).ljust(j - i)
                    segs.append(Segment(text, Style(color="black", bgcolor=color_for(name))))
                i = j
            lines.append(segs)
        return lines

    def build_lines(self, data: TimelineData) -> list[list[Segment]]:
        """Every row as segments of the bin area (without the label column or the cursor)."""
        lines: list[list[Segment]] = []
        cpu_top = 100.0
        for lane in data.lanes:
            if lane.cpu is not None and np.isfinite(lane.cpu).any():
                cpu_top = max(cpu_top, float(np.nanmax(lane.cpu)))
        used: dict[int, int] = {}
        for lane in data.lanes:
            row = []
            for func, act in zip(lane.dominant, lane.activity):
                if func < 0:
                    row.append((" ", Style()))
                    continue
                used[int(func)] = used.get(int(func), 0) + 1
                color = color_for(data.function_names[func]) if act >= 0.2 else IDLE
                row.append((shade(act), Style(color=color)))
            lines.append([Segment(f"{lane.label[:LABEL_W - 1]:<{LABEL_W}}", Style(bold=True)), *_merge(row)])
            if lane.cpu is not None:
                peak = np.nanmax(lane.cpu) if np.isfinite(lane.cpu).any() else 0.0
                lines.append([Segment(f"{' cpu ' + f'{peak:.0f}%':<{LABEL_W}}", DIM),
                              Segment(sparkline(lane.cpu, cpu_top), Style(color="#5fd75f"))])
            if lane.rss is not None:
                peak = np.nanmax(lane.rss) if np.isfinite(lane.rss).any() else 0.0
                lines.append([Segment(f"{' rss ' + size(peak):<{LABEL_W}}", DIM),
                              Segment(sparkline(lane.rss, peak), Style(color="#5fafff"))])
        legend = sorted(used, key=lambda f: -used[f])[:8]
        segs = [Segment(" " * LABEL_W)]
        for func in legend:
            segs += [Segment("■ ", Style(color=color_for(data.function_names[func]))),
                     Segment(data.function_names[func][:18] + "  ", DIM)]
        lines.append(segs)
        return lines

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        data = self.data
        if data is None:
            return Strip([Segment("waiting for samples…".ljust(width), DIM)], width)
        if y == 0:
            # The time axis stays put while the lanes scroll under it.
            return Strip(self._axis(width), width).crop(0, width)
        y += int(self.scroll_offset.y)
        if y - 1 >= len(self._lines):
            return Strip.blank(width)
        strip = Strip(self._lines[y - 1])
        strip = strip.extend_cell_length(width)
        cursor = LABEL_W + self.cursor_bin()
        selected = self._selected_bins()
        if selected is not None:
            lo, hi = LABEL_W + max(selected[0], 0), LABEL_W + min(selected[1], data.bins - 1)
            if hi >= lo:
                left, middle = strip.divide([lo, hi + 1])[:2]
                right = strip.crop(hi + 1, width)
                middle = middle.apply_style(Style(bgcolor=SELECTED_BG))
                strip = Strip.join([left, middle, right])
        if self.has_focus and y - 1 < len(self._lines) - 1:
            left = strip.crop(0, cursor)
            mid = strip.crop(cursor, cursor + 1).apply_style(CURSOR)
            strip = Strip.join([left, mid, strip.crop(cursor + 1, width)])
        return strip.crop(0, width)

    def _axis(self, width: int) -> list[Segment]:
        data = self.data
        cells = [" "] * max(width - LABEL_W, 0)
        span = data.t1 - data.t0
        for i in range(0, len(cells), 12):
            label = seconds(i * data.bin_s)
            for j, ch in enumerate("┆" + label):
                if i + j < len(cells):
                    cells[i + j] = ch
        where = self.bin_time(self.cursor_bin()) - data.t0
        head = f"t={seconds(where)}/{seconds(span)}"
        return [Segment(f"{head[:LABEL_W - 1]:<{LABEL_W}}", Style(bold=True)), Segment("".join(cells), DIM)]

    # ---- actions ----------------------------------------------------------------

    def watch_cursor(self) -> None:
        self.refresh()

    def action_cursor(self, step: int) -> None:
        if self.data is not None:
            self.cursor = max(0, min(self.data.bins - 1, self.cursor_bin() + step))

    def action_cursor_to(self, where: int) -> None:
        if self.data is not None:
            self.cursor = -1 if where < 0 else 0

    def action_mark(self) -> None:
        if self.data is None:
            return
        here = self.bin_time(self.cursor_bin())
        if self.mark_start is None:
            self.mark_start, self.selection = here, None
            self.notify("range start marked: move, then space again", timeout=2)
        else:
            lo, hi = sorted((self.mark_start, here))
            self.selection = (lo, hi + self.data.bin_s)
            self.mark_start = None
            self.post_message(self.RangeSelected(*self.selection))
        self.refresh()

    def action_clear_range(self) -> None:
        if self.selection is not None or self.mark_start is not None:
            self.selection = self.mark_start = None
            self.post_message(self.RangeCleared())
            self.refresh()


def _merge(cells: list[tuple[str, Style]]) -> list[Segment]:
    """Runs of equal style as one segment: fewer segments, faster drawing."""
    out: list[Segment] = []
    for ch, style in cells:
        if out and out[-1].style == style:
            out[-1] = Segment(out[-1].text + ch, style)
        else:
            out.append(Segment(ch, style))
    return out
