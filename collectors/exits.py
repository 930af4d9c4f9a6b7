"""When each sampled process ended, to the millisecond: the last phase of a job ends where its process did.

py-spy notices an ended process only when a read fails, and says nothing of
when. Counting its ticks at the pace of the window before (collectors/stacks)
cuts the end short when a loaded machine makes py-spy late: a 1.5 s final
phase read 1.39 s on a busy 2-core CI machine. The kernel says it exactly: a
pidfd (Linux 5.3+) becomes readable when its process exits, child or not.
One thread waits on all of them in one epoll.
"""

from __future__ import annotations

import os
import select
import threading
import time


class ExitClock:
    """Watches processes and remembers when each exited (wall clock)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._epoll: select.epoll | None = None
        self._fds: dict[int, int] = {}
        """pidfd -> pid, while it runs."""
        self._exited: dict[int, float] = {}

    def watch(self, pid: int) -> bool:
        """Start watching `pid` (if not watched already); False where the kernel or the platform has no
        pidfds (then nothing is known)."""
        with self._lock:
            if pid in self._fds.values():
                return True
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            return False
        with self._lock:
            self._exited.pop(pid, None)  # a pid handed out again is a new process
            if self._epoll is None:
                self._epoll = select.epoll()
                threading.Thread(target=self._run, name="gradetop-exits", daemon=True).start()
            self._fds[fd] = pid
            self._epoll.register(fd, select.EPOLLIN)
        return True

    def exited_at(self, pid: int, wait_s: float = 0.0) -> float | None:
        """When `pid` exited, if it was watched and has; waits up to `wait_s` for a watched one to be seen
        exiting (for a caller that knows it ended: our thread may not have run yet)."""
        with self._lock:
            if pid in self._fds.values():
                self._lock.wait_for(lambda: pid in self._exited, wait_s)
            return self._exited.get(pid)

    def _run(self) -> None:
        epoll = self._epoll
        while True:
            for fd, _events in epoll.poll():
                now = time.time()
                with self._lock:
                    pid = self._fds.pop(fd, None)
                    if pid is not None:
                        self._exited[pid] = now
                        self._lock.notify_all()
                        if len(self._exited) > 4096:  # a long job's many short children: keep the recent
                            for old in list(self._exited)[:1024]:
                                del self._exited[old]
                epoll.unregister(fd)
                os.close(fd)


EXITS = ExitClock()
"""One for the whole monitor: one thread, however many processes."""
