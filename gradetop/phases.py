"""Phase markers for user code: `with gradetop.phase("preprocess"):` or `@gradetop.phase("train")`.

This runs inside the monitored workflow, so it must cost nothing when no
monitor listens and never fail the user's program when one does.

The channel is a file per process, in the folder named by the environment
variable GRADETOP_PHASES: gradetop sets it for the commands it starts, and a
job started with it set can be attached to later (gradetop reads the
variable from the target's environment). Each event is one line written with
a single os.write on an O_APPEND descriptor: atomic between threads,
visible to the monitor at once, and nothing is lost if the program dies.

    B<TAB><epoch seconds><TAB><OS thread id><TAB><name>
    E<TAB><epoch seconds><TAB><OS thread id><TAB><name>
"""

from __future__ import annotations

import functools
import os
import threading
import time

ENV = "GRADETOP_PHASES"
"""Folder where each process writes <pid>.phases; unset: markers do nothing."""


class _Silent:
    """The marker when nothing listens: one shared object whose methods do nothing."""

    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __call__(self, func):
        return func


_SILENT = _Silent()


class _Channel:
    """The per-process marker file, reopened after a fork (the child has another pid)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.pid = -1
        self.fd = -1
        self.broken = False
        self.lock = threading.Lock()
        # A fork copies this lock in whatever state another thread left it: start the child afresh.
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self.lock = threading.Lock()

    def write(self, kind: str, name: str) -> None:
        if self.broken:
            return
        try:
            pid = os.getpid()
            if pid != self.pid:
                with self.lock:
                    if pid != self.pid:
                        self.fd = os.open(os.path.join(self.folder, f"{pid}.phases"),
                                          os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                        self.pid = pid
            clean = name.replace("\n", " ").replace("\t", " ")
            os.write(self.fd, f"{kind}\t{time.time():.6f}\t{threading.get_native_id()}\t{clean}\n".encode())
        except Exception:
            # A full disk or a removed folder must never break the user's program.
            self.broken = True


_channel: _Channel | None = _Channel(os.environ[ENV]) if os.environ.get(ENV) else None


class _Phase:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self):
        _channel.write("B", self.name)
        return self

    def __exit__(self, *exc):
        _channel.write("E", self.name)
        return False

    def __call__(self, func):
        import inspect  # here: it costs 9 ms, and the CLI and a workflow that only uses `with` never need it

        name = self.name
        if inspect.iscoroutinefunction(func):
            # The phase is the awaited work, not the creation of the coroutine object.
            async def marked(*args, **kwargs):
                _channel.write("B", name)
                try:
                    return await func(*args, **kwargs)
                finally:
                    _channel.write("E", name)

            return _named(functools.wraps(func)(marked), name)
        if inspect.isgeneratorfunction(func):
            def marked(*args, **kwargs):
                _channel.write("B", name)
                try:
                    return (yield from func(*args, **kwargs))
                finally:
                    _channel.write("E", name)

            return _named(functools.wraps(func)(marked), name)

        def marked(*args, **kwargs):
            _channel.write("B", name)
            try:
                return func(*args, **kwargs)
            finally:
                _channel.write("E", name)

        return _named(functools.wraps(func)(marked), name)


def _named(wrapper, name: str):
    """Stack samplers read a frame's name from its code object: name the wrapper after the
    phase, so that flame graphs show "phase(train)" above train()."""
    label = f"phase({name})"
    code = wrapper.__code__
    wrapper.__code__ = code.replace(co_name=label, **({"co_qualname": label} if hasattr(code, "co_qualname") else {}))
    return wrapper


def phase(name: str):
    """Mark a phase of the workflow: a context manager, or a decorator of functions.

    Phases nest (`train` > `epoch 3` > `step`). With no monitor listening,
    this returns a shared do-nothing object (well under a microsecond).
    """
    if _channel is None:
        return _SILENT
    return _Phase(str(name))


def listening() -> bool:
    """True when this process writes phase markers for a monitor."""
    return _channel is not None and not _channel.broken
