"""Snapshot files (format 2): a Profile as an append-only stream of checksummed chunks.

A recording writes its file while it runs (SnapshotWriter): every second or
two, one chunk of each kind that has news (frames, stack nodes, samples,
series, processes, notes, output, phase marks), framed and checksummed by
model.chunkfile and fsynced. A monitor killed at any moment leaves a file
that opens: the torn last chunk is skipped with a warning. When the
recording ends, the file is written once more in one piece (write, fsync,
rename), ending in an "end" chunk.

Both shapes are read by the same loop: chunks apply in order, and tables that
only grow (frames, stack nodes) carry the index they start at, so a gap
(a damaged chunk) is noticed instead of shifting every id after it. Every
id is checked against the size of its table before it is used.

Format 1 files (one msgpack map, no checksums) still open through
model.snapshot_v1. A file of a newer major version is refused with a
message that says so.
"""

from __future__ import annotations

import math
import os
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from gradetop.model.chunkfile import MAGIC, Chunk, pack_chunk, read_chunks
from gradetop.model.gpu import GpuModel
from gradetop.model.gpu_records import from_wire, to_wire
from gradetop.model.journal import Journal
from gradetop.model.processes import ProcessInfo, ThreadInfo
from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import OutputLine, PhaseMark, SamplerNote
from gradetop.model.series import PROCESS_COLUMNS, THREAD_COLUMNS
from gradetop.model.snapshot_errors import SnapshotError
from gradetop.model.snapshot_v1 import read_v1
from gradetop.model.timeline import COLUMNS as TIMELINE_COLUMNS

__all__ = ["FORMAT", "VERSION", "SnapshotError", "SnapshotWriter", "load", "save"]

FORMAT = "gradetop-snapshot"
VERSION = 2
COMPRESS_OVER = 2048
"""Columns larger than this many bytes are zlib-compressed (level 1: ~4x smaller for pid/tid/n, fast)."""

SERIES = {"samples": TIMELINE_COLUMNS, "process_series": PROCESS_COLUMNS, "thread_series": THREAD_COLUMNS}

Progress = Callable[[float], None]


# ---- writing -----------------------------------------------------------------------


def _pack_array(arr: np.ndarray) -> dict:
    data = np.ascontiguousarray(arr).tobytes()
    if len(data) > COMPRESS_OVER:
        return {"dtype": arr.dtype.str, "n": len(arr), "z": zlib.compress(data, 1)}
    return {"dtype": arr.dtype.str, "n": len(arr), "data": data}


def _concat(parts: list[dict], columns: dict) -> dict | None:
    if not parts:
        return None
    return {name: np.concatenate([np.asarray(p[name], dtype=dtype) for p in parts]) for name, dtype in columns.items()}


def take_chunks(profile: Profile, journal: Journal, end_time: float | None = None) -> list[dict]:
    """Chunks for what `journal` holds, moving its cursors past what they cover. Call under profile.lock."""
    meta = profile.meta if end_time is None else replace(profile.meta, end_time=end_time)
    chunks: list[dict] = [{"kind": "meta", "meta": meta.to_dict()}]
    frames = profile.frames.frames
    if len(frames) > journal.frames_written:
        new = frames[journal.frames_written:]
        chunks.append({"kind": "frames", "start": journal.frames_written, "function": [f.function for f in new],
                       "file": [f.file for f in new], "line": [f.line for f in new]})
        journal.frames_written = len(frames)
    nodes = len(profile.stacks)
    if nodes > journal.nodes_written:
        start = journal.nodes_written
        chunks.append({"kind": "stacks", "start": start,
                       "parent": profile.stacks.parent.view()[start:nodes].copy(),
                       "frame": profile.stacks.frame.view()[start:nodes].copy()})
        journal.nodes_written = nodes
    for kind, columns in SERIES.items():
        cols = _concat(getattr(journal, kind), columns)
        if cols is not None and len(cols["t"]):
            chunks.append({"kind": kind, "columns": cols})
    chunks.append({"kind": "processes", "processes": [p.to_dict() for p in profile.processes.values()],
                   "threads": [t.to_dict() for t in profile.threads.values()]})
    if journal.gpu_state is not None:
        chunks.append({"kind": "gpu", "state": journal.gpu_state})
    if journal.gpu:
        chunks.append({"kind": "gpu_records", "items": [to_wire(r) for r in journal.gpu]})
    for kind, fields in (("notes", ("t", "pid", "kind", "message")), ("output", ("t", "stream", "text")),
                         ("marks", ("t", "pid", "tid", "kind", "name"))):
        items = getattr(journal, kind)
        if items:
            chunks.append({"kind": kind, "items": [[getattr(i, f) for f in fields] for i in items]})
    return chunks


