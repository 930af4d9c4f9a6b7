"""Sampling CPython processes by reading their interpreters (collectors.cpython): no py-spy run per window.

One thread, the ticker, takes every tick of every process read this way,
at the asked rate with a random jitter (a loop with the sampler's own
period would be seen at the same phase each time), and hands each
process's samples on as a StackBatch every window. A sample carries the
time it was read.

A thread cannot change its stack without running, and the kernel counts
each thread's time on a CPU, its wait for one and its switches onto one
(/proc/PID/task/TID/schedstat): where that line has not changed since the
last tick, the thread's last stack stands, read with one pread and no
walk. A job's many waiting threads and workers then cost next to nothing,
and nothing of the quiet windows or parking that py-spy's windows need.

Thread names come from one `py-spy dump` of the process when a thread it
has not named appears (CPython keeps them in Python objects, not in its
thread states).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from collections.abc import Callable

import numpy as np

from gradetop.collectors.cpython import Interpreter, NotReady, Unsupported
from gradetop.collectors.exits import EXITS
from gradetop.collectors.procmem import ProcessGone, ReadFailed
from gradetop.collectors.pyspy import StackIds
from gradetop.collectors.window import PySpyMissing, find_pyspy
from gradetop.model.records import StackBatch, ThreadSamples

JITTER = 0.5
"""Each tick comes after the period times a uniform factor in [1 - JITTER, 1 + JITTER]."""
NAMES_EVERY_S = 1.0
"""Ask py-spy for thread names at most this often per process, for threads it was asked for already..."""
NEW_NAMES_AFTER_S = 0.25
"""...and for a thread it was not asked for yet (a short-lived helper must be named while it lives)."""
NAME_TRIES = 3
"""Dumps for the same unnamed threads before they are left unnamed."""
FAILED_TICKS_LIMIT = 50
"""Reads that failed in a row (torn every time, or an interpreter being torn down) before giving up."""
LIST_EVERY = 10
"""Ticks between two reads of the thread list, at the most."""
REOPEN_AFTER = 10
"""Reads that failed in a row before the interpreter is looked for again (an exec moves it)."""


class ThreadNames:
    """Python's names of one process's threads, asked of `py-spy dump` in the background."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.names: dict[int, str] = {pid: "MainThread"}
        self._asked = 0.0
        self._asked_for: frozenset[int] = frozenset()
        self._tries = 0
        """Dumps in a row for the same unnamed threads."""
        self._busy = False

    def ask(self, unnamed: frozenset[int]) -> None:
        """Dump the process's threads once more (soon, not now) for threads `unnamed`, unless a dump is under
        way or was just done (NEW_NAMES_AFTER_S ago for a thread not asked for yet, else NAMES_EVERY_S), or
        the last NAME_TRIES were for the same threads. A thread has a thread state before its start puts it
        in `threading`'s table, where its name is, so a dump may come too soon; one py-spy never names (a
        native thread's) is not asked for again and again."""
        now = time.monotonic()
        new = not unnamed <= self._asked_for
        if self._busy or now - self._asked < (NEW_NAMES_AFTER_S if new else NAMES_EVERY_S):
            return
        tries = 1 if new else self._tries + 1
        if tries > NAME_TRIES:
            return
        self._busy, self._asked, self._asked_for, self._tries = True, now, unnamed, tries
        threading.Thread(target=self._dump, name=f"gradetop-names-{self.pid}", daemon=True).start()

    def _dump(self) -> None:
        try:
            out = subprocess.run([find_pyspy(), "dump", "--json", "--nonblocking", "-p", str(self.pid)],
                                 capture_output=True, timeout=10, stdin=subprocess.DEVNULL).stdout
            for thread in json.loads(out or b"[]"):
                if thread.get("os_thread_id") and thread.get("thread_name"):
                    self.names[int(thread["os_thread_id"])] = thread["thread_name"]
        except (OSError, ValueError, subprocess.SubprocessError, PySpyMissing):
            pass
        finally:
            self._busy = False


