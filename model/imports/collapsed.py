"""Collapsed stacks: `frame;frame;frame N` per line, as `py-spy record -f raw` and gradetop export write them.

Counts become samples at the file's rate (py-spy's default, 100 Hz, unless
told). py-spy's `-s`/`-t` prefix frames (`process PID:"cmd"`,
`thread (TID): name`) become the samples' process and thread; without them,
every sample is on one thread of a process whose id is not known
(model.imports.build places it).
"""

from __future__ import annotations

import os
import re

from gradetop.model.imports.build import ImportedThread, build_profile
from gradetop.model.profile import Profile
from gradetop.model.pyspy_names import PROCESS_FRAME, THREAD_FRAME, parse_frame_label
from gradetop.model.snapshot import SnapshotError

LINE = re.compile(r"^(.*) (\d+)$")
DEFAULT_RATE_HZ = 100.0


def looks_collapsed(head: str) -> bool:
    """The first non-empty line (of a sniffed head) has the `stack count` shape."""
    for line in head.splitlines():
        if line.strip():
            return LINE.match(line.rstrip("\r")) is not None
    return False


def read_collapsed(path, text: str, rate_hz: float = DEFAULT_RATE_HZ) -> Profile:
    frames: list[tuple[str, str, int]] = []
    frame_ids: dict[str, int] = {}
    threads: dict[tuple[int, int], ImportedThread] = {}
    commands: dict[int, str] = {}
    tick = 1.0 / rate_hz
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        m = LINE.match(line)
        if m is None:
            raise SnapshotError(f"{path}: line {number} is not 'stack count': not a collapsed stacks file")
        stack, count = m.group(1).strip(), int(m.group(2))
        pid, tid, name = 0, 0, ""
        local: list[int] = []
        for part in stack.split(";") if stack else []:
            pm = PROCESS_FRAME.match(part) if not local else None
            if pm:
                pid = int(pm.group(1))
                commands[pid] = pm.group(2)
                continue
            tm = THREAD_FRAME.match(part) if not local else None
            if tm:
                tid = int(tm.group(1), 0)
                name = tm.group(2) or ""
                continue
            fid = frame_ids.get(part)
            if fid is None:
                fid = frame_ids[part] = len(frames)
                frames.append(parse_frame_label(part))
            local.append(fid)
        if tid == 0:
            tid = pid  # no thread frame: the process's main thread
        thread = threads.get((pid, tid))
        if thread is None:
            thread = threads[(pid, tid)] = ImportedThread(pid, tid, name)
        elif name and not thread.name:
            thread.name = name
        if count:
            thread.stacks.extend([tuple(local)] * count)
            thread.weights.extend([tick] * count)
    if not threads:
        raise SnapshotError(f"{path} holds no stacks")
    start = _mtime(path) - max(sum(t.weights) for t in threads.values())
    return build_profile(frames, list(threads.values()), commands, "py-spy raw", start, rate_hz)


def _mtime(path) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0