def encode(chunk: dict) -> bytes:
    """One chunk on the wire: its arrays packed (outside the profile's lock: compression takes time)."""
    if "columns" in chunk:
        chunk = {**chunk, "columns": {k: _pack_array(v) for k, v in chunk["columns"].items()}}
    elif chunk.get("kind") == "stacks":
        chunk = {**chunk, "parent": _pack_array(chunk["parent"]), "frame": _pack_array(chunk["frame"])}
    return pack_chunk(chunk)


def _header() -> bytes:
    from gradetop._version import __version__

    return MAGIC + pack_chunk({"kind": "header", "format": FORMAT, "version": VERSION, "gradetop": __version__})


def whole_journal(profile: Profile) -> Journal:
    """A journal holding everything the profile has: the body of a file written in one piece."""
    return Journal(samples=[profile.timeline.rows()], process_series=[profile.process_series.rows()],
                   thread_series=[profile.thread_series.rows()], notes=list(profile.notes),
                   output=list(profile.output), marks=list(profile.marks), frames_written=0, nodes_written=1,
                   gpu_state=profile.gpu.to_dict() if profile.gpu.sampled or profile.gpu.state else None)


def save(profile: Profile, path: str | os.PathLike, end_time: float | None = None,
         progress: Progress | None = None) -> None:
    """Write the whole profile atomically (temp file, fsync, rename): a crash leaves the old file or none.

    `end_time` closes the copy at that time while the recording goes on: a file
    saved mid-run is a closed record of what was collected until the save.
    """
    with profile.lock:
        chunks = take_chunks(profile, whole_journal(profile), end_time)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".gradetop-", suffix=".tmp", dir=directory)
    try:
        # mkstemp makes the file private; a snapshot gets the user's usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as out:
            out.write(_header())
            for i, chunk in enumerate(chunks):
                out.write(encode(chunk))
                if progress is not None:
                    progress((i + 1) / len(chunks))
            out.write(pack_chunk({"kind": "end"}))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class SnapshotWriter:
    """Writes a live profile to `path` as it grows; `close` rewrites it in one piece.

    After a write error (disk full, file too large) it stops writing and says
    why in `error`; the profile keeps everything in memory and what reached
    the disk before stays readable.
    """

    def __init__(self, profile: Profile, path: str) -> None:
        self.profile = profile
        self.path = path
        self.error: str | None = None
        self.closed = False
        self._file = open(path, "wb")
        try:
            self._file.write(_header())
        except OSError:
            self._file.close()
            raise
        with profile.lock:
            # Whatever came in before the writer (a profile rarely starts empty) is the first chunk.
            profile.journal = whole_journal(profile)

    def flush(self) -> bool:
        """Write what came in since the last flush, and make it durable. False once writing failed."""
        if self.error is not None or self.closed:
            return False
        profile = self.profile
        with profile.lock:
            journal = profile.journal
            if journal is None:
                return False
            pending = journal.take()
            chunks = take_chunks(profile, pending)
            journal.frames_written, journal.nodes_written = pending.frames_written, pending.nodes_written
        try:
            self._file.write(b"".join(encode(c) for c in chunks))
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            self._fail(exc)
            return False
        return True

    def _fail(self, exc: OSError) -> None:
        self.error = f"cannot write {self.path}: {exc.strerror or exc}; the recording goes on in memory"
        self._stop_streaming()

    def _stop_streaming(self) -> None:
        """No more journal (the profile stops keeping pieces for us) and no more file handle."""
        with self.profile.lock:
            self.profile.journal = None
        try:
            self._file.close()
        except OSError:
            pass

    def close(self, progress: Progress | None = None) -> str | None:
        """Flush, then rewrite the file in one piece. Returns a line for the user when that failed."""
        if self.closed:
            return self.error
        self.flush()
        self.closed = True
        self._stop_streaming()
        try:
            save(self.profile, self.path, progress=progress)
        except OSError as exc:
            if self.error is None:
                return f"cannot finish {self.path} ({exc.strerror or exc}); it holds the recording as streamed"
        else:
            self.error = None
        return self.error


