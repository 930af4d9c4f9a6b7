"""The viewer's side: a link to each agent, all feeding one merged Profile, as one live source.

`RemoteSession` offers what a local Session offers the UI and `record`
(model.source.Source: state, pictures of the profile, the recording), but
its profile is the merge (model.merge) of what every agent streams. Each
`AgentLink` is one long-lived thread: connect, handshake (token proof,
clock pings), then apply every chunk under the profile's lock. An agent
that goes away is a notice and a note in the profile; its data so far is
kept, and the link keeps trying to connect, so the agent re-joins when it
comes back.

The first connection to every agent is made before anything starts, so a
bad address, a closed port or a refused token is one line and a non-zero
exit, not a view of nothing. Must never import textual or rich.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gradetop.collectors.autosave import Autosave
from gradetop.collectors.background import Background
from gradetop.collectors.session import Recorded, start_recording
from gradetop.collectors.stream import (
    PINGS,
    PROTOCOL,
    Clock,
    MessageReader,
    Refused,
    StreamError,
    clock_offset,
    parse_address,
    proof,
    send,
)
from gradetop.model.merge import AgentFeed, Merger
from gradetop.model.records import SamplerNote
from gradetop.model.snapshot import SnapshotWriter
from gradetop.model.source import SourceState

CONNECT_TIMEOUT_S = 5.0
RETRY_S = 1.0


class AgentError(Exception):
    """An agent cannot be reached or refused us: one line for the user."""


@dataclass
class Connection:
    sock: socket.socket
    reader: MessageReader
    host: str
    session: str
    clock: Clock


def connect(host: str, port: int, token: bytes | None, timeout: float = CONNECT_TIMEOUT_S) -> Connection:
    """Connect, prove the token, measure the clock offset and ask for the stream. Raises AgentError."""
    where = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise AgentError(f"cannot reach agent {where}: unknown host ({exc.strerror or exc})") from None
    except OSError as exc:
        raise AgentError(f"cannot reach agent {where}: {exc.strerror or exc}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = MessageReader(sock)
    try:
        challenge = reader.read()
        if not isinstance(challenge, dict) or challenge.get("kind") != "challenge":
            raise StreamError("it did not greet as a gradetop agent does")
        if challenge.get("protocol") != PROTOCOL:
            raise Refused(f"it speaks protocol {challenge.get('protocol')}, this gradetop {PROTOCOL}: "
                          "use the same gradetop version on both sides")
        nonce = challenge.get("nonce") or b""
        send(sock, {"kind": "hello", "protocol": PROTOCOL, "proof": proof(token, nonce) if token else b""})
        answer = reader.read()
        kind = answer.get("kind") if isinstance(answer, dict) else None
        if kind == "refused":
            raise Refused(f"it refused the connection: {answer.get('reason')}")
        if kind != "welcome":
            raise StreamError("no welcome after the hello")
        pings = []
        for _ in range(PINGS):
            t0 = time.time()
            send(sock, {"kind": "ping", "t0": t0})
            pong = reader.read()
            t2 = time.time()
            if not isinstance(pong, dict) or pong.get("kind") != "pong":
                raise StreamError("no pong")
            pings.append((t0, float(pong["t"]), t2))
        send(sock, {"kind": "start"})
        sock.settimeout(None)
    except (StreamError, OSError, KeyError, TypeError, ValueError) as exc:
        reader.close()
        sock.close()
        if isinstance(exc, Refused):
            raise AgentError(f"agent {where}: {exc}") from None
        if isinstance(exc, OSError):
            raise AgentError(f"agent {where}: {exc.strerror or exc}") from None
        if isinstance(exc, StreamError) and "ended" not in str(exc):
            raise AgentError(f"{where} is not a gradetop agent ({exc})") from None
        raise AgentError(f"agent {where} closed the connection during the handshake") from None
    return Connection(sock, reader, str(challenge.get("host", "")), str(challenge.get("session", "")),
                      clock_offset(pings))


class AgentLink(Background):
    """One agent, followed for the whole session: stream, and re-join after it goes away."""

    def __init__(self, address: str, token: bytes | None, feed: AgentFeed, session: "RemoteSession") -> None:
        super().__init__(f"gradetop-link-{address}")
        self.address = address
        self.host, self.port = parse_address(address)
        self.token = token
        self.feed = feed
        self.session = session
        self.connection: Connection | None = None
        self.state = "connecting"
        self.ended = threading.Event()
        self.chunks = 0
        self.bytes = 0
        self.apply_s = 0.0
        """Seconds spent merging this agent's chunks (the viewer's cost of it, for the benchmark)."""

    def open(self) -> None:
        """The first connection, before anything starts: raises AgentError."""
        self.connection = connect(self.host, self.port, self.token)

    def run(self) -> None:
        first = True
        while not self._stopping.is_set():
            if self.connection is None:
                try:
                    self.connection = connect(self.host, self.port, self.token, timeout=2.0)
                except AgentError as exc:
                    if first:
                        self.session.tell(str(exc))
                        first = False
                    self._stopping.wait(RETRY_S)
                    continue
                self.session.tell(f"agent {self.address} ({self.connection.host}) is back; re-joined")
            first = False
            why = self._stream(self.connection)
            self.connection = None
            if self.ended.is_set() or self._stopping.is_set():
                return
            self._set_state("gone")
            self.session.agent_gone(self, why)

    def _stream(self, c: Connection) -> str:
        profile = self.feed.profile
        with profile.lock:
            self.feed.begin(c.session, c.clock.offset, c.clock.residual)
        self._set_state("live")
        try:
            while not self._stopping.is_set():
                body = c.reader.read()
                if body is None:
                    return "the connection closed"
                started = time.perf_counter()
                with profile.lock:
                    kind = self.feed.apply(body, self.chunks)
                self.apply_s += time.perf_counter() - started
                self.chunks += 1
                if kind in ("samples", "synced"):
                    self.session.samples_arrived()
                if kind == "end":
                    self._set_state("ended")
                    self.ended.set()
                    self.session.tell(f"agent {self.address} ({c.host}): its session ended")
                    return "ended"
            return "stopped"
        except (StreamError, OSError) as exc:
            return str(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
        finally:
            self.bytes += c.reader.bytes_read
            c.reader.close()
            try:
                c.sock.close()
            except OSError:
                pass

    def _set_state(self, state: str) -> None:
        self.state = state
        with self.feed.profile.lock:
            self.feed.state = state
            self.feed.merger.refresh_meta()

    def stop(self) -> None:
        super().stop()
        c = self.connection
        if c is not None:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@dataclass(frozen=True)
class RemoteOptions:
    output: str | None = None
    save: bool = True


class RemoteSession(Recorded):
    """Many agents as one live source: the UI and `record` drive it as they drive a local Session."""

    live = True
    spawned = False
    workflow_running = False
    target = None

    def __init__(self, addresses: list[str], token: bytes | None = None, options: RemoteOptions | None = None) -> None:
        if not addresses:
            raise AgentError("no agents given: --agent HOST:PORT or --hostfile FILE")
        options = options or RemoteOptions()
        self.merger = Merger()
        self.profile = self.merger.profile
        self.links = [AgentLink(a, token, self.merger.add(a), self) for a in addresses]
        self.title = f"agents: {', '.join(addresses)}"
        self.path: str | None = (options.output or default_output()) if options.save else None
        self.writer: SnapshotWriter | None = None
        self.notices: list[str] = []
        self._on_samples: Callable[[], None] | None = None
        self._autosave: Autosave | None = None
        self._finished = threading.Event()
        self._finish_lock = threading.Lock()
        self._detached = False

    def open(self) -> "RemoteSession":
        """Connect to every agent now; the first that cannot be reached is an AgentError."""
        try:
            for link in self.links:
                link.open()
        except AgentError:
            self._close_links()
            raise
        return self

    def start(self) -> "RemoteSession":
        self.writer, self._autosave = start_recording(self.profile, self.path, self.notices)
        for link in self.links:
            link.start()
        return self

    # ---- what the links report ---------------------------------------------------------

    def tell(self, line: str) -> None:
        self.notices.append(line)

    def samples_arrived(self) -> None:
        if self._on_samples is not None:
            self._on_samples()

    def agent_gone(self, link: AgentLink, why: str) -> None:
        host = link.feed.meta.host if link.feed.meta else link.address
        line = f"agent {link.address} ({host}) is gone ({why}); its data so far is kept, re-joining when it is back"
        with self.profile.lock:
            note = SamplerNote(time.time(), 0, "agent", line)
            self.profile.notes.append(note)
            if self.profile.journal is not None:
                self.profile.journal.notes.append(note)
        self.tell(line)
        self.samples_arrived()

    # ---- the Source interface ----------------------------------------------------------

    def subscribe(self, on_samples: Callable[[], None]) -> None:
        self._on_samples = on_samples

    def poll(self) -> bool:
        """True once every agent's session ended."""
        return not self._finished.is_set() and all(link.ended.is_set() for link in self.links)

    def failure(self) -> str | None:
        return None

    @property
    def sampling(self) -> bool:
        return self.profile.timeline.samples > 0

    def state(self) -> SourceState:
        if self._finished.is_set():
            return SourceState(False, "detached" if self._detached else "agents ended", ended=True)
        live = sum(link.state == "live" for link in self.links)
        if live == len(self.links):
            return SourceState(True, f"{live} agents" if live > 1 else "agent")
        return SourceState(True, f"{live}/{len(self.links)} agents")


    def read_locals(self, pid: int, tid: int):
        info = self.profile.processes.get(pid)
        where = f" on {info.host}" if info is not None and info.host else ""
        raise LookupError(f"locals are read where the process runs: run 'gradetop dump --locals' there{where}")

    def finish(self, progress=None) -> None:
        with self._finish_lock:
            if self._finished.is_set():
                return
            self._close_links()
            with self.profile.lock:
                ends = [f.meta.end_time + f.offset for f in self.merger.feeds
                        if f.meta is not None and f.meta.end_time is not None]
                everyone = len(ends) == len(self.merger.feeds)
                self.profile.meta.end_time = max(ends) if everyone and ends else time.time()
                self.merger.refresh_meta()
            self._close_recording(progress)
            self._finished.set()

    def _close_links(self) -> None:
        for link in self.links:
            link.stop()
        for link in self.links:
            if link._thread.is_alive():
                link.join(timeout=5)
            elif link.connection is not None:
                link.connection.reader.close()
                link.connection.sock.close()
                link.connection = None

    def detach(self) -> None:
        self._detached = True
        self.finish()

    def stop_workflow(self, grace_s: float = 5.0) -> None:
        self.finish()

    def saved_path(self) -> str | None:
        if self.path is None or self.writer is None:
            return None
        return self.path if os.path.exists(self.path) else None


def default_output() -> str:
    return f"gradetop-agents-{time.strftime('%Y%m%d-%H%M%S')}.gtop"


def read_hostfile(path: str) -> list[str]:
    """One `host[:port]` a line; blank lines and # comments skipped. ValueError/OSError say what is wrong."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    found = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            host, port = parse_address(text)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        found.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if not found:
        raise ValueError(f"{path} names no agents (one host[:port] a line)")
    return found
