"""The agent: one node's Session served to any number of viewers over TCP.

A `Hub` is the profile's journal drainer, as a SnapshotWriter is for a file:
once a FLUSH_S it takes what came in (model.snapshot.take_chunks), encodes
it once and queues the same bytes for every viewer. A viewer that joins
gets, at a flush boundary and under the profile's lock, the whole profile
so far, then every later flush: nothing twice, nothing missed.

Each viewer has its own sender thread and a bounded queue. A viewer that
cannot keep up (its queue past MAX_QUEUED_BYTES, or a send stuck for
SEND_TIMEOUT_S) is dropped, never waited for: ingest and the other viewers
go on. It can connect again and gets the whole profile again.

`AgentServer` listens (loopback by default), runs the handshake of
collectors.stream with each connection in its own short thread (a token
proof where a token is set; clock pings), and hands accepted viewers to
the hub. Must never import textual or rich.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable

from gradetop._version import __version__
from gradetop.collectors.background import Background
from gradetop.collectors.stream import (
    PROTOCOL,
    MessageReader,
    StreamError,
    check_proof,
    new_nonce,
    send,
)
from gradetop.model.chunkfile import pack_chunk
from gradetop.model.journal import Journal
from gradetop.model.profile import Profile
from gradetop.model.snapshot import _header as snapshot_header
from gradetop.model.snapshot import encode, save, take_chunks, whole_journal

FLUSH_S = 1.0
MAX_QUEUED_BYTES = 64 << 20
SEND_TIMEOUT_S = 30.0
HANDSHAKE_TIMEOUT_S = 10.0
HANDSHAKE_MAX_BYTES = 4096
"""No message a viewer sends is longer (hello, ping, start)."""


class Viewer:
    """One connected viewer: a socket, a queue of bytes to send, and the thread that sends them."""

    def __init__(self, sock: socket.socket, address: str, on_gone: Callable[["Viewer", str], None]) -> None:
        self.sock = sock
        self.address = address
        self._on_gone = on_gone
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._cond = threading.Condition()
        self._closing = False
        self.gone: str | None = None
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name=f"gradetop-viewer-{address}", daemon=True)

    def start(self) -> "Viewer":
        self.sock.settimeout(SEND_TIMEOUT_S)
        self._thread.start()
        return self

    def send(self, data: bytes, limit: int = MAX_QUEUED_BYTES) -> None:
        """Queue `data`; a viewer too far behind is dropped instead."""
        with self._cond:
            if self.gone is not None or self._closing:
                return
            if self._queue and self._queued + len(data) > limit:
                self._drop(f"too slow (more than {limit >> 20} MiB waiting); dropped")
                return
            self._queue.append(data)
            self._queued += len(data)
            self._cond.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (for up to `timeout`), then close."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        self._drop("closed")

    def _drop(self, why: str) -> None:
        first = False
        with self._cond:
            if self.gone is None:
                self.gone, first = why, True
                self._queue.clear()
                self._cond.notify()
        if first:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            self._on_gone(self, why)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing and self.gone is None:
                    self._cond.wait()
                if self.gone is not None or (not self._queue and self._closing):
                    return
                data = self._queue.popleft()
                self._queued -= len(data)
            try:
                self.sock.sendall(data)
                self.sent += len(data)
            except OSError as exc:
                self._drop(f"went away ({exc.strerror or exc})")
                return


class Hub(Background):
    """Drains the profile's journal once a flush and fans the encoded chunks out to every viewer."""

    def __init__(self, profile: Profile, every_s: float = FLUSH_S, notify: Callable[[str], None] | None = None,
                 output: str | None = None) -> None:
        """`output`: also record to this file, as `record` does (streamed, fsynced each flush, rewritten in one
        piece at the end); OSError when it cannot be opened."""
        super().__init__("gradetop-hub")
        self.profile = profile
        self.output = output
        self.output_error: str | None = None
        self._file = None
        whole: list[dict] = []
        if output is not None:
            self._file = open(output, "wb")
        self.every_s = every_s
        self.notify = notify or (lambda line: None)
        self._viewers: list[Viewer] = []
        self._joining: list[Viewer] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.listeners: list[Callable[[Journal], None]] = []
        """Called at each flush, under the profile's lock, with what it took (the Pyroscope pusher)."""
        self.flushes = 0
        self.bytes_encoded = 0
        self.encode_s = 0.0
        """Seconds spent taking and encoding chunks (the agent's own cost of streaming)."""
        with profile.lock:
            # The hub owns the journal (a Session here has no SnapshotWriter): pieces from now on; what the
            # profile holds already starts the file.
            if self._file is not None:
                whole = take_chunks(profile, whole_journal(profile))
            profile.journal = Journal(frames_written=len(profile.frames), nodes_written=len(profile.stacks))
        if self._file is not None:
            try:
                self._file.write(snapshot_header() + b"".join(encode(c) for c in whole))
            except OSError:
                self._file.close()
                with profile.lock:
                    profile.journal = None
                raise

    @property
    def viewers(self) -> list[Viewer]:
        with self._lock:
            return [v for v in self._viewers + self._joining if v.gone is None]

    def add_viewer(self, viewer: Viewer) -> None:
        """Add a viewer: it gets the whole profile at the next flush, which comes now."""
        with self._lock:
            self._joining.append(viewer)
        self._wake.set()

    def _gone(self, viewer: Viewer, why: str) -> None:
        with self._lock:
            for group in (self._viewers, self._joining):
                if viewer in group:
                    group.remove(viewer)
        if why != "closed":
            self.notify(f"viewer {viewer.address}: {why}")

    def run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.every_s)
            self._wake.clear()
            if self._stopping.is_set():
                return
            self.flush()

    def flush(self, end_time: float | None = None) -> None:
        started = time.perf_counter()
        profile = self.profile
        with self._lock:
            joining, self._joining = self._joining, []
            viewers = list(self._viewers)
        with profile.lock:
            journal = profile.journal
            if journal is None:
                return
            pending = journal.take()
            for listener in self.listeners:
                listener(pending)
            delta = take_chunks(profile, pending, end_time)
            journal.frames_written, journal.nodes_written = pending.frames_written, pending.nodes_written
            whole = take_chunks(profile, whole_journal(profile), end_time) if joining else None
        if viewers or self._file is not None:
            data = b"".join(encode(c) for c in delta)
            self.bytes_encoded += len(data)
            for v in viewers:
                v.send(data)
            self._record(data)
        if joining:
            data = b"".join(encode(c) for c in whole) + pack_chunk({"kind": "synced"})
            self.bytes_encoded += len(data)
            for v in joining:
                v.send(data, limit=max(MAX_QUEUED_BYTES, 2 * len(data)))
            with self._lock:
                self._viewers += [v for v in joining if v.gone is None]
        self.flushes += 1
        self.encode_s += time.perf_counter() - started

    def close(self) -> None:
        """The last flush (after the session finished), an end chunk, and every viewer closed."""
        self.stop()
        self._wake.set()
        self.join(timeout=10)
        self.flush()
        end = pack_chunk({"kind": "end"})
        viewers = self.viewers
        for v in viewers:
            v.send(end, limit=1 << 62)
        for v in viewers:
            v.close()
        if self._file is not None:
            self._file.close()
            self._file = None
            try:
                save(self.profile, self.output)  # in one piece, as a recording ends
            except OSError as exc:
                if self.output_error is None:
                    self.output_error = f"cannot finish {self.output} ({exc.strerror or exc}); it holds the " \
                                        "recording as streamed"
                    self.notify(self.output_error)
        with self.profile.lock:
            self.profile.journal = None


    def _record(self, data: bytes) -> None:
        if self._file is None:
            return
        try:
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            self.output_error = f"cannot write {self.output}: {exc.strerror or exc}; streaming goes on"
            self.notify(self.output_error)
            self._file.close()
            self._file = None


