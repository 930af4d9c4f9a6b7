"""One monitoring session: the workflow, its samplers, its recording, and their cleanup, as one object.

`record`, `run`, `attach` and `demo` all start a Session, headless or under
the UI, and end it with `finish`; nothing of it is assembled anywhere else.
A session owns:
- the target (spawned or attached) and, for a spawned one, its phase-marker
  folder and (under the UI) its output log;
- the Profile and the Monitor that feeds it;
- the recording: a SnapshotWriter streaming the profile to disk, flushed by
  an Autosave thread, so that a killed gradetop leaves all but the last
  second or two on disk;
- cleanup: scratch files go when the workflow ends; what a workflow left
  running still needs (its log, its marker folder) goes when it ends, swept
  by a later gradetop (collectors.scratch).

The UI reaches a running session only through this interface (state,
pictures of the profile, locals of a thread); it never runs a collector.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gradetop.collectors import scratch
from gradetop.collectors.autosave import Autosave
from gradetop.collectors.launch import Launched, launch
from gradetop.collectors.monitor import Monitor
from gradetop.collectors.window import StackOptions, Window
from gradetop.collectors.target import Target, TargetError, shell_status
from gradetop.model.processes import PID_STRIDE
from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import ProcessEnded
from gradetop.model.snapshot import SnapshotWriter, save
from gradetop.model.source import SourceState

__all__ = ["Session", "SessionOptions", "TargetError", "default_output"]


@dataclass(frozen=True)
class SessionOptions:
    stacks: StackOptions = field(default_factory=StackOptions)
    idle: bool = False
    """Count idle samples in function times (kept in the snapshot for the views)."""
    extra: dict = field(default_factory=dict)
    """More options kept in the snapshot (the user's phase rules)."""
    output: str | None = None
    """Where the recording streams to; None: `default_output` in the current folder."""
    save: bool = True
    """False (--no-save): keep the recording in memory only."""


def default_output(pid: int) -> str:
    """`gradetop-<pid>-<time>.gtop` in the current folder, as py-spy and memray name theirs."""
    return f"gradetop-{pid}-{time.strftime('%Y%m%d-%H%M%S')}.gtop"


class Recorded:
    """What every session with a recording offers the UI: where it streams, and closed copies.

    Needs `profile`, `path`, `writer`, `_autosave`, `notices` and the `_finished` event of the
    session it is mixed into.
    """

    @property
    def writing_to(self) -> str | None:
        """The file the recording streams to, while it does."""
        if self.writer is None or self.writer.error is not None or self.writer.closed:
            return None
        return self.path

    def when_ended(self, callback: Callable[[], None]) -> None:
        """Call `callback` as soon as the workflow ends, where the session can tell at once; where it
        cannot (agents on other hosts), its `poll` says so, a poll later."""

    def save_copy(self, path: str) -> None:
        """A closed snapshot of everything so far (its clock stops now), while the session goes on."""
        save(self.profile, path, end_time=None if self._finished.is_set() else time.time())

    def _close_recording(self, progress=None) -> None:
        """Stop streaming and compact the file once; a problem writing it becomes a notice."""
        if self._autosave is not None:
            self._autosave.stop()
            self._autosave.join()
        if self.writer is not None:
            problem = self.writer.close(progress)
            if problem:
                self.notices.append(problem)


class Session(Recorded):
    live = True

    def __init__(self, target: Target, options: SessionOptions, mode: str,
                 phase_folder: str | None = None, log_path: str | None = None,
                 first_window: tuple[Window | None, str] | None = None, started: float | None = None) -> None:
        self.target = target
        self.spawned = target.spawned
        self.options = options
        self.phase_folder = phase_folder
        self.log_path = log_path
        meta = ProfileMeta(rate_hz=options.stacks.rate_hz, command=target.command, target_pid=target.pid, mode=mode,
                           options={"idle": options.idle, "native": options.stacks.native,
                                    "blocking": options.stacks.blocking, **options.extra},
                           **({"start_time": started} if started is not None else {}))
        self.profile = Profile(meta)
        self.monitor = Monitor(self.profile, target.pid, options.stacks, phase_folder=phase_folder,
                               first_window=first_window)
        verb = mode if target.spawned else "attach"
        self.title = f"{verb}: {' '.join(target.command) or target.pid} (pid {target.pid})"
        self.path: str | None = (options.output or default_output(target.pid)) if options.save else None
        self.writer: SnapshotWriter | None = None
        self.notices: list[str] = []
        """Lines for the user (the recording could not be written, say), oldest first."""
        self._autosave: Autosave | None = None
        self._finished = threading.Event()
        self._finish_lock = threading.Lock()
        self._detached = False
        self._notes_read = 0
        self._permission_told = False

    # ---- making one ----------------------------------------------------------------------

    @classmethod
    def spawn(cls, command: list[str], options: SessionOptions, mode: str = "record",
              capture_output: bool = False, launched: Launched | None = None) -> "Session":
        """Start `command` under gradetop, or take over one `launch` started already (the fast way: it
        ran while this module loaded). With `capture_output` (the UI), its output goes to a log file that
        it keeps writing after a detach; without, it shares gradetop's terminal and dies with gradetop."""
        launched = launched or launch(command, options.stacks, capture_output)
        session = cls(launched.target, options, mode, phase_folder=launched.phase_folder,
                      log_path=launched.log_path, first_window=(launched.first_window, launched.window_folder),
                      started=launched.started)
        launched.output.deliver_to(session.profile.ingest)
        return session

    @classmethod
    def attach(cls, pid: int, options: SessionOptions) -> "Session":
        scratch.sweep()
        return cls(Target.attach(pid), options, "attach")

    # ---- running -------------------------------------------------------------------------

    def start(self) -> "Session":
        """Start the samplers and the recording. A recording that cannot be opened is a notice, not a stop."""
        self.writer, self._autosave = start_recording(self.profile, self.path, self.notices)
        self.monitor.start()
        return self

    def when_ended(self, callback: Callable[[], None]) -> None:
        if self.spawned:
            self.target.when_ended(callback)

    def subscribe(self, on_samples: Callable[[], None]) -> None:
        """Call `on_samples` (from the ingest thread) whenever new samples are in the model."""
        self.monitor.on_samples = on_samples

    def poll(self) -> bool:
        """True once the workflow ended and `finish` should be called."""
        self._tell_sampler_problems()
        if self._finished.is_set():
            return False
        if self.spawned:
            return self.target.poll() is not None
        return self.monitor.target_gone

    def _tell_sampler_problems(self) -> None:
        """A sampler denied ptrace says so once, with the one-line fix, as a notice: the UI shows it as a
        toast (its header only says NO STACKS, and the processes panel cuts the reason short)."""
        with self.profile.lock:
            notes = self.profile.notes[self._notes_read:]
            self._notes_read += len(notes)
        for note in notes:
            if note.kind == "permission" and not self._permission_told:
                self._permission_told = True
                self.notices.append(note.message)

    def failure(self) -> str | None:
        """Why no stacks can be read, once every sampler gave up; else None."""
        return self.monitor.failure()

    @property
    def sampling(self) -> bool:
        return self.monitor.sampling

    def state(self) -> SourceState:
        if self._finished.is_set():
            if self._detached:
                return SourceState(False, "detached", ended=True)
            if self.spawned:
                return SourceState(False, f"exited {shell_status(self.target.exit_code)}", ended=True)
            return SourceState(False, "process ended", ended=True)
        return SourceState(True, "no stacks" if self.failure() else "running")


    def read_locals(self, pid: int, tid: int) -> list[tuple[str, list[tuple[str, str]]]]:
        """(function, [(name, repr)]) for each frame of one thread, innermost last: asks py-spy now."""
        from gradetop.collectors.dump import DumpOptions, dump

        # A reused pid's later process has a model id above PID_STRIDE (model.profile); the kernel's is below.
        result = dump(pid % PID_STRIDE, DumpOptions(watch_s=0, subprocesses=False, locals=True))
        frames = []
        for proc in result.processes:
            for thread in proc.threads:
                if thread.tid == tid:
                    frames += [(f.function, [(str(v.get("name")), str(v.get("repr"))) for v in f.locals])
                               for f in thread.frames if f.locals]
        return frames

    # ---- ending --------------------------------------------------------------------------

    def finish(self, progress: Callable[[float], None] | None = None) -> None:
        """Flush the samplers, close the recording (`progress` hears how far its final write is), clean up.
        Blocking; safe to call twice."""
        with self._finish_lock:
            if self._finished.is_set():
                return
            self.monitor.stop()
            if self.spawned:
                self.target.poll()
                self.profile.ingest(ProcessEnded(self.target.pid, time.time(), self.target.exit_code))
                self.profile.meta.exit_code = self.target.exit_code
            self.profile.meta.end_time = time.time()
            self._close_recording(progress)
            self._clean_up()
            self._finished.set()

    def stop_workflow(self, grace_s: float = 5.0) -> None:
        """SIGINT, then SIGTERM after a grace period; then finish. Blocking."""
        self.target.stop(grace_s)
        self.finish()

    def detach(self) -> None:
        """Stop watching; the workflow runs on untouched. Blocking."""
        self._detached = True
        self.finish()

    @property
    def workflow_running(self) -> bool:
        return self.spawned and self.target.poll() is None

    def _clean_up(self) -> None:
        if self.workflow_running:
            return  # its log and marker folder are still in use; a later gradetop sweeps them
        scratch.remove(self.phase_folder)

    def saved_path(self) -> str | None:
        """Where the finished recording is, if it was written (for the closing line)."""
        if self.path is None or self.writer is None:
            return None
        return self.path if os.path.exists(self.path) else None


def fallback_path(output: str) -> str:
    """A new file in the temp folder for a recording its own place refused (never an existing file)."""
    stem = os.path.basename(output).removesuffix(".gtop") or "gradetop"
    fd, path = tempfile.mkstemp(prefix=f"{stem}-", suffix=".gtop")
    os.close(fd)
    return path


def start_recording(profile: Profile, path: str | None,
                    notices: list[str]) -> tuple[SnapshotWriter | None, Autosave | None]:
    """Stream `profile` to `path` (None: --no-save), flushed by an Autosave thread. A file that cannot be
    opened is a notice, and the recording goes on in memory."""
    if path is None:
        return None, None
    try:
        writer = SnapshotWriter(profile, path)
    except OSError as exc:
        notices.append(f"cannot write {path} ({exc.strerror or exc}); recording in memory only")
        return None, None
    return writer, Autosave(writer, notices.append).start()
