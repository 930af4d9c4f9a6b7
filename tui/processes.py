"""The process tree: pid, role, state, CPU%, RSS, GPU memory and SM% (where a GPU was read), threads, and
whether stacks are read (or why not)."""

from __future__ import annotations

from textual.widgets import DataTable

from gradetop.model.gpu_picture import GpuPicture
from gradetop.model.pictures import ProcessRow
from gradetop.tui.format import size

COLUMNS = (("PID", 8), ("Role", 10), ("State", 8), ("CPU%", 6), ("RSS", 7), ("Thr", 4), ("Stacks", 10),
           ("Command", None))
GPU_COLUMNS = (("GPUmem", 7), ("GPU%", 5))
"""Shown after RSS only when a GPU was read: at 80 columns, empty GPU columns would cost the command."""


class ProcessTable(DataTable):
    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self.with_gpu: bool | None = None

    def _set_columns(self, with_gpu: bool) -> None:
        if with_gpu == self.with_gpu:
            return
        self.clear(columns=True)
        columns = [*COLUMNS[:5], *GPU_COLUMNS, *COLUMNS[5:]] if with_gpu else list(COLUMNS)
        for label, width in columns:
            self.add_column(label, width=width)
        self.with_gpu = with_gpu

    def on_mount(self) -> None:
        self._set_columns(False)

    def show(self, rows: list[ProcessRow], gpu: GpuPicture | None = None) -> None:
        keep = self.cursor_row
        on_gpu = gpu.per_pid if gpu is not None else {}
        self._set_columns(bool(gpu is not None and gpu.devices))
        self.clear()
        for r in rows:
            # Many hosts: the pid its host knows, and host and rank before the command.
            shown = r.pid if r.host_pid is None else r.host_pid
            cells = [str(shown) if r.alike == 1 else f"x{r.alike}", short_role(r.role), r.state, f"{r.cpu_percent:5.0f}", size(r.rss)]
            if self.with_gpu:
                gpu_mem, gpu_util = on_gpu.get(r.pid, (None, None))
                cells += ["" if gpu_mem is None else size(gpu_mem), "" if gpu_util is None else f"{gpu_util:4.0f}"]
            cells += [str(r.threads), r.sampled if len(r.sampled) <= 10 else r.sampled[:9] + "…",
                      "  " * r.depth + (f"({r.place}) " if r.place else "") + r.command]
            self.add_row(*cells, key=str(r.pid))
        if self.row_count:
            self.move_cursor(row=min(keep, self.row_count - 1), animate=False)

    def selected_pid(self) -> int | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key((self.cursor_row, 0))
        return int(row_key.value)


def short_role(role: str) -> str:
    """A role in the 10 columns the table gives it."""
    return {"DataLoader worker": "DL worker"}.get(role, role if len(role) <= 10 else role[:9] + "…")
