"""Small builders and hypothesis strategies shared by the model-layer tests.

Kept out of conftest.py on purpose: tests import what they use by name.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import (
    OutputLine,
    ProcessEnded,
    ProcessReading,
    ResourceBatch,
    SamplerNote,
    StackBatch,
    ThreadSamples,
)
from gradetop.model.stacks import StackTable
from gradetop.model.timeline import COLUMNS, Timeline

# A few (function, file) pairs, each possible on several lines: enough for
# recursion (same function, different line) and for shared prefixes.
FUNCTIONS = [
    ("main", "/app/train.py"),
    ("train", "/app/train.py"),
    ("forward", "/usr/lib/python3.11/site-packages/torch/nn/module.py"),
    ("load", "/app/data.py"),
    ("load", "/app/other.py"),  # same name, other file: another function
    ("step", "/app/train.py"),
]
FRAMES = [(func, file, line) for func, file in FUNCTIONS for line in (1, 7)]


def frame_key(frame) -> tuple[str, str]:
    return (frame[0], frame[1])


def build_stacks(paths) -> tuple[StackTable, list[int]]:
    """A trie of FRAMES-index paths (root first); returns it and the node of each path."""
    stacks = StackTable()
    fids = [stacks.frames.intern(*f) for f in FRAMES]
    nodes = [stacks.intern([fids[i] for i in path]) for path in paths]
    return stacks, nodes


def intern_named(stacks: StackTable, *names: str, file: str = "/app/x.py") -> int:
    """Node of a stack of functions given by name (all in `file`, line = position)."""
    fids = [stacks.frames.intern(name, file, 10) for name in names]
    return stacks.intern(fids)


def timeline_rows(t, w, stack, pid=1, tid=1, active=None, n=1, flags=0) -> dict[str, np.ndarray]:
    """Columns for Timeline.append / build_tree, broadcasting scalars."""
    t = np.asarray(t, dtype=np.float64)
    length = len(t)
    values = {"t": t, "w": w, "active": w if active is None else active, "n": n, "stack": stack,
              "pid": pid, "tid": tid, "flags": flags}
    out = {}
    for name, dtype in COLUMNS.items():
        v = np.asarray(values[name])
        out[name] = (np.full(length, v) if v.ndim == 0 else v).astype(dtype)
    return out


def make_timeline(rows: dict[str, np.ndarray], **kwargs) -> Timeline:
    tl = Timeline(**kwargs)
    tl.append(**rows)
    return tl


# ---- strategies ----------------------------------------------------------------

frame_index = st.integers(0, len(FRAMES) - 1)
paths = st.lists(frame_index, min_size=0, max_size=6)
weights = st.floats(0.0, 2.0, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def samples(draw, min_size=0, max_size=40):
    """(paths, weights, counts) of random samples over FRAMES."""
    ps = draw(st.lists(paths, min_size=min_size, max_size=max_size))
    ws = draw(st.lists(weights, min_size=len(ps), max_size=len(ps)))
    ns = draw(st.lists(st.integers(1, 5), min_size=len(ps), max_size=len(ps)))
    return ps, ws, ns


# ---- profiles from collector records --------------------------------------------

_text = st.text(alphabet="abcdefghij _-/.é€", max_size=12)


@st.composite
def records(draw):
    """A plausible stream of collector records (in ingest order)."""
    pids = draw(st.lists(st.integers(100, 110), min_size=1, max_size=3, unique=True))
    tids_of = {pid: draw(st.lists(st.integers(1000, 1010), min_size=1, max_size=3, unique=True)) for pid in pids}
    batch_frames = draw(st.lists(st.tuples(st.sampled_from(["main", "f", "g", "h"]),
                                           st.sampled_from(["/a.py", "/b/c.py"]), st.integers(1, 50)),
                                 min_size=1, max_size=6))
    out = []
    t = 1000.0
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["stacks", "stacks", "resources", "ended", "note", "output"]))
        if kind == "stacks":
            pid = draw(st.sampled_from(pids))
            threads = []
            for tid in tids_of[pid]:
                count = draw(st.integers(0, 6))
                times = t + np.sort(np.array(draw(st.lists(st.floats(0, 1, allow_nan=False), min_size=count,
                                                                   max_size=count)), dtype=np.float64))
                ws = np.full(count, 0.01, dtype=np.float32)
                stacks = [tuple(draw(st.lists(st.integers(0, len(batch_frames) - 1), max_size=4)))
                          for _ in range(count)]
                threads.append(ThreadSamples(pid, tid, draw(_text), times, ws, stacks))
            out.append(StackBatch(pid, t, t + 1.0, draw(st.integers(0, 100)), list(batch_frames), threads,
                                  {pid: draw(_text)}))
        elif kind == "resources":
            readings = []
            for pid in pids:
                thread_times = {tid: (draw(st.floats(0, 100)), draw(st.floats(0, 100))) for tid in tids_of[pid]}
                readings.append(ProcessReading(
                    pid, draw(st.integers(1, 99)), draw(_text), draw(st.lists(_text, max_size=3)),
                    draw(st.floats(0, 1e9)), "running", draw(st.floats(0, 1e4)), draw(st.integers(0, 2**40)),
                    draw(st.integers(-1, 2**40)), draw(st.integers(-1, 2**40)), draw(st.integers(1, 64)),
                    thread_times))
            out.append(ResourceBatch(t, readings))
        elif kind == "ended":
            out.append(ProcessEnded(draw(st.sampled_from(pids)), t, draw(st.none() | st.integers(-15, 255))))
        elif kind == "note":
            out.append(SamplerNote(t, draw(st.sampled_from(pids)),
                                   draw(st.sampled_from(["sampling", "not-python", "permission", "gone", "error"])),
                                   draw(_text)))
        else:
            out.append(OutputLine(t, draw(st.sampled_from(["stdout", "stderr"])), draw(_text)))
        t += 1.0
    return out


@st.composite
def metas(draw):
    return ProfileMeta(
        host=draw(_text),
        start_time=draw(st.floats(0, 2e9)),
        end_time=draw(st.none() | st.floats(0, 2e9)),
        rate_hz=draw(st.floats(1, 1000)),
        command=draw(st.lists(_text, max_size=4)),
        target_pid=draw(st.none() | st.integers(1, 2**22)),
        mode=draw(st.sampled_from(["record", "attach", "demo"])),
        exit_code=draw(st.none() | st.integers(-15, 255)),
        options=draw(st.dictionaries(st.sampled_from(["idle", "rate", "gil"]),
                                     st.booleans() | st.integers(0, 1000) | _text, max_size=3)),
    )


def profile_from(records_, meta: ProfileMeta | None = None) -> Profile:
    profile = Profile(meta or ProfileMeta(host="test-host", start_time=1000.0, end_time=1010.0))
    for record in records_:
        profile.ingest(record)
    return profile
