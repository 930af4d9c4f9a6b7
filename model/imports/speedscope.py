"""speedscope files, as `py-spy record -f speedscope` (and gradetop export) write them.

Sampled profiles are read in order, each sample lasting its weight; a
profile named as py-spy names them (`Process P Thread T "name"`) gives the
samples their process and thread, and py-spy's `-s`/`-t` prefix frames are
dropped from the stacks. Evented profiles (speedscope's other kind) hold no
samples to read: a file with only those is refused with a message.
"""

from __future__ import annotations

import json
import os

from gradetop.model.imports.build import ImportedThread, build_profile
from gradetop.model.profile import Profile
from gradetop.model.pyspy_names import PROCESS_FRAME, PROFILE_NAME, THREAD_FRAME
from gradetop.model.snapshot import SnapshotError

UNITS = {"seconds": 1.0, "milliseconds": 1e-3, "microseconds": 1e-6, "nanoseconds": 1e-9}
NO_UNIT_RATE_HZ = 100.0
"""Weights without a time unit (speedscope's "none") are counts, taken at py-spy's default rate."""


def read_speedscope(path, text: str) -> Profile:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise SnapshotError(f"{path} is not a gradetop snapshot, nor a speedscope file: invalid JSON "
                            f"({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict) or "profiles" not in doc or "shared" not in doc:
        raise SnapshotError(f"{path} is not a gradetop snapshot, nor a speedscope file: JSON without "
                            "'shared' and 'profiles'")
    try:
        return _read(path, doc)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        raise SnapshotError(f"{path} is a damaged speedscope file: its frames or samples cannot be read") from None


def _read(path, doc: dict) -> Profile:
    shared = doc["shared"]["frames"]
    frames: list[tuple[str, str, int]] = []
    local: list[int] = []
    commands: dict[int, str] = {}
    thread_names: dict[int, str] = {}
    for f in shared:
        name, file = str(f["name"]), f.get("file") or ""
        if not file:
            m = PROCESS_FRAME.match(name)
            if m:
                commands[int(m.group(1))] = m.group(2)
                local.append(-1)
                continue
            m = THREAD_FRAME.match(name)
            if m:
                if m.group(2):
                    thread_names[int(m.group(1), 0)] = m.group(2)
                local.append(-1)
                continue
        local.append(len(frames))
        frames.append((name, str(file), int(f.get("line") or 0)))
    threads: list[ImportedThread] = []
    sampled = [p for p in doc["profiles"] if p.get("type") == "sampled"]
    if not sampled:
        raise SnapshotError(f"{path} has no sampled profiles (evented speedscope profiles are not read)")
    for n, p in enumerate(sampled, 1):
        samples, weights = p["samples"], p["weights"]
        if len(samples) != len(weights):
            raise ValueError("samples and weights differ in length")
        scale = UNITS.get(p.get("unit", "none"))
        if scale is None:
            weights, scale = [1.0] * len(samples), 1.0 / NO_UNIT_RATE_HZ
        m = PROFILE_NAME.match(str(p.get("name", "")))
        if m:
            pid, tid = int(m.group(1) or 0), int(m.group(2))
            name = m.group(3) or thread_names.get(tid, "")
        else:
            pid, tid, name = 0, n, str(p.get("name", ""))
        thread = ImportedThread(pid, tid, name)
        for stack, weight in zip(samples, weights):
            thread.stacks.append(tuple(local[i] for i in stack if local[i] >= 0))
            thread.weights.append(float(weight) * scale)
        threads.append(thread)
    start = _mtime(path) - max(sum(t.weights) for t in threads)
    source = "speedscope" if "py-spy" not in str(doc.get("exporter", "")) else "py-spy speedscope"
    return build_profile(frames, threads, commands, source, start, NO_UNIT_RATE_HZ)


def _mtime(path) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0