class DirectReader:
    """One process's sampling state: its interpreter, each thread's last schedstat line and stack, and the
    samples taken since its last batch. Used by the ticker's thread only (after its first tick)."""

    def __init__(self, interpreter: Interpreter, ids: StackIds, emit: Callable[[StackBatch], None],
                 rate_hz: float = 100.0, names: ThreadNames | None = None) -> None:
        self.pid = interpreter.pid
        self.interpreter = interpreter
        self.ids = ids
        self.emit = emit
        self.names = names or ThreadNames(self.pid)
        self.done = threading.Event()
        """Its process ended (its last batch is out), or it was taken off the ticker."""
        self.failure: str | None = None
        """Why it was taken off, where that was an error, not its process's end."""
        self.batches = 0
        self._frames: dict[tuple[int, int], int] = {}
        """(code key, offset) -> frame id."""
        self._stats: dict[int, tuple[int, bytes]] = {}
        """Per thread: an open schedstat file, and the line it read last."""
        self._stacks: dict[int, int] = {}
        """Per thread: its last stack id."""
        self._ticks: list[float] = []
        self._samples: dict[int, tuple[list[int], list[int], list[bool]]] = {}
        """Per thread, since the last batch: (tick indices, stack ids, whether it ran since the tick before)."""
        self._t_start = 0.0
        self._period = 1.0 / rate_hz
        self._failed = 0
        self._unlisted = 0
        """Ticks since the thread list was last read."""

    @property
    def t_start(self) -> float:
        """Where the next batch begins: the first tick, then the last batch's end."""
        return self._t_start

    def first_tick(self, now: float) -> None:
        """Read every thread's stack as it stands at `now`: the batches start here."""
        self._t_start = now
        self._read(now, first=True)

    def tick(self, now: float) -> None:
        """Take one sample of every thread at `now`. Raises ProcessGone when the process has ended."""
        try:
            self._read(now, first=False)
            self._failed = 0
        except (ReadFailed, NotReady):
            # Torn (a thread state freed while read) or the interpreter going away: this tick is lost;
            # the next sample stands for its time.
            self._failed += 1
            if self._failed >= FAILED_TICKS_LIMIT:
                raise ProcessGone(0, f"process {self.pid}'s interpreter can no longer be read") from None
            if self._failed % REOPEN_AFTER == 0:
                self._reopen()

    def _reopen(self) -> None:
        """Find the interpreter afresh: the process may have exec'd another program (a shell script
        that execs Python, a Python that execs itself), whose interpreter lies elsewhere."""
        try:
            interpreter = Interpreter.open(self.pid)
        except NotReady:
            return
        except Unsupported:
            raise ProcessGone(0, f"process {self.pid} is no longer a Python we can read") from None
        except OSError:
            return
        self.interpreter.close()
        self.interpreter = interpreter
        self._frames.clear()  # code keys are the old interpreter's
        self._stacks.clear()  # every thread is walked at the next tick
        for tid in list(self._stats):
            self._unwatch(tid)

    def _read(self, now: float, first: bool) -> None:
        changed = self._changed()
        new: list[int] = []
        self._unlisted += 1
        # The thread list is read again where a thread ran (only a running thread starts another), where
        # one cannot be watched, and every LIST_EVERY ticks (native code may give a thread of its own a
        # thread state, and run Python in it, while every watched thread sleeps).
        if first or changed or len(self._stats) < len(self._stacks) or self._unlisted >= LIST_EVERY:
            self._unlisted = 0
            self.interpreter.new_round()
            threads = self.interpreter.threads()
            new = [tid for tid, _ in threads if tid not in self._stats]
            if new:
                # A new thread's schedstat line is read before its state and stack: read after, a run in
                # between (a process starting up, then asleep) would leave the stack it had before for good.
                for tid in new:
                    self._watch(tid)
                threads = self.interpreter.threads()
            current = set()
            for tid, state in threads:
                current.add(tid)
                # A thread whose schedstat line did not move did not run: its stack stands.
                if first or tid in changed or tid in new or tid not in self._stats:
                    self._stacks[tid] = self._stack(state)
            for tid in set(self._stacks) - current:  # it ended
                del self._stacks[tid]
                self._unwatch(tid)
            unnamed = current - self.names.names.keys()
            if unnamed:
                self.names.ask(frozenset(unnamed))
        if first:
            return
        self._ticks.append(now)
        k = len(self._ticks) - 1
        for tid, stack in self._stacks.items():
            at, stacks, ran = self._samples.setdefault(tid, ([], [], []))
            at.append(k)
            stacks.append(stack)
            ran.append(tid in changed or tid in new or tid not in self._stats)  # new, unwatched: taken as ran

    def _changed(self) -> set[int]:
        """The threads whose schedstat line moved since the last tick, or that ended."""
        moved = set()
        for tid, (fd, last) in self._stats.items():
            try:
                line = os.pread(fd, 64, 0)
            except OSError:  # it ended
                moved.add(tid)
                continue
            if line != last:
                self._stats[tid] = (fd, line)
                moved.add(tid)
        return moved

    def _watch(self, tid: int) -> None:
        try:
            fd = os.open(f"/proc/{self.pid}/task/{tid}/schedstat", os.O_RDONLY)
            self._stats[tid] = (fd, os.pread(fd, 64, 0))
        except OSError:
            if not os.path.exists(f"/proc/{self.pid}"):
                raise ProcessGone(0, f"process {self.pid} has exited") from None
            return

    def _unwatch(self, tid: int) -> None:
        fd, _ = self._stats.pop(tid, (None, None))
        if fd is not None:
            os.close(fd)

    def _stack(self, state: bytes) -> int:
        ids, frames = self.ids, self._frames
        path = []
        for where in reversed(self.interpreter.stack(state)):
            fid = frames.get(where)
            if fid is None:
                fid = frames[where] = ids.frame(self.interpreter.describe(where))
            path.append(fid)
        return ids.stack(tuple(path))

    def flush(self, t_end: float | None = None) -> None:
        """Hand on the samples taken since the last batch, those after `t_end` (its process's end) left out."""
        ticks = np.array(self._ticks, dtype=np.float64)
        ended = t_end
        if ended is not None:
            ticks = ticks[ticks <= ended]
        t_end = float(ticks[-1]) if len(ticks) else self._t_start
        weights = np.diff(ticks, prepend=self._t_start).astype(np.float32)
        if ended is not None and len(ticks) and ended - t_end < 2 * self._period:
            # The stacks of the last tick stand until the process exited (less than a tick later).
            weights[-1] += ended - t_end
            t_end = ended
        names = self.names.names
        threads = []
        for tid, (at, stacks, ran) in self._samples.items():
            at_ = np.array(at, dtype=np.int64)
            keep = at_ < len(ticks)
            stack_of = np.array(stacks, dtype=np.int32)[keep]
            if not len(stack_of):
                continue
            empty = np.array([not self.ids.stacks[s] for s in stack_of.tolist()])
            at_, stack_of = at_[keep][~empty], stack_of[~empty]
            if len(stack_of):
                threads.append(ThreadSamples(self.pid, tid, names.get(tid, ""), ticks[at_], weights[at_],
                                             stack_of=stack_of, ran=np.array(ran, dtype=bool)[keep][~empty]))
        batch = StackBatch(self.pid, self._t_start, t_end, len(ticks), threads=threads, **self.ids.batch_fields())
        self._ticks, self._samples, self._t_start = [], {}, t_end
        self.batches += 1
        self.emit(batch)

    def close(self) -> None:
        for tid in list(self._stats):
            self._unwatch(tid)
        self.interpreter.close()


