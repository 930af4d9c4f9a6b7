"""The workflow being watched: a command gradetop spawned, or a process it attached to.

Only a spawned target is ever signalled; an attached one is left exactly as
it was found.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gradetop.collectors.own_env import workflow_environ

if TYPE_CHECKING:
    from gradetop.model.records import OutputLine

PR_SET_PDEATHSIG = 1


class TargetError(Exception):
    """The target cannot be started or found; the message is one line for the user."""


class Target:
    def __init__(self, pid: int, popen: subprocess.Popen | None, command: list[str]) -> None:
        self.pid = pid
        self.popen = popen
        self.command = command
        self.exit_code: int | None = None
        self.log_path: str | None = None

    @property
    def spawned(self) -> bool:
        return self.popen is not None

    @classmethod
    def spawn(cls, command: list[str], on_output: Callable[[OutputLine], None] | None = None,
              env: dict[str, str] | None = None, log_path: str | None = None,
              die_with_gradetop: bool = False) -> "Target":
        """Start `command`.

        With `on_output`, its stdout and stderr are captured line by line. With
        `log_path` too, they go to that file (tailed for `on_output`) and the
        command gets its own session: it can then outlive gradetop (detach, a
        dropped SSH session) without dying on a closed pipe or a hangup.
        With `die_with_gradetop`, the kernel sends it SIGTERM if gradetop dies
        (even by SIGKILL), as `py-spy record -- CMD` users expect; call it
        from the main thread, before sampler threads start.
        """
        if not command:
            raise TargetError("no command given: put it after --, as in gradetop record -- python train.py")
        exe = command[0]
        if os.sep in exe:
            if not os.path.exists(exe):
                raise TargetError(f"command not found: {exe}")
            if not os.access(exe, os.X_OK) or os.path.isdir(exe):
                raise TargetError(f"command is not executable: {exe}")
        elif shutil.which(exe) is None:
            raise TargetError(f"command not found: {exe}")
        capture = on_output is not None
        log = open(log_path, "wb") if log_path else None
        try:
            popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL if capture else None,
                stdout=log or (subprocess.PIPE if capture else None),
                stderr=log or (subprocess.PIPE if capture else None),
                env={**workflow_environ(), **(env or {})},
                start_new_session=log is not None,
                preexec_fn=_die_with_parent if die_with_gradetop else None,
            )
        except OSError as exc:
            raise TargetError(f"cannot start {exe}: {exc.strerror or exc}") from None
        finally:
            if log is not None:
                log.close()
        target = cls(popen.pid, popen, list(command))
        target.log_path = log_path
        if log_path and capture:
            threading.Thread(target=_tail, args=(log_path, popen, on_output), daemon=True,
                             name="gradetop-output").start()
        elif capture:
            for stream, pipe in (("stdout", popen.stdout), ("stderr", popen.stderr)):
                threading.Thread(target=_pump, args=(pipe, stream, on_output), daemon=True,
                                 name=f"gradetop-{stream}").start()
        return target

    @classmethod
    def attach(cls, pid: int) -> "Target":
        import psutil  # here, not above: a command starts before psutil loads (collectors.launch)

        if pid == os.getpid():
            raise TargetError(f"process {pid} is gradetop itself")
        try:
            proc = psutil.Process(pid)
            # Before cmdline(): psutil raises ZombieProcess (a NoSuchProcess) for a zombie's.
            if proc.status() == psutil.STATUS_ZOMBIE:
                raise TargetError(f"process {pid} has already exited (it is a zombie: its parent "
                                  f"{proc.ppid()} has not reaped it)")
            command = proc.cmdline()
        except psutil.ZombieProcess:
            raise TargetError(f"process {pid} has already exited (it is a zombie)") from None
        except psutil.NoSuchProcess:
            raise TargetError(f"no process with pid {pid}") from None
        except psutil.AccessDenied:
            command = []
        return cls(pid, None, command)

    def when_ended(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from a thread of its own) as soon as a spawned target ends: a caller that polls
        would notice up to a poll later, and every run would last that much longer."""
        if self.popen is None:
            return

        def wait() -> None:
            self.popen.wait()
            callback()

        threading.Thread(target=wait, name="gradetop-target-exit", daemon=True).start()

    def poll(self) -> int | None:
        """The exit status once the target ended (None for an attached one that still runs or whose status is not ours)."""
        if self.popen is not None:
            code = self.popen.poll()
            if code is not None:
                self.exit_code = code
            return code
        return None

    def stop(self, grace_s: float = 5.0) -> int | None:
        """Stop a spawned target politely: SIGINT, then SIGTERM, then SIGKILL, each after `grace_s`."""
        if self.popen is None:
            return None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if self.popen.poll() is not None:
                break
            try:
                self.popen.send_signal(sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                continue
        self.exit_code = self.popen.wait()
        return self.exit_code


def _die_with_parent() -> None:
    """In the child, before exec: ask for SIGTERM when the parent dies (Linux PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _pump(pipe, stream: str, on_output: Callable[[OutputLine], None]) -> None:
    from gradetop.model.records import OutputLine

    with pipe:
        for raw in pipe:
            on_output(OutputLine(time.time(), stream, raw.decode(errors="replace").rstrip("\n")))


def _tail(path: str, popen: subprocess.Popen, on_output: Callable[[OutputLine], None]) -> None:
    from gradetop.model.records import OutputLine

    """Follow a log file until its writer ended and everything in it was read."""
    with open(path, "rb") as f:
        partial = b""
        while True:
            chunk = f.readline()
            if chunk:
                partial += chunk
                if partial.endswith(b"\n"):
                    on_output(OutputLine(time.time(), "output", partial.decode(errors="replace").rstrip("\n")))
                    partial = b""
                continue
            if popen.poll() is not None:
                if partial:
                    on_output(OutputLine(time.time(), "output", partial.decode(errors="replace")))
                return
            time.sleep(0.1)


def shell_status(code: int | None) -> int:
    """An exit status as a shell reports it: 128 + N for a process ended by signal N."""
    if code is None:
        return 0
    return 128 - code if code < 0 else code
