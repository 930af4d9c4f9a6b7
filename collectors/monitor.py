"""The monitor: runs the samplers on one process tree and feeds one Profile.

Samplers hand records to a queue; one ingest thread joins them into the
model. A stack window is held back until the resource readings have passed
its end, so each sample can be told active or idle from its thread's kernel
counters (a sample reaches the model at most one window + one reading late).
"""

from __future__ import annotations

import queue
import threading
import time

from gradetop.collectors.resources import ResourceSampler
from gradetop.collectors.stacks import StackOptions, StackSampler
from gradetop.model.profile import Profile
from gradetop.model.records import StackBatch

JOIN_WAIT_S = 1.0
"""Longest a stack window waits for resource readings (the process may be gone)."""


class Monitor:
    def __init__(self, profile: Profile, pid: int, stack_options: StackOptions | None = None,
                 resource_hz: float = 10.0, stacks: bool = True) -> None:
        self.profile = profile
        self.pid = pid
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.resources = ResourceSampler(pid, self._queue.put, resource_hz)
        self.stacks = StackSampler(pid, self._queue.put, stack_options) if stacks else None
        self._ingest = threading.Thread(target=self._ingest_loop, name="gradetop-ingest", daemon=True)
        self._stopping = threading.Event()
        self._held: list[tuple[float, StackBatch]] = []
        self.batches = 0
        self.latencies: list[float] = []
        """Seconds from each window's end to its samples being in the model (for the benchmark)."""

    def start(self) -> "Monitor":
        self.resources.start()
        if self.stacks is not None:
            self.stacks.start()
        self._ingest.start()
        return self

    @property
    def target_gone(self) -> bool:
        return self.resources.root_gone.is_set()

    def stop(self) -> None:
        """Flush the last stack window, take a last reading, and ingest everything."""
        if self.stacks is not None:
            self.stacks.stop()
            self.stacks.join()
        self.resources.stop()
        self.resources.join()
        self._stopping.set()
        self._ingest.join()

    def put(self, record) -> None:
        """Hand the model a record from outside the samplers (exit codes, output lines)."""
        self._queue.put(record)

    def _ingest_loop(self) -> None:
        while True:
            try:
                record = self._queue.get(timeout=0.05)
            except queue.Empty:
                record = None
            if record is not None:
                if isinstance(record, StackBatch):
                    self._held.append((time.monotonic(), record))
                else:
                    self.profile.ingest(record)
            self._release_held(force=False)
            if record is None and self._stopping.is_set() and self._queue.empty():
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
        self._held = keep

