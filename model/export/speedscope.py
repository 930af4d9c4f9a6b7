"""speedscope's JSON file format (https://www.speedscope.app/file-format-schema.json).

One "sampled" profile per thread, in seconds: each row of the selection is a
sample whose weight is the wall seconds it stands for, so a thread's weights
add up to its sampled time. Profiles are named as py-spy names them
(`Process P Thread T "name"`), which keeps the file readable back.
"""

from __future__ import annotations

import json

import numpy as np

from gradetop._version import __version__
from gradetop.model.export.selection import Selection
from gradetop.model.profile import Profile
from gradetop.model.pyspy_names import profile_name

SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def document(profile: Profile, selection: Selection) -> dict:
    rows = selection.rows
    frames = profile.frames.frames
    index: dict[int, int] = {}
    shared: list[dict] = []
    stack_cache: dict[int, list[int]] = {}

    def stack_of(node: int) -> list[int]:
        cached = stack_cache.get(node)
        if cached is None:
            cached = []
            for fid in profile.stacks.path(node):
                at = index.get(fid)
                if at is None:
                    f = frames[fid]
                    at = index[fid] = len(shared)
                    shared.append({"name": f.function, "file": f.file, "line": f.line})
                cached.append(at)
            stack_cache[node] = cached
        return cached

    profiles = []
    pid, tid = rows["pid"], rows["tid"]
    if len(pid):
        cuts = np.flatnonzero((np.diff(pid) != 0) | (np.diff(tid) != 0)) + 1
        with profile.lock:
            for part in np.split(np.arange(len(pid)), cuts):
                p, t = int(pid[part[0]]), int(tid[part[0]])
                weights = rows["w"][part].astype(np.float64)
                info = profile.threads.get((p, t))
                first = float(rows["t"][part[0]] - weights[0] / 2 - selection.t0)
                start = max(0.0, round(first, 6))
                profiles.append({
                    "type": "sampled",
                    "name": profile_name(p, t, info.name if info else ""),
                    "unit": "seconds",
                    "startValue": start,
                    "endValue": round(start + float(weights.sum()), 6),
                    "samples": [stack_of(int(s)) for s in rows["stack"][part]],
                    "weights": [round(w, 9) for w in weights.tolist()],
                })
    command = " ".join(profile.meta.command) or "attached"
    doc = {
        "$schema": SCHEMA,
        "shared": {"frames": shared},
        "profiles": profiles,
        "name": f"gradetop: {command}",
        "exporter": f"gradetop@{__version__}",
    }
    if profiles:
        doc["activeProfileIndex"] = 0  # a number or absent: the schema has no null (py-spy writes null)
    return doc


def render(profile: Profile, selection: Selection) -> bytes:
    return json.dumps(document(profile, selection), separators=(",", ":")).encode()
