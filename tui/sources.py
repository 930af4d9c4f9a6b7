"""Where the UI's profile comes from: a live workflow (spawned or attached) or a saved file.

The UI only reads `profile` and asks the source for its state; collection
runs in the collectors' own threads, so nothing here blocks the screen
except `finish`, `stop_workflow` and `detach`, which the app calls from workers.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass

from gradetop.collectors.markers import new_phase_folder
from gradetop.collectors.monitor import Monitor
from gradetop.collectors.stacks import StackOptions
from gradetop.collectors.target import Target, shell_status
from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import ProcessEnded
from gradetop.phases import ENV


@dataclass(frozen=True)
class SourceState:
    live: bool
    """Collectors are running."""
    label: str
    """Short state for the header: 'running', 'exited 0', 'detached', 'file'."""
    ended: bool = False


class FileSource:
    """A saved snapshot: nothing runs."""

    live = False
    spawned = False

    def __init__(self, profile: Profile, path: str) -> None:
        self.profile = profile
        self.path = path
        self.title = f"open {os.path.basename(path)}: {' '.join(profile.meta.command) or 'attached'}"

    def start(self) -> None:
        pass

    def state(self) -> SourceState:
        return SourceState(False, "file", ended=True)

    def poll(self) -> bool:
        return False

    def finish(self) -> None:
        pass

    def detach(self) -> None:
        pass


class LiveSource:
    """A workflow being watched: gradetop run / demo (spawned) or attach (found running)."""

    live = True

    def __init__(self, target: Target, options: StackOptions, mode: str, idle: bool = False,
                 phase_folder: str | None = None, extra_options: dict | None = None) -> None:
        self.target = target
        self.spawned = target.spawned
        meta = ProfileMeta(rate_hz=options.rate_hz, command=target.command, target_pid=target.pid, mode=mode,
                           options={"idle": idle, "native": options.native, "blocking": options.blocking,
                                    **(extra_options or {})})
        self.profile = Profile(meta)
        self.monitor = Monitor(self.profile, target.pid, options, phase_folder=phase_folder)
        verb = "attach" if not target.spawned else mode
        self.title = f"{verb}: {' '.join(target.command) or target.pid} (pid {target.pid})"
        self._finished = threading.Event()
        self._detached = False

    @classmethod
    def spawn(cls, command: list[str], options: StackOptions, mode: str = "run",
              extra_options: dict | None = None, idle: bool = False) -> "LiveSource":
        log_path = os.path.join(tempfile.gettempdir(), f"gradetop-output-{os.getpid()}-{int(time.time())}.log")
        holder: list[Profile] = []
        early: list = []

        def on_output(line) -> None:
            # Lines can come before the profile exists; keep them until it does.
            (holder[0].ingest(line) if holder else early.append(line))

        folder = new_phase_folder()
        target = Target.spawn(command, on_output=on_output, log_path=log_path, env={ENV: folder})
        source = cls(target, options, mode, idle=idle, phase_folder=folder, extra_options=extra_options)
        holder.append(source.profile)
        for line in early:
            source.profile.ingest(line)
        return source

    @classmethod
    def attach(cls, pid: int, options: StackOptions, extra_options: dict | None = None,
               idle: bool = False) -> "LiveSource":
        return cls(Target.attach(pid), options, "attach", idle=idle, extra_options=extra_options)

    def start(self) -> None:
        self.monitor.start()

    def poll(self) -> bool:
        """True once the workflow ended and the final state can be collected (call `finish`)."""
        if self._finished.is_set():
            return False
        if self.spawned:
            return self.target.poll() is not None
        return self.monitor.target_gone

    def finish(self) -> None:
        """The workflow ended: flush the samplers and keep the final picture. Blocking."""
        if self._finished.is_set():
            return
        self.monitor.stop()
        if self.spawned:
            self.target.poll()
            self.profile.ingest(ProcessEnded(self.target.pid, time.time(), self.target.exit_code))
            self.profile.meta.exit_code = self.target.exit_code
        self.profile.meta.end_time = time.time()
        self._finished.set()

    def stop_workflow(self, grace_s: float = 5.0) -> None:
        """SIGINT, then SIGTERM after a grace period; then finish. Blocking."""
        self.target.stop(grace_s)
        self.finish()

    def detach(self) -> None:
        """Stop watching; the workflow runs on untouched. Blocking."""
        self._detached = True
        self.finish()

    def state(self) -> SourceState:
        if self._finished.is_set():
            if self._detached:
                return SourceState(False, "detached", ended=True)
            if self.spawned:
                return SourceState(False, f"exited {shell_status(self.target.exit_code)}", ended=True)
            return SourceState(False, "process ended", ended=True)
        failure = self.monitor.failure()
        if failure:
            return SourceState(True, "no stacks")
        return SourceState(True, "running")
