"""Collapsed stacks (`a;b;c N`), the input of flamegraph.pl, inferno and speedscope.

Counts are sample counts (timeline column `n`), so the lines add up to the
selection's samples. Like `py-spy record -f raw -s -t`, each stack starts
with its process and thread, which lets the file be read back (model.imports).
"""

from __future__ import annotations

import numpy as np

from gradetop.model.export.selection import Selection
from gradetop.model.profile import Profile
from gradetop.model.pyspy_names import frame_label, process_frame, thread_frame


def lines(profile: Profile, selection: Selection) -> list[str]:
    rows = selection.rows
    if len(rows["t"]) == 0:
        return []
    keys = np.stack([rows["pid"].astype(np.int64), rows["tid"].astype(np.int64), rows["stack"].astype(np.int64)], 1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=rows["n"].astype(np.float64), minlength=len(unique))
    frames = profile.frames.frames
    labels: dict[int, str] = {}
    out = []
    with profile.lock:
        for (pid, tid, stack), count in zip(unique.tolist(), counts.tolist()):
            label = labels.get(stack)
            if label is None:
                label = labels[stack] = ";".join(_clean(frame_label(frames[f])) for f in profile.stacks.path(stack))
            proc = profile.processes.get(pid)
            info = profile.threads.get((pid, tid))
            prefix = (f"{_clean(process_frame(pid, proc.command if proc else ''))};"
                      f"{_clean(thread_frame(tid, info.name if info else ''))}")
            out.append(f"{prefix};{label} {int(count)}" if label else f"{prefix} {int(count)}")
    return out


def _clean(text: str) -> str:
    """A frame may hold no separator: ';' splits frames and a newline ends the stack."""
    return text.replace(";", ",").replace("\n", " ").replace("\r", " ")


def render(profile: Profile, selection: Selection) -> bytes:
    text = "\n".join(lines(profile, selection))
    return (text + "\n").encode() if text else b""
