"""The monitor: runs the samplers on one process tree and feeds one Profile.

Samplers hand records to a queue; one ingest thread joins them into the
model and starts a stack sampler for each process the resource sampler
finds in the tree (children come and go: pool workers, data loaders). A stack window is held back until the resource readings have passed
its end, so each sample can be told active or idle from its thread's kernel
counters (a sample reaches the model at most one window + one reading late).
"""

from __future__ import annotations

import queue
import shutil
from collections import deque
import threading
import time

from gradetop.collectors.context import context_samplers, stop_all
from gradetop.collectors.markers import MarkerReader, phase_folder_of
from gradetop.collectors.resources import ResourceSampler
from gradetop.collectors.stacks import StackSampler
from gradetop.collectors.window import StackOptions, Window
from gradetop.model.profile import Profile
from gradetop.model.records import ResourceBatch, StackBatch

LATENCIES_KEPT = 10_000
JOIN_WAIT_S = 1.0
"""Longest a stack window waits for resource readings (the process may be gone)."""


class Monitor:
    def __init__(self, profile: Profile, pid: int, stack_options: StackOptions | None = None,
                 resource_hz: float = 10.0, stacks: bool = True, phase_folder: str | None = None,
                 first_window: tuple[Window | None, str] | None = None) -> None:
        self.profile = profile
        self.on_samples = None
        """Called (from the ingest thread) after new samples are in the model: a live UI redraws then."""
        self.pid = pid
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.resources = ResourceSampler(pid, self._queue.put, resource_hz)
        self.context = context_samplers(self._queue.put, self.resources.pids)
        """GPU and host samplers (collectors.context)."""
        # Phase markers: the folder given to a command we started, or the one an attached
        # process was started with.
        folder = phase_folder or phase_folder_of(pid)
        self.markers = MarkerReader(folder, self._queue.put) if folder else None
        self.stack_options = stack_options or StackOptions()
        self.sample_stacks = stacks
        self._first_window = first_window
        """The target's first py-spy window and its folder, launched before the monitor (collectors.launch)."""
        self.samplers: dict[int, StackSampler] = {}
        """Stack sampler per process id, alive or finished (written by the ingest thread only)."""
        self._samplers_lock = threading.Lock()
        self._retired: list[StackSampler] = []
        """Samplers of processes whose pid a later process got."""
        self._ingest = threading.Thread(target=self._ingest_loop, name="gradetop-ingest", daemon=True)
        self._stopping = threading.Event()
        self._ingest_done = threading.Event()
        self._held: list[tuple[float, StackBatch]] = []
        self.batches = 0
        self.latencies: deque[float] = deque(maxlen=LATENCIES_KEPT)
        """Seconds from each window's end to its samples being in the model (the latest, for the benchmark)."""

    def start(self) -> "Monitor":
        self._start_sampler(self.pid)
        self.resources.start()
        for sampler in self.context:
            sampler.start()
        if self.markers is not None:
            self.markers.start()
        self._ingest.start()
        return self

    @property
    def target_gone(self) -> bool:
        return self.resources.root_gone.is_set()

    @property
    def sampling(self) -> bool:
        """Stacks of at least one process are being (or were) read."""
        with self._samplers_lock:
            return any(s.sampling.is_set() for s in self.samplers.values())

    def failure(self) -> str | None:
        """Why no stacks could be read, once every sampler has given up without sampling; else None."""
        with self._samplers_lock:
            samplers = list(self.samplers.values())
        if not samplers or any(s.sampling.is_set() or s.failure is None for s in samplers):
            return None
        root = self.samplers.get(self.pid)
        return (root or samplers[0]).failure[1]

    def _start_sampler(self, pid: int, command: str | None = None, born: float | None = None) -> None:
        if not self.sample_stacks or self._stopping.is_set():
            return
        with self._samplers_lock:
            known = self.samplers.get(pid)
            if known is not None:
                if not (born and known.born and abs(born - known.born) > 0.02):
                    return
                # The kernel gave this pid to a new process: sample it afresh. The old one's sampler
                # stops (its process is gone) and stays for stop() to join.
                known.stop()
                self._retired.append(known)
            # Only children may be sampled at a lower rate while quiet: the target's phases need every tick.
            first, self._first_window = (self._first_window, None) if pid == self.pid else (None, self._first_window)
            sampler = self.samplers[pid] = StackSampler(pid, self._queue.put, self.stack_options, command, born,
                                                        adaptive=pid != self.pid, first_window=first)
        sampler.start()

    def stop(self) -> None:
        """Flush the last stack windows, take a last reading, and ingest everything."""
        self._stopping.set()
        with self._samplers_lock:
            samplers = list(self.samplers.values()) + self._retired
        for sampler in samplers:
            sampler.stop()
        for sampler in samplers:
            sampler.join()
        self._drop_first_window()
        self.resources.stop()
        self.resources.join()
        stop_all(self.context)
        if self.markers is not None:
            self.markers.stop()
            self.markers.join()
        self._ingest_done.set()
        self._queue.put(None)  # wakes the ingest loop now, not at its next 50 ms timeout
        self._ingest.join()

    def _drop_first_window(self) -> None:
        """A first window no sampler took (stacks off, or stopped before the start): py-spy and its folder go."""
        with self._samplers_lock:
            first, self._first_window = self._first_window, None
        if first is None:
            return
        window, folder = first
        if window is not None and window.proc.poll() is None:
            window.proc.kill()
            window.proc.wait()
        shutil.rmtree(folder, ignore_errors=True)

    def put(self, record) -> None:
        """Hand the model a record from outside the samplers (exit codes, output lines)."""
        self._queue.put(record)

    def _ingest_loop(self) -> None:
        while True:
            # Asleep until a record comes, or a held batch's wait for its resources is up.
            wait = max(0.0, self._held[0][0] + JOIN_WAIT_S + 0.01 - time.monotonic()) if self._held else None
            try:
                record = self._queue.get(timeout=wait)
            except queue.Empty:
                record = None
            if record is not None:
                if isinstance(record, StackBatch):
                    self._held.append((time.monotonic(), record))
                else:
                    self.profile.ingest(record)
                if isinstance(record, ResourceBatch) and self.stack_options.subprocesses:
                    for reading in record.processes:
                        self._start_sampler(reading.pid, " ".join(reading.cmdline) or reading.name,
                                            reading.create_time)
            self._release_held(force=False)
            if record is None and self._ingest_done.is_set() and self._queue.empty():
                self._release_held(force=True)
                return

    def _release_held(self, force: bool) -> None:
        if not self._held:
            return
        now = time.monotonic()
        ready_until = self.profile.last_resource_time
        keep = []
        for arrived, batch in self._held:
            if force or batch.t_end <= ready_until or now - arrived > JOIN_WAIT_S:
                self.profile.ingest(batch)
                self.batches += 1
                self.latencies.append(time.time() - batch.t_end)
            else:
                keep.append((arrived, batch))
        released = len(keep) < len(self._held)
        self._held = keep
        if released and self.on_samples is not None:
            self.on_samples()