class Ticker:
    """The thread that samples every DirectReader of one rate and window length."""

    _lock = threading.Lock()
    _running: dict[tuple[float, float], "Ticker"] = {}

    @classmethod
    def of(cls, rate_hz: float, window_s: float) -> "Ticker":
        with cls._lock:
            ticker = cls._running.get((rate_hz, window_s))
            if ticker is None:
                ticker = cls._running[(rate_hz, window_s)] = cls(rate_hz, window_s)
            return ticker

    def __init__(self, rate_hz: float, window_s: float) -> None:
        self.period = 1.0 / rate_hz
        self.window_s = window_s
        self._readers: list[DirectReader] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, reader: DirectReader) -> None:
        with self._changed:
            self._readers.append(reader)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gradetop-ticker", daemon=True)
                self._thread.start()
            self._changed.notify()

    def remove(self, reader: DirectReader) -> None:
        """Take `reader` off (it is stopping): its last samples go out first."""
        with self._changed:
            if reader in self._readers:
                # Its process may have ended: a session stops its samplers when its workflow exits.
                self._end(reader, wait_s=0.0)

    def _run(self) -> None:
        due = time.monotonic()
        window_end: dict[int, float] = {}
        while True:
            with self._changed:
                while not self._readers:
                    self._changed.wait()
                    due = time.monotonic()
            due += self.period * random.uniform(1 - JITTER, 1 + JITTER)
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                due -= wait  # late (a loaded machine): go on from now, not in a burst
            with self._changed:
                for reader in list(self._readers):
                    now = time.time()
                    try:
                        reader.tick(now)
                    except ProcessGone:
                        self._end(reader)
                        continue
                    except Exception as exc:  # one process's fault must not stop the others' sampling
                        reader.failure = f"reading process {reader.pid}'s interpreter failed: {exc}"
                        self._end(reader)
                        continue
                    end = window_end.setdefault(id(reader), now + self.window_s)
                    if now >= end:
                        reader.flush()
                        window_end[id(reader)] = now + self.window_s
                for key in set(window_end) - {id(r) for r in self._readers}:
                    del window_end[key]

    def _end(self, reader: DirectReader, wait_s: float = 0.05) -> None:
        """Take `reader` off, its last samples out. Where its process ended, the kernel says when
        (collectors.exits, waited for up to `wait_s`): its samples after that are not kept."""
        self._readers.remove(reader)
        reader.flush(EXITS.exited_at(reader.pid, wait_s=wait_s))
        reader.close()
        reader.done.set()
