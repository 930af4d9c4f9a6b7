"""Snapshot files: a Profile saved as a stream of msgpack objects.

Layout: a header map {"format": "gradetop-snapshot", "version": N, ...}, then
chunks, each a map with a "kind". Version 1 writes one "profile" chunk; the
stream shape leaves room for appending chunks while recording. Readers take
unknown fields with defaults, so files from older versions keep opening, and
refuse files of a newer version with a message that says so.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque

import msgpack
import numpy as np

from gradetop.model.gpu import GpuModel
from gradetop.model.processes import ProcessInfo, ThreadInfo
from gradetop.model.profile import OUTPUT_LINES_KEPT, Profile, ProfileMeta
from gradetop.model.records import OutputLine, PhaseMark, SamplerNote

FORMAT = "gradetop-snapshot"
VERSION = 1

# Timeline columns that a file may lack, and what they mean when absent.
TIMELINE_DEFAULTS = {
    "active": lambda cols: cols["w"],
    "n": lambda cols: np.ones(len(cols["t"]), dtype=np.uint32),
    "flags": lambda cols: np.zeros(len(cols["t"]), dtype=np.uint8),
}


class SnapshotError(Exception):
    """A file that cannot be read as a snapshot; the message is one line for the user."""


def _pack_array(arr: np.ndarray) -> dict:
    arr = np.ascontiguousarray(arr)
    return {"dtype": arr.dtype.str, "data": arr.tobytes()}


def _unpack_array(obj: dict) -> np.ndarray:
    return np.frombuffer(obj["data"], dtype=np.dtype(obj["dtype"])).copy()


def _pack_columns(cols: dict[str, np.ndarray]) -> dict:
    return {name: _pack_array(values) for name, values in cols.items()}


def to_chunks(profile: Profile) -> tuple[dict, list[dict]]:
    """The header and chunks of a snapshot of `profile` (taken under its lock)."""
    with profile.lock:
        frames = profile.frames.frames
        tree = profile.tree()
        body = {
            "kind": "profile",
            "meta": profile.meta.to_dict(),
            "frames": {
                "function": [f.function for f in frames],
                "file": [f.file for f in frames],
                "line": [f.line for f in frames],
            },
            "tree": {
                "parent": _pack_array(profile.stacks.parent.view()),
                "frame": _pack_array(profile.stacks.frame.view()),
                # Whole-run weights: enough to draw the flame of a file without the timeline.
                "self_s": _pack_array(tree.self_s),
                "self_n": _pack_array(tree.self_n),
            },
            "timeline": _pack_columns(profile.timeline.rows()),
            "process_series": _pack_columns(profile.process_series.rows()),
            "thread_series": _pack_columns(profile.thread_series.rows()),
            "processes": [p.to_dict() for p in profile.processes.values()],
            "threads": [t.to_dict() for t in profile.threads.values()],
            "notes": [[n.t, n.pid, n.kind, n.message] for n in profile.notes],
            "output": [[o.t, o.stream, o.text] for o in profile.output],
            "marks": [[m.t, m.pid, m.tid, m.kind, m.name] for m in profile.marks],
            "gpu": profile.gpu.to_dict(),
        }
    header = {"format": FORMAT, "version": VERSION, "gradetop": profile.meta.gradetop_version}
    return header, [body]


def save(profile: Profile, path: str | os.PathLike) -> None:
    """Write atomically: a crash mid-write leaves the old file (or none), never half a file."""
    header, chunks = to_chunks(profile)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".gradetop-", suffix=".tmp", dir=directory)
    try:
        # mkstemp makes the file private; a snapshot gets the user's usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as out:
            packer = msgpack.Packer(use_bin_type=True)
            out.write(packer.pack(header))
            for chunk in chunks:
                out.write(packer.pack(chunk))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load(path: str | os.PathLike) -> Profile:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        raise SnapshotError(f"{path} is a directory, not a gradetop snapshot") from None
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no such file") from None
    except PermissionError:
        raise SnapshotError(f"{path}: permission denied") from None
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(data)
    try:
        header = next(unpacker)
    except StopIteration:
        raise SnapshotError(f"{path} is empty or truncated: not a complete gradetop snapshot") from None
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError):
        raise SnapshotError(f"{path} is not a gradetop snapshot") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SnapshotError(f"{path} is not a gradetop snapshot")
    version = header.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise SnapshotError(
            f"{path} was written by a newer gradetop (snapshot format {version}; this one reads up to {VERSION}): upgrade gradetop"
        )
    profile = None
    try:
        for chunk in unpacker:
            if isinstance(chunk, dict) and chunk.get("kind") == "profile":
                profile = _profile_from_chunk(chunk)
    except msgpack.OutOfData:
        raise SnapshotError(f"{path} is truncated: the snapshot ends before its data") from None
    except (msgpack.UnpackException, ValueError, TypeError, KeyError, IndexError, AttributeError):
        # Whatever a damaged body does to the readers below, the user hears one thing.
        raise SnapshotError(f"{path} is damaged: a gradetop snapshot whose body cannot be read") from None
    if profile is None or unpacker.tell() != len(data):
        raise SnapshotError(f"{path} is truncated: the snapshot ends before its data")
    return profile


def _profile_from_chunk(chunk: dict) -> Profile:
    profile = Profile(ProfileMeta.from_dict(chunk.get("meta", {})))
    frames = chunk["frames"]
    for function, file, line in zip(frames["function"], frames["file"], frames["line"]):
        profile.frames.intern(function, file, line)
    stacks = profile.stacks
    parent = _unpack_array(chunk["tree"]["parent"])
    frame = _unpack_array(chunk["tree"]["frame"])
    nodes = np.arange(len(parent))
    if len(frame) != len(parent) or len(parent) == 0 or np.any(parent[1:] >= nodes[1:]) or np.any(parent[1:] < 0) \
            or np.any(frame[1:] < 0) or np.any(frame[1:] >= len(profile.frames)):
        raise ValueError("stack trie out of range")
    # Adding node by node rebuilds depth, recursion marks and the child index exactly.
    for node in range(1, len(parent)):
        stacks.add_node(int(parent[node]), int(frame[node]))
    for name, target, defaults in (
        ("timeline", profile.timeline, TIMELINE_DEFAULTS),
        ("process_series", profile.process_series, {}),
        ("thread_series", profile.thread_series, {}),
    ):
        cols = {k: _unpack_array(v) for k, v in chunk.get(name, {}).items()}
        if len({len(v) for v in cols.values()}) > 1:
            raise ValueError(f"{name} columns of unequal length")
        if cols.get("t") is not None and len(cols["t"]):
            for column, default in defaults.items():
                if column not in cols:
                    cols[column] = default(cols)
            target.append(**cols)
    for p in chunk.get("processes", []):
        info = ProcessInfo.from_dict(p)
        profile.processes[info.pid] = info
    for t in chunk.get("threads", []):
        info = ThreadInfo.from_dict(t)
        profile.threads[(info.pid, info.tid)] = info
    profile.notes = [SamplerNote(*n) for n in chunk.get("notes", [])]
    profile.output = deque((OutputLine(*o) for o in chunk.get("output", [])), maxlen=OUTPUT_LINES_KEPT)
    profile.marks = [PhaseMark(*m) for m in chunk.get("marks", [])]
    profile.gpu = GpuModel.from_dict(chunk.get("gpu"))
    return profile

