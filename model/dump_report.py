"""What `gradetop dump` found: per process and thread, the stacks, the verdicts and the trouble, and their JSON.

Plain records built by collectors.dump from py-spy's answers and judged by
model.stuck; the CLI prints them, `--json` writes `to_json()`. Must never
read processes or files, nor import textual or rich.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gradetop.model.waits import Frame


@dataclass
class FrameReport:
    function: str
    file: str
    line: int
    short_file: str = ""
    native: bool = False
    locals: list[dict] | None = None
    """[{name, repr, arg}] with --locals; arguments first, as py-spy gives them."""

    def to_json(self) -> dict:
        out = {"function": self.function, "file": self.file, "line": self.line, "native": self.native}
        if self.locals is not None:
            out["locals"] = self.locals
        return out


@dataclass
class ThreadReport:
    tid: int
    name: str
    state: str
    """'running' (active), 'holding GIL' (idle but holding it: every other thread waits), or 'idle'."""
    active: bool
    owns_gil: bool
    unchanged_s: float
    stuck: bool
    wait_reason: str | None
    wait_frame: Frame | None
    frames: list[FrameReport]
    """Leaf first, as py-spy prints them."""
    ran: bool
    """It ran during the watch: py-spy saw it active in half the dumps or more, or it had more than 1% of a CPU."""
    cpu_s: float | None
    python_thread_id: int | None = None
    waiting_on: str = ""
    """Why an unmoved wait is not stuck: 'its 2 child processes, which used 3.8 CPU s in 2.0 s'."""

    def to_json(self) -> dict:
        return {
            "tid": self.tid,
            "waiting_on": self.waiting_on or None,
            "name": self.name,
            "state": self.state,
            "stuck": self.stuck,
            "unchanged_s": round(self.unchanged_s, 3),
            "wait_reason": self.wait_reason,
            "wait_frame": frame_json(self.wait_frame),
            "active": self.active,
            "owns_gil": self.owns_gil,
            "cpu_s": None if self.cpu_s is None else round(self.cpu_s, 4),
            "python_thread_id": self.python_thread_id,
            "frames": [f.to_json() for f in self.frames],
        }


@dataclass
class ProcessReport:
    pid: int
    ppid: int | None
    cmdline: str
    status: str
    """'running', 'zombie' (exited, not reaped) or 'exited' (gone during the watch)."""
    exit_code: int | None = None
    signal: int | None = None
    cpu_percent: float | None = None
    watched_s: float = 0.0
    """Time between this process's first and last successful dump."""
    error: str | None = None
    error_kind: str | None = None
    note: str | None = None
    trouble: list[str] = field(default_factory=list)
    threads: list[ThreadReport] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "pid": self.pid,
            "ppid": self.ppid,
            "cmdline": self.cmdline,
            "status": self.status,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "cpu_percent": None if self.cpu_percent is None else round(self.cpu_percent, 1),
            "watched_s": round(self.watched_s, 3),
            "error": self.error,
            "note": self.note,
            "trouble": list(self.trouble),
            "threads": [t.to_json() for t in self.threads],
        }


@dataclass
class DumpResult:
    pid: int
    watch_s: float
    """Seconds between the first and the last round."""
    dumps: int
    """Rounds made (each dumps every live process once)."""
    blocking_rounds: int
    processes: list[ProcessReport]

    def stuck(self) -> list[tuple[ProcessReport, ThreadReport]]:
        return [(p, t) for p in self.processes for t in p.threads if t.stuck]

    def trouble(self) -> list[tuple[ProcessReport, str]]:
        return [(p, line) for p in self.processes for line in p.trouble]

    def to_json(self) -> dict:
        return {
            "pid": self.pid,
            "watch_s": round(self.watch_s, 3),
            "dumps": self.dumps,
            "blocking_dumps": self.blocking_rounds,
            "stuck": [{"pid": p.pid, "tid": t.tid} for p, t in self.stuck()],
            "processes": [p.to_json() for p in self.processes],
        }


def frame_json(frame: Frame | None) -> dict | None:
    if frame is None:
        return None
    return {"function": frame[0], "file": frame[1], "line": frame[2]}
