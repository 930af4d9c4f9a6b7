"""The process tree: pid, command, state, CPU%, RSS, GPU memory and SM%, threads, and whether stacks are read (or why not)."""

from __future__ import annotations

from textual.widgets import DataTable

from gradetop.model.gpu_picture import GpuPicture
from gradetop.model.pictures import ProcessRow
from gradetop.tui.format import size


class ProcessTable(DataTable):
    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", **kwargs)

    def on_mount(self) -> None:
        for label, width in (("PID", 8), ("State", 8), ("CPU%", 6), ("RSS", 7), ("GPUmem", 7), ("GPU%", 5),
                             ("Thr", 4), ("Stacks", 10), ("Command", None)):
            self.add_column(label, width=width)

    def show(self, rows: list[ProcessRow], gpu: GpuPicture | None = None) -> None:
        keep = self.cursor_row
        self.clear()
        on_gpu = gpu.per_pid if gpu is not None else {}
        for r in rows:
            gpu_mem, gpu_util = on_gpu.get(r.pid, (None, None))
            self.add_row(str(r.pid), r.state, f"{r.cpu_percent:5.0f}", size(r.rss),
                         "" if gpu_mem is None else size(gpu_mem), "" if gpu_util is None else f"{gpu_util:4.0f}",
                         str(r.threads),
                         r.sampled if len(r.sampled) <= 10 else r.sampled[:9] + "…",
                         "  " * r.depth + r.command, key=str(r.pid))
        if self.row_count:
            self.move_cursor(row=min(keep, self.row_count - 1), animate=False)

    def selected_pid(self) -> int | None:
        if not self.row_count:
            return None
        return int(self.get_row_at(self.cursor_row)[0])
