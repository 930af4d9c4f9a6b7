"""The whole in-memory model of one monitored workflow.

A Profile takes collector records (model.records) and keeps them as interned
frames, a sample timeline, resource series and process/thread facts. It is
written by one thread (the monitor's ingest loop); readers take `lock` for
the short time it takes to copy what they draw.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from gradetop._version import __version__
from gradetop.model.activity import ActivitySplit, CounterReadings
from gradetop.model.calltree import CallTree, build_tree
from gradetop.model.journal import Journal
from gradetop.model.gpu import GpuModel
from gradetop.model.gpu_records import GPU_RECORDS
from gradetop.model.growable import GrowableArray
from gradetop.model.processes import HOST_PID, MONITOR_PID, PID_STRIDE, ProcessInfo, ThreadInfo
from gradetop.model.records import (
    OutputLine,
    PhaseMark,
    ProcessEnded,
    ResourceBatch,
    SamplerNote,
    StackBatch,
    ThreadSamples,
)
from gradetop.model.series import PROCESS_COLUMNS, THREAD_COLUMNS, Series
from gradetop.model.stacks import StackTable
from gradetop.model.timeline import Timeline

OUTPUT_LINES_KEPT = 10_000
RECENT_THREAD_READINGS = 64
STALE_THREAD_S = 30.0


@dataclass
class ProfileMeta:
    host: str = field(default_factory=socket.gethostname)
    start_time: float = field(default_factory=time.time)
    end_time: float | None = None
    rate_hz: float = 100.0
    command: list[str] = field(default_factory=list)
    target_pid: int | None = None
    mode: str = "record"
    exit_code: int | None = None
    gradetop_version: str = __version__
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ProfileMeta":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class IdSpace:
    """A collector's frame and stack ids (StackBatch.space), mapped: to our frame ids, to our trie nodes."""

    frames: list[int] = field(default_factory=list)
    nodes: GrowableArray = field(default_factory=lambda: GrowableArray(np.int32))


