"""One model of many agents: each agent's snapshot chunks applied into one merged Profile.

An agent (`gradetop agent`, one per node) streams its profile as the chunks
of a snapshot file (model.snapshot): the whole profile when a viewer joins,
then what each flush added. A viewer applies the chunks of every agent into
ONE Profile, so everything that reads a Profile (the UI, `report`, exports,
`save`) works on a multi-node job unchanged, and a snapshot of it holds
every host in one file.

What is remapped, per agent (an `AgentFeed`):
- frames are interned into the merged frame table, stack nodes into the
  merged trie (a stack seen on two hosts is one node: the flame adds them);
- process ids get `index * PID_STRIDE` added (pids collide across hosts);
  `ProcessInfo.host` names the host and `ProcessInfo.host_pid` keeps the pid
  its users see. Agent 0's pids are unchanged, so one agent looks as local;
- times get the agent's clock offset added (measured at connect, NTP-style,
  by the caller), so samples of all hosts line up on the viewer's clock.

On a re-join the agent sends everything again: rows the feed already holds
(per process, up to the last sample time it saw) are skipped until the
agent says the catch-up is over ("synced").

Every id is checked against the agent's own tables before it is used, as
the file reader does (it is the same _Reader, with other handlers).
Callers hold `profile.lock` around `apply`. Must never do I/O.
"""

from __future__ import annotations

import numpy as np

from gradetop.model.chunkfile import Chunk
from gradetop.model.processes import PID_STRIDE, ProcessInfo, ThreadInfo
from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import OutputLine, PhaseMark, SamplerNote
from gradetop.model.series import PROCESS_COLUMNS, THREAD_COLUMNS
from gradetop.model.snapshot import _Reader, _unpack_array
from gradetop.model.timeline import COLUMNS as TIMELINE_COLUMNS

__all__ = ["PID_STRIDE", "AgentFeed", "Merger"]

MAX_AGENTS = (1 << 31) // PID_STRIDE - 1
"""Merged pids stay within the timeline's int32 pid column."""


class Merger:
    """The merged profile and a feed per agent."""

    def __init__(self, profile: Profile | None = None) -> None:
        self.profile = profile or Profile(ProfileMeta(mode="agents", host=""))
        self.feeds: list[AgentFeed] = []

    def add(self, name: str) -> "AgentFeed":
        if len(self.feeds) >= MAX_AGENTS:
            raise ValueError(f"at most {MAX_AGENTS} agents in one view")
        feed = AgentFeed(self, len(self.feeds), name)
        self.feeds.append(feed)
        return feed

    def refresh_meta(self) -> None:
        """The merged meta from the agents': every host, the earliest start, the first command. Under the lock."""
        meta = self.profile.meta
        known = [f for f in self.feeds if f.meta is not None]
        hosts = []
        for f in known:
            if f.meta.host not in hosts:
                hosts.append(f.meta.host)
        meta.host = ",".join(hosts)
        if known:
            meta.start_time = min(f.meta.start_time + f.offset for f in known)
            first = known[0]
            meta.command = list(first.meta.command)
            meta.rate_hz = first.meta.rate_hz
            meta.target_pid = None if first.meta.target_pid is None else first.meta.target_pid + first.pid_base
            options = dict(first.meta.options)
            options["agents"] = [f.describe() for f in self.feeds]
            meta.options = options


