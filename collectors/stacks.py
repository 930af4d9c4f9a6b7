"""The stack sampler of one process: its interpreter read directly where we can, else py-spy in
overlapping windows; streamed as StackBatch records.

A CPython whose layout gradetop knows (collectors.cpython: 3.11 to 3.13) is read
directly, with no py-spy (collectors.direct): one thread ticks for every
such process, and a thread that did not run is not read again. The first
py-spy window of a command gradetop starts hands over to it at its first
tick. Every other process (another Python, --native, --blocking,
--sampler py-spy) is sampled with py-spy windows, as follows.

py-spy writes its samples only when a recording ends, so one recording per
window is run and the next is started before the current one stops: when
the next prints that it is sampling (its first tick), the current gets
SIGINT and flushes at its next tick. Windows therefore cover the wall
clock with no gap (measured in bench/), and a sample reaches the model at
most one window plus a flush after it was taken.

The first window of a command gradetop starts is launched with it, before
the model loads (collectors.launch); the sampler takes it over.

One sampler per process, not py-spy's -s: under -s, children attach
asynchronously after the first tick, so every window would open with a gap
in every child. The monitor starts a sampler for each process it finds.

A child that hardly runs is sampled at a tenth of the rate in longer
windows, and one that does not run at all, or under 1% of a core, is
parked (collectors.quiet).
The process we were asked to watch is always sampled at the full rate: its
phases need the resolution.

Never pause the target by default: py-spy's blocking mode stops every
thread 100 times a second, which slows many-threaded torch jobs 5-15x.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable

import psutil

from gradetop.collectors import scratch
from gradetop.collectors.background import Background
from gradetop.collectors.cpython import Interpreter, NotReady, Unsupported
from gradetop.collectors.direct import DirectReader, Ticker
from gradetop.collectors.exits import EXITS
from gradetop.collectors.procfs import process_cpu_s, process_active_ns, process_stat
from gradetop.collectors.pyspy import StackIds, explain_failure, last_change_s, parse_chrometrace
from gradetop.collectors.quiet import (DOZE_REFRESH_S, DOZE_SHARE, PARK_AFTER_S, LastStacks, parked_batch, ran_little,
                                      usual_stack, wait_while_asleep, wait_while_quiet)
from gradetop.collectors.window import StackOptions, Window, launch
from gradetop.model.records import SamplerNote, StackBatch

START_TIMEOUT_S = 5.0
FLUSH_TIMEOUT_S = 5.0
RETRY_DELAYS_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.0)
"""A young interpreter is not readable at once (PYSPY.md): retry before saying 'not Python'."""


class StackSampler(Background):
    """Samples the stacks of process `pid` in its own thread until stopped or the process ends."""

    def __init__(self, pid: int, emit: Callable[[object], None], options: StackOptions | None = None,
                 command: str | None = None, born: float | None = None, adaptive: bool = False,
                 first_window: tuple[Window | None, str] | None = None) -> None:
        super().__init__(f"gradetop-stacks-{pid}")
        self.pid = pid
        self.emit = emit
        self.options = options or StackOptions()
        self.adaptive = adaptive and self.options.lowers_rate
        """Lower the rate while the process hardly runs (children; never the target itself)."""
        # Read now: a short-lived process may be gone when its failure is told.
        self.command = command or _command_of(pid)
        self.born = born or _start_time(pid)
        self._first, self._tmp = first_window or (None, scratch.new_folder("windows"))
        """A window launched before this sampler (collectors.launch): its first try at attaching."""
        self._seq = 0
        self._ids = StackIds()
        self._tick_s: dict[float, float] = {}
        """Seconds per tick, per asked rate, in the last window we ended ourselves (py-spy's real pace)."""
        self._woke: float | None = None
        """When the current quiet window ended early because its process ran again: the last
        reading that still found it quiet."""
        self._last_stacks: LastStacks | None = None
        """What the last window saw at its end: what stands for a parked process."""
        self._usual_stacks: LastStacks | None = None
        """What each thread showed most through the last quiet window: what stands for a dozing one."""
        self._standing: LastStacks | None = None
        """What stands for the process while it is parked."""
        self.windows = 0
        self.quiet_windows = 0
        self.parked_s = 0.0
        self.sampling = threading.Event()
        self.failure: tuple[str, str] | None = None
        """(kind, message) when the process could never be sampled."""
        self._reader: DirectReader | None = None
        """Where the process is read directly: its reader, on the ticker."""

    def stop(self) -> None:
        super().stop()
        reader = self._reader
        if reader is not None:  # its last samples go out now, and `run` ends with it
            Ticker.of(self.options.rate_hz, self.options.window_s).remove(reader)

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a sampler must never take the monitor down; say what happened
            self.failure = self.failure or ("error", f"stack sampler of process {self.pid} failed: {exc}")
            self.emit(SamplerNote(time.time(), self.pid, "error", self.failure[1]))
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _run(self) -> None:
        if self.options.reads_directly and self._first is None:
            EXITS.watch(self.pid)
            interpreter = self._open_interpreter(retry=True)
            if interpreter is not None:
                self._read_directly(interpreter, None)
                return
        current = self._attach()
        if current is None:
            return
        interpreter = self._open_interpreter(retry=False) if self.options.reads_directly else None
        if interpreter is not None:
            self._read_directly(interpreter, current)
            return
        self.emit(SamplerNote(time.time(), self.pid, "sampling", f"sampling process {self.pid} with py-spy"))
        self.sampling.set()
        while True:
            if self._wait_for_end(current):
                self._finish(current, time.time())
                return
            parking = self._parking(current)
            if parking is not None:
                asleep, ran = parking
                since = time.time()
                self._finish(current, since)
                # Asleep, it cannot have moved: its last stacks stand. Dozing, it may have taken a task at
                # the window's end: what each thread showed most stands.
                self._standing = self._last_stacks if asleep else self._usual_stacks
                woke, refresh = wait_while_asleep(self.pid, since, ran, PARK_AFTER_S, self._stopping, self._cover,
                                                  0.0 if asleep else self.options.quiet_cpu,
                                                  None if asleep else DOZE_REFRESH_S)
                if woke is None:
                    return
                current = self._launch(quiet=refresh)
                if not self._started(current):
                    self._discard(current)  # it woke to end, or we are stopping
                    return
                current.t_from = woke  # what it did since it woke is this window's
                continue
            upcoming = self._launch(quiet=self._is_quiet(current))
            if self._started(upcoming, current):
                if self._woke is not None and self._woke < upcoming.t_start:
                    # The quiet window's few samples saw the stack it slept in; what the process did
                    # since it woke is the new window's: its first samples stand for that time too.
                    upcoming.t_from = max(self._woke, current.t_start)
                self._finish(current, upcoming.t_from)
                current = upcoming
                continue
            # The next window could not start: the target is gone or stopping.
            self._discard(upcoming)
            self._finish(current, time.time())
            return

    def _open_interpreter(self, retry: bool) -> Interpreter | None:
        """The process's interpreter, where it is one we can read (collectors.cpython); else None, and py-spy
        samples it (and says why, where it cannot either). A young one is retried while it starts."""
        for delay in (*(RETRY_DELAYS_S if retry else ()), None):
            try:
                return Interpreter.open(self.pid)
            except NotReady:
                if delay is None or self._stopping.wait(delay):
                    return None
            except (Unsupported, OSError):
                return None
        return None

    def _read_directly(self, interpreter: Interpreter, current: Window | None) -> None:
        """Sample by reading the interpreter (collectors.direct) until the process ends or we stop; a py-spy
        window that was sampling hands over at the first direct tick."""
        reader = DirectReader(interpreter, self._ids, self._emit, self.options.rate_hz)
        try:
            reader.first_tick(time.time())
        except (OSError, NotReady):
            reader.close()
            if current is not None:
                self._finish(current, time.time())
            return
        if current is not None:
            self._finish(current, reader.t_start)
        self.emit(SamplerNote(time.time(), self.pid, "sampling",
                              f"sampling process {self.pid} by reading its interpreter"))
        self.sampling.set()
        ticker = Ticker.of(self.options.rate_hz, self.options.window_s)
        ticker.add(reader)
        self._reader = reader
        if self._stopping.is_set():  # `stop` came before there was a reader to take off
            ticker.remove(reader)
        reader.done.wait()
        self.windows = reader.batches
        if reader.failure:
            self.emit(SamplerNote(time.time(), self.pid, "error", reader.failure))

    def _started(self, window: Window, current: Window | None = None) -> bool:
        """Wait for `window`'s first tick; False if it cannot come (its process or `current` ended,
        we are stopping, py-spy hung)."""
        while not window.started.wait(0.02):
            if (window.proc.poll() is not None or (current is not None and current.stopped.is_set())
                    or self._stopping.is_set() or time.time() - window.t_launch > START_TIMEOUT_S):
                return window.started.is_set()
        return True

    def _wait_for_end(self, window: Window) -> bool:
        """Wait until the next window is due, or a quiet one's process wakes; True when sampling should stop."""
        length = self.options.quiet_window_s if window.quiet else self.options.window_s
        due = window.t_start + length - self.options.lead_s
        self._woke = None
        if not window.quiet:
            return self._stopping.wait(max(0.0, due - time.time())) or window.stopped.is_set()
        stop, self._woke = wait_while_quiet(self.pid, window.t_launch, window.cpu_at_launch, due,
                                            self.options.quiet_cpu, self._stopping, window.stopped,
                                            window.run_ns_at_launch if self._last_stacks is not None else None)
        return stop

    def _is_quiet(self, window: Window) -> bool:
        """Whether the next window may be a quiet one: a child that ran little since `window` began."""
        return (self.adaptive and self._woke is None
                and ran_little(self.pid, window.t_launch, window.cpu_at_launch, self.options.quiet_cpu))

    def _parking(self, window: Window) -> tuple[bool, int] | None:
        """(asleep, what it has run) where the quiet `window`'s process may be parked: asleep, no thread
        ran at all (a whole window, or PARK_AFTER_S of it: collectors.quiet); else dozing, under
        DOZE_SHARE of a core through a whole one. None where it may not (or it ended)."""
        if not (window.quiet and self._woke is None and window.run_ns_at_launch is not None
                and self._last_stacks is not None):
            return None
        run_ns, now = process_active_ns(self.pid), time.time()
        if run_ns is None:
            return None
        if run_ns == window.run_ns_at_launch:
            return True, run_ns
        lasted = now - window.t_launch
        if lasted >= PARK_AFTER_S and run_ns - window.run_ns_at_launch < DOZE_SHARE * 1e9 * lasted:
            return False, run_ns
        return None

    def _cover(self, t0: float, t1: float) -> None:
        """While parked: the standing stacks stand for [t0, t1]."""
        batch = parked_batch(self.pid, self._standing, t0, t1, self.options.quiet_hz, self._ids.batch_fields())
        if batch is not None:
            self.parked_s += t1 - t0
            self._emit(batch)

    def _attach(self) -> Window | None:
        """First window, retried while the target is young; reports why if it never works."""
        failure = None
        EXITS.watch(self.pid)
        for delay in (*RETRY_DELAYS_S, None):
            window, self._first = self._first or self._launch(), None
            while not window.started.wait(0.02):
                if window.proc.poll() is not None or self._stopping.is_set():
                    break
                if time.time() - window.t_launch > START_TIMEOUT_S:
                    window.proc.kill()  # py-spy hung before sampling: try again, or report it
                    break
            if window.started.is_set():
                return window
            if self._stopping.is_set() and window.proc.poll() is None:
                self._discard(window)
                break
            seen, failure = failure, explain_failure(self._read_stderr(window), self.pid)
            gone = failure[0] == "gone"
            if gone:
                failure = self._gone(seen)
            self._discard(window)
            if gone or failure[0] == "permission" or delay is None or self._stopping.wait(delay):
                break
        if failure is not None and failure[0] == "not-python":
            # Still running: name it, as for one that ended (a shell or a compiler is no fault).
            failure = ("not-python", failure[1].replace(f"process {self.pid} ", f"{self._what()} ", 1))
        if failure is not None:
            self.failure = failure
            self.emit(SamplerNote(time.time(), self.pid, *failure))
        return None

    def _what(self) -> str:
        command = self.command if len(self.command) <= 60 else self.command[:59] + "…"
        return f"process {self.pid} ({command or 'command unknown'})"

    def _gone(self, seen: tuple[str, str] | None) -> tuple[str, str]:
        """Why a process that ended before it was read was never sampled: what it was and how long it lived
        (a shell or a compiler run by the workflow is no fault), and 'not a Python process' if py-spy said so."""
        what = self._what()
        lived = f"within {max(0.0, time.time() - self.born):.2f} s of starting" if self.born else "soon after it started"
        if seen is not None and seen[0] == "not-python":
            return "not-python", f"{what} is not a Python process; it exited {lived}"
        return "gone", f"{what} exited before py-spy could read its stacks, {lived}"

    def _launch(self, quiet: bool = False) -> Window:
        self._seq += 1
        output = os.path.join(self._tmp, f"w{self._seq}.json")
        rate_hz = self.options.quiet_hz if quiet else self.options.rate_hz
        cpu = process_cpu_s(self.pid) if self.adaptive else None
        run_ns = process_active_ns(self.pid) if quiet else None
        return launch(self.pid, self.options, output, rate_hz, quiet, cpu, run_ns)

    def _finish(self, window: Window, t_cut: float) -> None:
        """Stop a window, read its file and emit what it saw up to `t_cut`."""
        ended_itself = window.stopped.is_set() or window.proc.poll() is not None
        if window.proc.poll() is None:
            try:
                os.kill(window.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        try:
            window.proc.wait(FLUSH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            window.proc.kill()
            window.proc.wait()
        window.stopped.wait(1.0)
        stopped_at = window.t_end or time.time()
        t_end = min(stopped_at, max(t_cut, window.t_start))
        try:
            with open(window.output, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        if data:
            def parse(until: float):
                return parse_chrometrace(data, self.pid, window.t_start, until, window.rate_hz, window.t_from,
                                         window.traces, window.rate_hz, t_zero=window.t_exec,
                                         ids=self._ids)

            try:
                batch = parse(t_end)
            except ValueError:  # a py-spy killed mid-write (it hung): lose this window, not the sampler
                self._cleanup(window)
                return
            pace = self._tick_s.get(window.rate_hz)
            exited = EXITS.exited_at(self.pid, wait_s=0.2) if ended_itself else None
            if exited is not None:
                # The kernel said when it exited (collectors/exits): the window ends there.
                if exited < t_end:
                    batch = parse(max(exited, window.t_start))
            elif ended_itself and pace and batch.ticks:
                # Its process ended: py-spy takes a while to notice (about 0.1 s), and closes its stacks
                # then. The ticks it took, at the pace of the last full window, say when it ended, or
                # less (threads that ended first count as if they lasted); a process runs to exit,
                # so its last stack change, where later, is nearer.
                ended = window.t_start + batch.ticks * pace
                change = last_change_s(data)
                if change is not None:
                    ended = max(ended, window.t_start + change + 1.0 / window.rate_hz)
                if ended < t_end:
                    batch = parse(ended)
            elif not ended_itself and batch.ticks and t_end > window.t_start:
                self._tick_s[window.rate_hz] = (t_end - window.t_start) / batch.ticks
            self.windows += 1
            self.quiet_windows += window.quiet
            self._last_stacks = [(ts.pid, ts.tid, ts.name, int(ts.stack_of[-1])) for ts in batch.threads
                                 if len(ts.stack_of)]
            if window.quiet:
                self._usual_stacks = [(ts.pid, ts.tid, ts.name, usual_stack(ts))
                                      for ts in batch.threads if len(ts.stack_of)]
            self._emit(batch)
        self._cleanup(window)

    def _emit(self, batch: StackBatch) -> None:
        self.emit(batch)
        self._ids.emitted(batch)

    def _discard(self, window: Window) -> None:
        if window.proc.poll() is None:
            window.proc.kill()
        window.proc.wait()
        self._cleanup(window)

    @staticmethod
    def _read_stderr(window: Window) -> str:
        window.proc.wait()
        try:
            with open(window.stderr_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    @staticmethod
    def _cleanup(window: Window) -> None:
        for path in (window.output, window.stderr_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def _command_of(pid: int) -> str:
    """The command line of `pid`; '' if it cannot be read."""
    try:
        process = psutil.Process(pid)
        return " ".join(process.cmdline()) or process.name()
    except psutil.Error:
        return ""


def _start_time(pid: int) -> float | None:
    stat = process_stat(pid)
    return None if stat is None else stat.create_time
