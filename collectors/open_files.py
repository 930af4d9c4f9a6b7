"""Small /proc files held open between readings, each read again with one pread.

After a 10 ms sleep on a 2-core VM, opening, reading and closing a /proc
file cost 100-125 us; a pread of the same file, open already, 20-35 us. The
resource sampler reads a dozen such files ten times a second for one
process and its worker: that was most of its cost.

A file of a process stays bound to that process: once it ends, a read
fails (ESRCH, or nothing at all), even where the kernel has given its pid
to a new process, so a reused pid is never read through an old file.
Files are kept up to a limit well under the open-file limit (a job of many
threads would take three each); past it they are read as before, opened
and closed each time.
"""

from __future__ import annotations

import os
import resource
import weakref

FIRST_READ = 4096
"""Bytes asked for at first: every stat, schedstat and io file, and a children list of 500 pids."""


def _default_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, min(1024, soft // 4)) if soft != resource.RLIM_INFINITY else 1024


class OpenFiles:
    """/proc files by path, opened at their first read, grouped by the process they belong to (None: the
    machine's, as /proc/stat). Used by one thread."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = _default_limit() if limit is None else limit
        self._fds: dict[int | None, dict[str, int]] = {}
        self._count = 0
        weakref.finalize(self, _close_all, self._fds)  # where `close` was not called

    def __len__(self) -> int:
        return self._count

    def read(self, path: str) -> bytes | None:
        """The file's contents now; None where it cannot be read (gone, never there, not allowed)."""
        owner = _owner(path)
        group = self._fds.get(owner)
        fd = group.get(path) if group is not None else None
        if fd is None:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
            if self._count >= self.limit:
                try:
                    return _read_all(fd)
                except OSError:
                    return None
                finally:
                    os.close(fd)
            self._fds.setdefault(owner, {})[path] = fd
            self._count += 1
        try:
            return _read_all(fd)
        except OSError:  # its process or thread ended
            os.close(self._fds[owner].pop(path))
            self._count -= 1
            return None

    def forget(self, pid: int) -> None:
        """Close the files of process `pid` (it ended)."""
        for fd in self._fds.pop(pid, {}).values():
            os.close(fd)
            self._count -= 1

    def keep_only(self, pids) -> None:
        """Close the files of every process but `pids` (and the machine's): a process that ended unread,
        whose children list reads empty, not failing, would otherwise hold its files for good."""
        for pid in [p for p in self._fds if p is not None and p not in pids]:
            self.forget(pid)

    def close(self) -> None:
        for pid in list(self._fds):
            self.forget(pid)


def _close_all(fds: dict[int | None, dict[str, int]]) -> None:
    for group in fds.values():
        for fd in group.values():
            os.close(fd)
    fds.clear()


def _owner(path: str) -> int | None:
    """The process a /proc path belongs to: /proc/PID/..."""
    name = path.split("/", 3)[2]
    return int(name) if name.isdigit() else None


def _read_all(fd: int) -> bytes:
    data = os.pread(fd, FIRST_READ, 0)
    size = FIRST_READ
    while len(data) == size:  # a long children list: read it whole
        size *= 4
        data = os.pread(fd, size, 0)
    return data