class AgentFeed(_Reader):
    """What one agent sent, applied into the merged profile with its ids, pids and clock remapped."""

    def __init__(self, merger: Merger, index: int, name: str) -> None:
        super().__init__(name, b"", None)
        self.merger = merger
        self.profile = merger.profile
        self.index = index
        self.name = name
        """The address the viewer knows it by (host:port)."""
        self.pid_base = index * PID_STRIDE
        self.offset = 0.0
        """Seconds to add to the agent's clock to get the viewer's."""
        self.residual = 0.0
        """How far `offset` may be off (half the best round trip), seconds."""
        self.meta: ProfileMeta | None = None
        self.session = ""
        """The agent's session id: a re-join of the same session skips what was already applied."""
        self.state = "connecting"
        self.chunks = 0
        self._last_sample_t: dict[int, float] = {}
        self._last_series_t = {"process_series": -np.inf, "thread_series": -np.inf}
        self._last_item_t = {"notes": -np.inf, "output": -np.inf, "marks": -np.inf}
        self._catching_up = False
        self.begin("", 0.0, 0.0)

    def describe(self) -> dict:
        return {"address": self.name, "host": self.meta.host if self.meta else "", "index": self.index,
                "pid_base": self.pid_base, "clock_offset_s": round(self.offset, 6),
                "clock_residual_s": round(self.residual, 6), "state": self.state}

    def begin(self, session: str, offset: float, residual: float) -> None:
        """A new connection: the agent will send its whole profile again, with its own ids from zero."""
        self._catching_up = bool(self.session) and session == self.session
        self.session = session
        self.offset, self.residual = offset, residual
        self.frame_map: list[int] = []
        self.node_map = np.zeros(1, dtype=np.int32)
        self.gap = self.ended = False

    def apply(self, body: dict, index: int = 0) -> str | None:
        """Apply one chunk body; returns its kind. Damage is a warning in `warnings`, as in a file."""
        kind = body.get("kind") if isinstance(body, dict) else None
        if kind == "synced":
            self._catching_up = False
            return kind
        if self.gap:
            return kind
        self.chunks += 1
        self._apply(Chunk(index, 0, body))
        return kind

    # ---- handlers (called by _Reader._apply, which turns bad input into a warning) ----

    def _on_meta(self, body) -> None:
        self.meta = ProfileMeta.from_dict(body["meta"])
        self.merger.refresh_meta()

    def _on_frames(self, body) -> None:
        if body["start"] != len(self.frame_map):
            raise ValueError(f"frames start at {body['start']}, {len(self.frame_map)} read so far")
        intern = self.profile.frames.intern
        for function, file, line in zip(body["function"], body["file"], body["line"], strict=True):
            self.frame_map.append(intern(str(function), str(file), int(line)))

    def _on_stacks(self, body) -> None:
        parent = _unpack_array(body["parent"], np.int32)
        frame = _unpack_array(body["frame"], np.int32)
        start = len(self.node_map)
        if body["start"] != start or len(parent) != len(frame):
            raise ValueError(f"stack nodes start at {body['start']}, {start} read so far")
        own = np.arange(start, start + len(parent))
        if len(parent) and (np.any(parent < 0) or np.any(parent >= own) or np.any(frame < 0)
                            or np.any(frame >= len(self.frame_map))):
            raise ValueError("stack node out of range")
        mapped = np.empty(len(parent), dtype=np.int32)
        nodes = self.node_map
        child = self.profile.stacks.child
        frame_map = self.frame_map
        for i, (p, f) in enumerate(zip(parent.tolist(), frame.tolist())):
            mp = nodes[p] if p < start else mapped[p - start]
            mapped[i] = child(int(mp), frame_map[f])
        self.node_map = np.concatenate([nodes, mapped])

    def _keep_new(self, cols: dict, last: dict[int, float]) -> dict:
        """On a re-join, drop rows of each process up to the last time already applied."""
        if not self._catching_up or not len(cols["t"]):
            return cols
        seen = np.array([last.get(int(p), -np.inf) for p in cols["pid"]])
        keep = cols["t"] > seen
        return {k: v[keep] for k, v in cols.items()}

    def _on_samples(self, body) -> None:
        cols = self._columns(body, TIMELINE_COLUMNS)
        stack, w = cols["stack"], cols["w"]
        if len(stack) and (stack.min() < 0 or stack.max() >= len(self.node_map)):
            raise ValueError("sample of an unknown stack")
        if len(w) and not (np.all(np.isfinite(w)) and w.min() >= 0 and np.all(cols["active"] <= w + 1e-3)):
            raise ValueError("sample weights out of range")
        cols = dict(cols)
        cols["t"] = cols["t"] + self.offset
        cols["pid"] = (cols["pid"].astype(np.int64) % PID_STRIDE + self.pid_base).astype(np.int32)
        cols = self._keep_new(cols, self._last_sample_t)
        if not len(cols["t"]):
            return
        cols["stack"] = self.node_map[cols["stack"]]
        for p in np.unique(cols["pid"]).tolist():
            t = float(cols["t"][cols["pid"] == p].max())
            self._last_sample_t[p] = max(self._last_sample_t.get(p, -np.inf), t)
        profile = self.profile
        profile.timeline.append(**cols)
        if profile.journal is not None:
            profile.journal.samples.append(cols)
        profile.timeline.compact()

    def _series(self, kind: str, body, columns: dict) -> None:
        cols = dict(self._columns(body, columns))
        cols["t"] = cols["t"] + self.offset
        cols["pid"] = (cols["pid"].astype(np.int64) % PID_STRIDE + self.pid_base).astype(np.int32)
        if self._catching_up:
            keep = cols["t"] > self._last_series_t[kind]
            cols = {k: v[keep] for k, v in cols.items()}
        if not len(cols["t"]):
            return
        self._last_series_t[kind] = max(self._last_series_t[kind], float(cols["t"].max()))
        series = getattr(self.profile, kind)
        series.append(**cols)
        if self.profile.journal is not None:
            getattr(self.profile.journal, kind).append(cols)
        series.thin()

    def _on_process_series(self, body) -> None:
        self._series("process_series", body, PROCESS_COLUMNS)

    def _on_thread_series(self, body) -> None:
        self._series("thread_series", body, THREAD_COLUMNS)

    def _pid(self, pid: int) -> int:
        return int(pid) % PID_STRIDE + self.pid_base

    def _on_processes(self, body) -> None:
        host = self.meta.host if self.meta is not None else self.name
        for p in body["processes"]:
            info = ProcessInfo.from_dict(p)
            real = info.pid % PID_STRIDE  # a reused pid's later process is above PID_STRIDE (model.profile)
            info.host_pid = real
            info.pid = self._pid(real)
            info.ppid = self._pid(info.ppid) if info.ppid else 0
            info.host = info.host or host
            info.create_time = info.create_time + self.offset if info.create_time else info.create_time
            if info.end_time is not None:
                info.end_time += self.offset
            self.profile.processes[info.pid] = info
        for t in body["threads"]:
            info = ThreadInfo.from_dict(t)
            info.pid = self._pid(info.pid)
            self.profile.threads[(info.pid, info.tid)] = info

    def _items(self, kind: str, items, make) -> None:
        made = [make(i) for i in items]
        if self._catching_up:
            made = [m for m in made if m.t > self._last_item_t[kind]]
        if not made:
            return
        self._last_item_t[kind] = max(self._last_item_t[kind], max(m.t for m in made))
        getattr(self.profile, kind).extend(made)
        if self.profile.journal is not None:
            getattr(self.profile.journal, kind).extend(made)

    def _on_notes(self, body) -> None:
        self._items("notes", body["items"], lambda i: SamplerNote(float(i[0]) + self.offset, self._pid(i[1]), *i[2:]))

    def _on_output(self, body) -> None:
        self._items("output", body["items"], lambda i: OutputLine(float(i[0]) + self.offset, *i[1:]))

    def _on_marks(self, body) -> None:
        self._items("marks", body["items"],
                    lambda i: PhaseMark(float(i[0]) + self.offset, self._pid(i[1]), *i[2:]))

    def _on_end(self, body) -> None:
        self.ended = True
