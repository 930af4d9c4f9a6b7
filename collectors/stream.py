"""The agent's wire: snapshot chunks over TCP, with a handshake, a token proof and clock pings.

Every message, both ways, is one chunk as a snapshot file frames it
(model.chunkfile: sync word, length, CRC-32, msgpack), so a stream is
checked exactly as a file is, and what the agent streams after the
handshake *is* a snapshot body (model.snapshot.take_chunks + encode).

The conversation:

    agent  -> challenge {protocol, nonce, host, session, gradetop, token: bool}
    viewer -> hello     {protocol, proof: HMAC-SHA256(token, nonce) or b""}
    agent  -> welcome   {}    or  refused {reason}, then closes
    viewer -> ping {t0}   agent -> pong {t0, t}     (a few times: the clock offset)
    viewer -> start
    agent  -> the whole profile as snapshot chunks, then synced,
              then each flush's chunks, ..., end (the session finished)

The token never crosses the wire (only a proof over a fresh nonce), and
proofs are compared in constant time (hmac.compare_digest). The stream
itself is not encrypted: bind to loopback and reach it through an SSH
tunnel (the default), or use a network you trust.

Must never know what chunks mean (model.snapshot and model.merge do).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct
import time
import zlib
from dataclasses import dataclass

import msgpack

from gradetop.model.chunkfile import MAX_CHUNK, SYNC, pack_chunk

PROTOCOL = 1
DEFAULT_PORT = 7077
PINGS = 8
MAX_MESSAGE = 1 << 30
"""A longer message is damage (or not an agent): no flush comes near it."""
_HEAD = struct.Struct("<4sII")


class StreamError(Exception):
    """The other side is not an agent/viewer, sent a damaged chunk, or went away mid-message."""


class Refused(StreamError):
    """The agent said no (wrong or missing token, another protocol)."""


def send(sock: socket.socket, obj) -> None:
    sock.sendall(pack_chunk(obj))


class MessageReader:
    """Reads whole chunks from a socket; None at a clean end of stream."""

    def __init__(self, sock: socket.socket, max_size: int = MAX_MESSAGE) -> None:
        self._file = sock.makefile("rb", buffering=1 << 16)
        self.max_size = max_size
        """The agent reads a peer it has not yet trusted with a small limit: a hostile length costs nothing."""
        self.bytes_read = 0

    def read(self):
        head = self._file.read(_HEAD.size)
        if not head:
            return None
        if len(head) < _HEAD.size:
            raise StreamError("the connection ended inside a message")
        sync, length, crc = _HEAD.unpack(head)
        if sync != SYNC or length > min(MAX_CHUNK, self.max_size):
            raise StreamError("not a gradetop stream (bad sync word or length)")
        payload = self._file.read(length)
        if len(payload) < length:
            raise StreamError("the connection ended inside a message")
        if zlib.crc32(payload, zlib.crc32(head[4:8])) != crc:
            raise StreamError("a message failed its checksum")
        self.bytes_read += _HEAD.size + length
        try:
            return msgpack.unpackb(payload, raw=False, strict_map_key=False)
        except (ValueError, msgpack.UnpackException) as exc:
            raise StreamError(f"a message could not be decoded ({exc})") from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass


def proof(token: bytes, nonce: bytes) -> bytes:
    return hmac.new(token, nonce, hashlib.sha256).digest()


def check_proof(token: bytes | None, nonce: bytes, given) -> bool:
    """True when no token is asked for, or `given` proves the token (compared in constant time)."""
    if token is None:
        return True
    if not isinstance(given, bytes):
        return False
    return hmac.compare_digest(proof(token, nonce), given)


def new_nonce() -> bytes:
    return os.urandom(16)


def read_token(path: str) -> bytes:
    """The token in a file (surrounding whitespace dropped). OSError or ValueError say why not."""
    with open(path, "rb") as f:
        token = f.read().strip()
    if len(token) < 8:
        raise ValueError(f"the token in {path} is too short (8 characters at least)")
    return token


@dataclass(frozen=True)
class Clock:
    offset: float
    """Seconds to add to the agent's clock to get the viewer's."""
    residual: float
    """How far off `offset` may be: half the shortest round trip."""
    round_trip: float


def clock_offset(pings: list[tuple[float, float, float]]) -> Clock:
    """NTP's estimate from (sent, agent's time, received) triples: the ping with the shortest round trip
    bounds the error best (its agent time lies within that round trip)."""
    t0, t, t2 = min(pings, key=lambda p: p[2] - p[0])
    rtt = max(0.0, t2 - t0)
    return Clock(offset=(t0 + t2) / 2 - t, residual=rtt / 2, round_trip=rtt)


def parse_address(text: str, default_host: str = "127.0.0.1", default_port: int = DEFAULT_PORT,
                  any_port: bool = False) -> tuple[str, int]:
    """`host:port`, `host`, `:port`, `[v6]:port` -> (host, port). ValueError says what is wrong."""
    text = text.strip()
    if not text:
        raise ValueError("an empty address")
    host, port = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"not an address: {text}")
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"not an address: {text}")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    host = host or default_host
    if port is None:
        return host, default_port
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"not a port number: {port!r} in {text}") from None
    if not (0 if any_port else 1) <= number < 65536:
        raise ValueError(f"port out of range: {number} in {text}")
    return host, number


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def now() -> float:
    return time.time()