class AgentServer(Background):
    """Listens for viewers, checks each (token, protocol), measures nothing itself: the viewer pings."""

    def __init__(self, host: str, port: int, token: bytes | None = None,
                 notify: Callable[[str], None] | None = None) -> None:
        """Binds now (an address in use is an OSError before anything runs); `serve` starts it."""
        super().__init__("gradetop-agent")
        self.hub: Hub | None = None
        self.token = token
        self.notify = notify or (lambda line: None)
        self.session = uuid.uuid4().hex
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
            self._sock.listen(64)
        except OSError:
            self._sock.close()
            raise
        self._sock.settimeout(0.2)
        self.address = self._sock.getsockname()[:2]
        self.refused = 0

    def serve(self, hub: Hub) -> "AgentServer":
        self.hub = hub
        return self.start()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._greet, args=(conn, f"{peer[0]}:{peer[1]}"), daemon=True,
                             name="gradetop-greet").start()
        self._sock.close()

    def _greet(self, conn: socket.socket, peer: str) -> None:
        conn.settimeout(HANDSHAKE_TIMEOUT_S)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = MessageReader(conn, max_size=HANDSHAKE_MAX_BYTES)
        nonce = new_nonce()
        profile = self.hub.profile
        try:
            send(conn, {"kind": "challenge", "protocol": PROTOCOL, "nonce": nonce, "host": profile.meta.host,
                        "session": self.session, "gradetop": __version__, "token": self.token is not None})
            hello = reader.read()
            if not isinstance(hello, dict) or hello.get("kind") != "hello":
                raise StreamError("no hello")
            if hello.get("protocol") != PROTOCOL:
                self._refuse(conn, f"this agent speaks protocol {PROTOCOL}, the viewer {hello.get('protocol')}: "
                                   "use the same gradetop version on both sides")
                return
            if not check_proof(self.token, nonce, hello.get("proof")):
                why = "wrong token" if hello.get("proof") else "this agent needs a token (--token-file)"
                self._refuse(conn, why)
                self.notify(f"refused viewer {peer}: {why}")
                return
            send(conn, {"kind": "welcome"})
            while True:
                message = reader.read()
                kind = message.get("kind") if isinstance(message, dict) else None
                if kind == "ping":
                    send(conn, {"kind": "pong", "t0": message.get("t0"), "t": time.time()})
                elif kind == "start":
                    break
                else:
                    raise StreamError(f"unexpected {kind!r} in the handshake")
        except (OSError, StreamError):
            conn.close()
            return
        finally:
            reader.close()
        self.hub.add_viewer(Viewer(conn, peer, self.hub._gone).start())

    def _refuse(self, conn: socket.socket, reason: str) -> None:
        self.refused += 1
        try:
            send(conn, {"kind": "refused", "reason": reason})
        except OSError:
            pass
        conn.close()

    def stop(self) -> None:
        super().stop()
