"""Reading snapshot files of format 1 (gradetop before 0.2): kept so that old files open.

Layout: a msgpack header map {"format": "gradetop-snapshot", "version": 1},
then one "profile" chunk holding everything. No checksums: model.snapshot's
format 2 replaced it. Nothing here writes.
"""

from __future__ import annotations

from collections import deque

import msgpack
import numpy as np

from gradetop.model.processes import ProcessInfo, ThreadInfo
from gradetop.model.profile import OUTPUT_LINES_KEPT, Profile, ProfileMeta
from gradetop.model.records import OutputLine, PhaseMark, SamplerNote
from gradetop.model.snapshot_errors import SnapshotError

FORMAT = "gradetop-snapshot"

# Timeline columns that a file may lack, and what they mean when absent.
TIMELINE_DEFAULTS = {
    "active": lambda cols: cols["w"],
    "n": lambda cols: np.ones(len(cols["t"]), dtype=np.uint32),
    "flags": lambda cols: np.zeros(len(cols["t"]), dtype=np.uint8),
}


def _unpack_array(obj: dict) -> np.ndarray:
    return np.frombuffer(obj["data"], dtype=np.dtype(obj["dtype"])).copy()


def read_v1(data: bytes, path) -> Profile:
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
    if isinstance(version, int) and version > 1:
        raise SnapshotError(f"{path} was written by a newer gradetop (snapshot format {version}; this one reads "
                            "up to 2): upgrade gradetop")
    if version != 1:
        raise SnapshotError(f"{path} is not a gradetop snapshot")
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
        if name == "timeline" and len(cols.get("stack", ())) and (
                cols["stack"].min() < 0 or cols["stack"].max() >= len(stacks)):
            raise ValueError("sample stack out of range")
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
    return profile