class Profile:
    def __init__(self, meta: ProfileMeta | None = None) -> None:
        self.meta = meta or ProfileMeta()
        self.stacks = StackTable()
        self.timeline = Timeline()
        self.process_series = Series(PROCESS_COLUMNS)
        self.thread_series = Series(THREAD_COLUMNS)
        self.processes: dict[int, ProcessInfo] = {}
        self.threads: dict[tuple[int, int], ThreadInfo] = {}
        self.notes: list[SamplerNote] = []
        self.output: deque[OutputLine] = deque(maxlen=OUTPUT_LINES_KEPT)
        self.marks: list[PhaseMark] = []
        """Phase markers from the workflow, in arrival order."""
        self.gpu = GpuModel()
        """GPUs and the host the job runs on (model.gpu)."""
        self.lock = threading.RLock()
        self.journal: Journal | None = None
        """Set while a snapshot writer streams this profile to disk: it gets every piece as ingested."""
        self.warnings: list[str] = []
        """What reading this profile from a file survived (a torn last chunk, a damaged one)."""
        self._recent_active: dict[tuple[int, int], CounterReadings] = {}
        self._activity = ActivitySplit(self.stacks)
        self._threads_read: dict[int, set[int]] = {}
        """Per process, the threads its last reading had."""
        self._thread_ended: dict[tuple[int, int], float] = {}
        """When a thread ended, by the readings: midway between the last that had it and the first that did not."""
        self.last_resource_time = 0.0
        self.taken_at: float | None = None
        """For a frozen picture (`freeze`), when it was taken: its clock stops there."""
        self._lives: dict[int, list[tuple[float, int]]] = {}
        """(start time, model pid) of each later process that got a pid the kernel had handed out before."""
        self._id_spaces: dict[int, IdSpace] = {}
        """Collectors' lasting frame and stack ids mapped to ours (StackBatch.space)."""

    def freeze(self) -> "Profile":
        """A picture of the profile now that no later ingest can change: views are computed from it
        without holding the lock. Columns share their buffers (appends write past a frozen view's end,
        compaction copies), so this costs a few small copies, not the samples."""
        with self.lock:
            picture = Profile.__new__(Profile)
            picture.meta = replace(self.meta)
            picture.stacks = self.stacks.frozen()
            picture.timeline = self.timeline.frozen()
            picture.process_series = self.process_series.frozen()
            picture.thread_series = self.thread_series.frozen()
            picture.processes = {pid: replace(info) for pid, info in self.processes.items()}
            picture.threads = dict(self.threads)  # ThreadInfo entries are replaced, never changed
            picture.notes = list(self.notes)
            picture.output = deque(self.output, maxlen=self.output.maxlen)
            picture.marks = list(self.marks)
            picture.gpu = self.gpu.frozen()
            picture.lock = threading.RLock()
            picture.journal = None
            picture.warnings = list(self.warnings)
            picture._recent_active = {}
            picture._activity = ActivitySplit(picture.stacks)
            picture._threads_read, picture._thread_ended = {}, {}
            picture._lives = {}
            picture._id_spaces = {}
            picture.last_resource_time = self.last_resource_time
            picture.taken_at = time.time()
        return picture

    @property
    def frames(self):
        return self.stacks.frames

    # ---- ingest -------------------------------------------------------------

    def ingest(self, record) -> None:
        """Take one collector record (any of model.records)."""
        with self.lock:
            record = self._own_pids(record)
            if isinstance(record, StackBatch):
                self._ingest_stacks(record)
            elif isinstance(record, ResourceBatch):
                self._ingest_resources(record)
            elif isinstance(record, ProcessEnded):
                self._ingest_ended(record)
            elif isinstance(record, SamplerNote):
                self._ingest_note(record)
            elif isinstance(record, OutputLine):
                self.output.append(record)
                if self.journal is not None:
                    self.journal.output.append(record)
            elif isinstance(record, PhaseMark):
                self.marks.append(record)
                if self.journal is not None:
                    self.journal.marks.append(record)
            elif isinstance(record, GPU_RECORDS):
                self.gpu.ingest(record)
                if self.journal is not None:
                    self.journal.gpu.append(record)
            else:
                raise TypeError(f"not a collector record: {type(record).__name__}")

    def _model_pid(self, pid: int, t: float) -> int:
        """The model's id of the process that had `pid` at time `t`."""
        model = pid
        for born, alias in self._lives.get(pid, ()):
            if t >= born:
                model = alias
        return model

    def _own_pids(self, record):
        """The record with the model's process ids. A pid the kernel hands out again (a child ended, a new
        one got its number) is a new process: it gets an id of its own, `pid + k * PID_STRIDE` with
        `host_pid` the real one, so its row and samples never join the old one's."""
        if isinstance(record, ResourceBatch):
            procs, changed = [], False
            for p in record.processes:
                model = self._model_pid(p.pid, record.t)
                info = self.processes.get(model)
                if (info is not None and info.create_time and p.create_time
                        and abs(p.create_time - info.create_time) > 0.02):
                    lives = self._lives.setdefault(p.pid, [])
                    model = p.pid + PID_STRIDE * (len(lives) + 1)
                    lives.append((p.create_time, model))
                    self.processes[model] = ProcessInfo(model, p.ppid, list(p.cmdline), host=self.meta.host,
                                                        host_pid=p.pid)
                changed = changed or model != p.pid
                procs.append(p if model == p.pid else replace(p, pid=model))
            return replace(record, processes=procs) if changed else record
        if not self._lives:
            return record
        if isinstance(record, StackBatch):
            pid = self._model_pid(record.pid, record.t_start)
            if pid == record.pid:
                return record
            threads = [replace(ts, pid=self._model_pid(ts.pid, record.t_start)) for ts in record.threads]
            commands = {self._model_pid(k, record.t_start): v for k, v in record.commands.items()}
            return replace(record, pid=pid, threads=threads, commands=commands)
        if isinstance(record, (ProcessEnded, SamplerNote)):
            pid = self._model_pid(record.pid, record.t)
            return record if pid == record.pid else replace(record, pid=pid)
        return record

    def _ingest_stacks(self, batch: StackBatch) -> None:
        node_of = self._nodes_of(batch)
        parts: list[tuple[ThreadSamples, np.ndarray]] = []
        for ts in batch.threads:
            ended = self._thread_ended.get((ts.pid, ts.tid))
            if ended is not None and len(ts.times) and ts.times[-1] >= ended:
                keep = ts.times < ended
                ts = replace(ts, times=ts.times[keep], weights=ts.weights[keep], stack_of=ts.stack_of[keep],
                             ran=None if ts.ran is None else ts.ran[keep])
            if len(ts.times) == 0:
                continue
            nodes = node_of[ts.stack_of]
            parts.append((ts, nodes))
            key = (ts.pid, ts.tid)
            if key not in self.threads or (ts.name and self.threads[key].name != ts.name):
                self.threads[key] = ThreadInfo(ts.pid, ts.tid, ts.name)
            proc = self.processes.get(ts.pid)
            if proc is None:
                cmd = batch.commands.get(ts.pid, "")
                proc = self.processes[ts.pid] = ProcessInfo(ts.pid, 0, cmd.split(), host=self.meta.host)
            if not proc.sampled:
                proc.sampled = True
                proc.why_not_sampled = ""
        if parts:
            # One append for the whole window, threads one after the other: the columns grow once.
            counts = np.array([len(nodes) for _, nodes in parts])
            times = np.concatenate([ts.times for ts, _ in parts])
            weights = np.concatenate([ts.weights for ts, _ in parts])
            nodes = np.concatenate([nodes for _, nodes in parts])
            threads = [(ts.pid, ts.tid) for ts, _ in parts]
            ran = (None if all(ts.ran is None for ts, _ in parts) else
                   np.concatenate([np.ones(len(ts.times), bool) if ts.ran is None else ts.ran for ts, _ in parts]))
            rows = {"t": times,
                    "w": weights,
                    "active": self._activity.active_seconds(self._recent_active, threads, counts, times, weights,
                                                            nodes, ran),
                    "n": np.ones(len(times), dtype=np.uint32),
                    "stack": nodes,
                    "pid": np.repeat(np.array([pid for pid, _ in threads], dtype=np.int32), counts),
                    "tid": np.repeat(np.array([tid for _, tid in threads], dtype=np.int32), counts),
                    "flags": np.zeros(len(times), dtype=np.uint8)}
            self.timeline.append(**rows)
            if self.journal is not None:
                self.journal.samples.append(rows)
        proc = self.processes.get(batch.pid)
        if proc is not None:
            span = max(0.0, batch.t_end - batch.t_start)
            asked_hz = batch.asked_hz or self.meta.rate_hz
            proc.sampled_s += span
            if asked_hz < self.meta.rate_hz:
                proc.quiet_s += span
            if batch.parked:
                proc.parked_s += span  # nothing asked of py-spy: no ticks to count
            else:
                proc.ticks += batch.ticks
                proc.asked_ticks += span * asked_hz
        self.timeline.compact()

    def _nodes_of(self, batch: StackBatch) -> np.ndarray:
        """Our trie node of each stack id the batch may use. A collector's ids are mapped once per run,
        kept per id space: what an earlier window named costs nothing more."""
        if batch.space:
            space = self._id_spaces.get(batch.space)
            if space is None:
                space = self._id_spaces[batch.space] = IdSpace()
        else:
            space = IdSpace()
        frames, intern = space.frames, self.frames.intern
        if len(frames) < batch.first_frame:  # never for a collector's batches, which come in order
            frames.extend([intern("<frame lost>", "", 0)] * (batch.first_frame - len(frames)))
        for k, (func, file, line) in enumerate(batch.frames, start=batch.first_frame):
            if k == len(frames):
                frames.append(intern(func, file, line))
        known = len(space.nodes)
        if known < batch.first_stack:
            lost = self.stacks.intern([intern("<stack lost>", "", 0)])
            space.nodes.extend(np.full(batch.first_stack - known, lost))
            known = batch.first_stack
        new = [self.stacks.intern_path(tuple([frames[f] for f in stack]))
               for stack in batch.stacks[known - batch.first_stack:]]
        if new:
            space.nodes.extend(new)
        return space.nodes.view()

    def _ingest_resources(self, batch: ResourceBatch) -> None:
        procs = batch.processes
        # The machine and gradetop itself ride on the root's reading; they become rows of their own
        # pseudo pids (model.processes), never processes of the workflow.
        extra = [(pid, cpu, cores) for p in procs if p.host_busy_s >= 0
                 for pid, cpu, cores in ((HOST_PID, p.host_busy_s, p.host_cores), (MONITOR_PID, p.monitor_cpu_s, 0))
                 if cpu >= 0]
        if procs:
            # Lists, not arrays: the columns convert them once (a reading is a few rows, and each
            # conversion costs about as much as the append).
            rows = {
                "t": [batch.t] * (len(procs) + len(extra)),
                "pid": [p.pid for p in procs] + [e[0] for e in extra],
                "cpu_s": [p.cpu_s for p in procs] + [e[1] for e in extra],
                "rss": [p.rss for p in procs] + [0] * len(extra),
                "read_bytes": [p.read_bytes for p in procs] + [-1] * len(extra),
                "write_bytes": [p.write_bytes for p in procs] + [-1] * len(extra),
                "threads": [p.num_threads for p in procs] + [e[2] for e in extra],
            }
            self.process_series.add(rows)
            if self.journal is not None:
                self.journal.process_series.append(rows)
        pids, tids, cpus, actives = [], [], [], []
        for p in procs:
            info = self.processes.get(p.pid)
            if info is None:
                info = self.processes[p.pid] = ProcessInfo(p.pid, p.ppid, list(p.cmdline), host=self.meta.host)
            info.ppid = p.ppid
            info.name = p.name
            info.rank, info.local_rank, info.world_size = p.ranks
            info.create_time = p.create_time
            if p.cmdline:
                info.cmdline = list(p.cmdline)
            self._note_thread_ends(p.pid, set(p.thread_times), batch.t)
            pids.extend([p.pid] * len(p.thread_times))
            tids.extend(p.thread_times)
            readings = self._recent_active
            for tid, (cpu_s, active_s) in p.thread_times.items():
                cpus.append(cpu_s)
                actives.append(active_s)
                recent = readings.get((p.pid, tid))
                if recent is None:
                    recent = readings[(p.pid, tid)] = CounterReadings(RECENT_THREAD_READINGS)
                recent.append(batch.t, active_s)
        if pids:
            rows = {"t": [batch.t] * len(pids), "pid": pids, "tid": tids, "cpu_s": cpus, "active_s": actives}
            self.thread_series.add(rows)
            if self.journal is not None:
                self.journal.thread_series.append(rows)
        self.last_resource_time = batch.t
        self._forget_stale_threads(batch.t)

    def _note_thread_ends(self, pid: int, tids: set[int], t: float) -> None:
        """A thread read before and missing from this reading ended in between: py-spy keeps its last
        stack open until its window closes, so its samples past then are cut (`_ingest_stacks`)."""
        before = self._threads_read.get(pid, set())
        if tids:  # an empty reading is a failed read, not every thread ending
            for tid in before - tids:
                recent = self._recent_active.get((pid, tid))
                if recent:
                    self._thread_ended[(pid, tid)] = (recent.last_time + t) / 2
            for tid in tids - before:
                self._thread_ended.pop((pid, tid), None)  # a thread id handed out again
            self._threads_read[pid] = tids

    def _forget_stale_threads(self, now: float) -> None:
        """Drop join state of threads unread for a while: their last windows are in by then."""
        if len(self._recent_active) < 256:
            return
        stale = [k for k, r in self._recent_active.items() if r and now - r.last_time > STALE_THREAD_S]
        for key in stale:
            del self._recent_active[key]
            self._activity.forget(key)
            self._thread_ended.pop(key, None)

    def _ingest_ended(self, ended: ProcessEnded) -> None:
        info = self.processes.get(ended.pid)
        if info is None:
            info = self.processes[ended.pid] = ProcessInfo(ended.pid, 0, [], host=self.meta.host)
        # The first report of an end is the nearest to it (the resource sampler sees it within
        # 0.1 s; the exit status may come later from whoever reaped the process).
        info.end_time = ended.t if info.end_time is None else min(info.end_time, ended.t)
        if ended.exit_code is not None:
            info.exit_code = ended.exit_code

    def _ingest_note(self, note: SamplerNote) -> None:
        self.notes.append(note)
        if self.journal is not None:
            self.journal.notes.append(note)
        info = self.processes.get(note.pid)
        if info is not None and note.kind in ("not-python", "permission", "error", "gone") and not info.sampled:
            info.why_not_sampled = note.message

    # ---- derived views ----------------------------------------------------------

    def tree(self, t0=None, t1=None, pids=None, tids=None, weight: str = "w") -> CallTree:
        """The calling-context tree of a slice of the run (wall or on-CPU seconds)."""
        with self.lock:
            rows = self.timeline.rows(self.timeline.select(t0, t1, pids, tids))
            return build_tree(self.stacks, rows, weight)

    @property
    def duration_s(self) -> float:
        return max(0.0, self.now - self.meta.start_time)

    @property
    def now(self) -> float:
        """The end of what this profile holds: its end, the moment a picture was taken, or now."""
        if self.meta.end_time is not None:
            return self.meta.end_time
        return self.taken_at if self.taken_at is not None else time.time()

    @property
    def achieved_rate_hz(self) -> float:
        """The asked rate times the share of asked ticks py-spy made (quiet children ask fewer)."""
        ticks = sum(p.ticks for p in self.processes.values())
        asked = sum(p.asked_ticks for p in self.processes.values())
        if asked > 0 and self.meta.rate_hz > 0:
            return self.meta.rate_hz * ticks / asked
        seconds = sum(p.sampled_s for p in self.processes.values())
        return ticks / seconds if seconds > 0 else 0.0

    @property
    def asked_ticks(self) -> float:
        """Ticks the windows asked for, all processes (from seconds x rate in files without the field)."""
        return sum(p.asked_ticks or p.sampled_s * self.meta.rate_hz for p in self.processes.values())

    @property
    def coverage(self) -> float:
        """Share of the target's life (within the profile) that its sampling windows cover."""
        root = self.processes.get(self.meta.target_pid)
        if root is None:
            return 0.0
        end = root.end_time or self.now
        life = end - max(self.meta.start_time, root.create_time or 0.0)
        return min(1.0, root.sampled_s / life) if life > 0 else 0.0

    @property
    def nbytes(self) -> int:
        return self.timeline.nbytes + self.process_series.nbytes + self.thread_series.nbytes + self.gpu.nbytes