# ---- reading -----------------------------------------------------------------------


def load(path: str | os.PathLike, progress: Progress | None = None) -> Profile:
    """Read a snapshot of any version; warnings about damage it survived go to `profile.warnings`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        raise SnapshotError(f"{path} is a directory, not a gradetop snapshot") from None
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no such file") from None
    except PermissionError:
        raise SnapshotError(f"{path}: permission denied") from None
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data.startswith(MAGIC):
        return _Reader(path, data, progress).read()
    if MAGIC.startswith(data[: len(MAGIC)]) and data:
        raise SnapshotError(f"{path} is truncated: the snapshot ends inside its header")
    return read_v1(data, path)


def _unpack_array(obj: dict, dtype) -> np.ndarray:
    if not isinstance(obj, dict) or np.dtype(obj["dtype"]) != np.dtype(dtype):
        raise ValueError("unexpected column type")
    raw = zlib.decompress(obj["z"], bufsize=min(int(obj["n"]) * np.dtype(dtype).itemsize, 1 << 26) or 1) if "z" in obj else obj["data"]
    arr = np.frombuffer(raw, dtype=dtype)
    if len(arr) != obj["n"]:
        raise ValueError("column length does not match")
    return arr.copy() if "z" not in obj else arr


class _Reader:
    def __init__(self, path, data: bytes, progress: Progress | None) -> None:
        self.path, self.data, self.progress = path, data, progress
        self.profile: Profile | None = None
        self.warnings: list[str] = []
        self.ended = False
        self.torn = False
        self.gap = False
        """A damaged chunk of a growing table was skipped: later ids would be wrong, so stop there."""

    def read(self) -> Profile:
        size = len(self.data)
        for item in read_chunks(self.data):
            if self.progress is not None:
                self.progress(min(1.0, item.offset / size))
            if not isinstance(item, Chunk):
                if self.profile is None:
                    raise SnapshotError(f"{self.path} is damaged: its header cannot be read")
                if item.torn:
                    self.torn = True
                    self.warnings.append(f"{self.path}: the recording was cut off: its last chunk is torn and was "
                                         "skipped; showing what it had written")
                else:
                    self.warnings.append(f"{self.path}: chunk {item.index} at byte {item.offset} is damaged; it was skipped")
                continue
            if self.profile is None:
                self._header(item.body)
                continue
            if self.gap or self.ended:
                continue
            self._apply(item)
        if self.profile is None:
            raise SnapshotError(f"{self.path} is truncated: the snapshot ends inside its header")
        self._close()
        return self.profile

    def _header(self, body) -> None:
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise SnapshotError(f"{self.path} is not a gradetop snapshot")
        version = body.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise SnapshotError(f"{self.path} was written by a newer gradetop ({body.get('gradetop', '?')}, snapshot "
                                f"format {version}; this one reads up to {VERSION}): upgrade gradetop")
        self.profile = Profile()

    def _apply(self, item: Chunk) -> None:
        body = item.body
        kind = body.get("kind") if isinstance(body, dict) else None
        try:
            handler = getattr(self, f"_on_{kind}", None) if isinstance(kind, str) else None
            if handler is not None:  # unknown kinds come from newer minor versions: skip them
                handler(body)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError, OverflowError, zlib.error) as exc:
            growing = kind in ("frames", "stacks")
            self.gap = self.gap or growing
            self.warnings.append(f"{self.path}: chunk {item.index} ({kind}) is invalid ({exc}); "
                                 + ("the file was read up to it" if growing else "it was skipped"))

    def _on_meta(self, body) -> None:
        self.profile.meta = ProfileMeta.from_dict(body["meta"])

    def _on_frames(self, body) -> None:
        frames = self.profile.frames
        if body["start"] != len(frames):
            raise ValueError(f"frames start at {body['start']}, {len(frames)} read so far")
        for function, file, line in zip(body["function"], body["file"], body["line"], strict=True):
            frames.intern(str(function), str(file), int(line))

    def _on_stacks(self, body) -> None:
        stacks = self.profile.stacks
        parent = _unpack_array(body["parent"], np.int32)
        frame = _unpack_array(body["frame"], np.int32)
        start = len(stacks)
        if body["start"] != start or len(parent) != len(frame):
            raise ValueError(f"stack nodes start at {body['start']}, {start} read so far")
        own = np.arange(start, start + len(parent))
        if len(parent) and (np.any(parent < 0) or np.any(parent >= own) or np.any(frame < 0)
                            or np.any(frame >= len(self.profile.frames))):
            raise ValueError("stack node out of range")
        for p, f in zip(parent.tolist(), frame.tolist()):
            stacks.add_node(p, f)

    def _columns(self, body, columns: dict) -> dict:
        cols = {name: _unpack_array(body["columns"][name], dtype) for name, dtype in columns.items()}
        if len({len(v) for v in cols.values()}) > 1:
            raise ValueError("columns of unequal length")
        if not np.all(np.isfinite(cols["t"])):
            raise ValueError("a time that is not a number")
        return cols

    def _on_samples(self, body) -> None:
        cols = self._columns(body, TIMELINE_COLUMNS)
        stack, w = cols["stack"], cols["w"]
        if len(stack) and (stack.min() < 0 or stack.max() >= len(self.profile.stacks)):
            raise ValueError("sample of an unknown stack")
        if len(w) and not (np.all(np.isfinite(w)) and w.min() >= 0 and np.all(cols["active"] <= w + 1e-3)):
            raise ValueError("sample weights out of range")
        self.profile.timeline.append(**cols)

    def _on_process_series(self, body) -> None:
        self.profile.process_series.append(**self._columns(body, PROCESS_COLUMNS))

    def _on_thread_series(self, body) -> None:
        self.profile.thread_series.append(**self._columns(body, THREAD_COLUMNS))

    def _on_processes(self, body) -> None:
        processes = {int(p["pid"]): ProcessInfo.from_dict(p) for p in body["processes"]}
        threads = {(int(t["pid"]), int(t["tid"])): ThreadInfo.from_dict(t) for t in body["threads"]}
        self.profile.processes.update(processes)
        self.profile.threads.update(threads)

    def _on_notes(self, body) -> None:
        self.profile.notes.extend(SamplerNote(*i) for i in body["items"])

    def _on_output(self, body) -> None:
        self.profile.output.extend(OutputLine(*i) for i in body["items"])

    def _on_marks(self, body) -> None:
        self.profile.marks.extend(PhaseMark(*i) for i in body["items"])

    def _on_gpu(self, body) -> None:
        self.profile.gpu = GpuModel.from_dict(body["state"])

    def _on_gpu_records(self, body) -> None:
        for item in body["items"]:
            self.profile.gpu.ingest(from_wire(item))

    def _on_end(self, body) -> None:
        self.ended = True

    def _close(self) -> None:
        profile = self.profile
        if not self.ended and not self.torn:
            self.warnings.append(f"{self.path}: the recording did not finish (gradetop was stopped before it closed "
                                 "the file); showing what it had written")
        if profile.meta.end_time is None or not math.isfinite(profile.meta.end_time):
            # A file is a closed record: its clock stops at the last thing it holds.
            last = [profile.meta.start_time]
            for series in (profile.timeline, profile.process_series):
                if len(series):
                    last.append(float(series.t.max()))
            profile.meta.end_time = max(last)
        profile.warnings = self.warnings
