"""Phases: which part of the workflow ran when, on which thread, what it cost, and why it was slow.

A phase is a named interval of one thread, nested in a tree (workflow >
stage > step). Three sources give phases, merged into one list:

- markers: `gradetop.phase(...)` in user code (exact edges, user's names);
- rules: frames matching built-in or user patterns (model.rules);
- automatic: each thread's timeline cut where the dominant frame at the
  depth its work splits changes, with a minimum length against noise.

Costs come straight from the samples and readings of that thread and
process in that interval (no model fitting is needed: a sample says which
thread was where). Everything here is a pure function of a Profile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from gradetop.model.profile import Profile
from gradetop.model.rules import BUILTIN_RULES, Rule, rule_of_frames
from gradetop.model.stacks import functions_at

AUTO_MIN_S = 1.0
"""Automatic phases shorter than this (or 2% of the thread's life, if longer) are noise."""
RULE_GAP_S = 0.05
"""Rule matches interrupted for less than this are one phase."""


@dataclass(frozen=True)
class Phase:
    name: str
    path: str
    """Names from the top phase down, joined by '/'."""
    source: str
    """'marker', 'rule' or 'auto'."""
    pid: int
    tid: int
    start: float
    end: float
    depth: int = 0

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def kind(self) -> str:
        """The phase's type: its path without instance numbers ('train/epoch N'), to compare repeats."""
        return re.sub(r"\d+", "N", self.path)


@dataclass(frozen=True)
class PhaseCost:
    phase: Phase
    sampled_s: float
    active_s: float
    """Seconds the thread was running or waiting for a CPU."""
    waiting_s: float
    """Seconds it was idle in a wait (lock, queue, sleep, IO, child)."""
    stalled_s: float
    """Seconds it was idle while in Python code that is no wait: waiting for the GIL."""
    cpu_s: float
    """CPU seconds of the whole process in the interval."""
    thread_cpu_s: float
    children_cpu_s: float
    """CPU seconds of the process's descendants in the interval."""
    peak_rss: int
    read_bytes: int
    write_bytes: int
    top_wait: str = ""
    """The function the thread waited in most, if it waited."""
    wait_reason: str = ""
    """What that wait is (model.waits: 'lock acquire', 'read', 'socket recv'...)."""
    stalled_at: str = ""
    """The frame it sat idle in most outside any known wait (a native call, or the GIL)."""
    verdict: str = ""
    verdict_kind: str = ""
    extra: dict = field(default_factory=dict)


# ---- markers ---------------------------------------------------------------------------------


def marker_phases(profile: Profile) -> list[Phase]:
    """Intervals from B/E marker pairs per thread; a phase still open ends when its process (or the run) did."""
    phases: list[Phase] = []
    open_: dict[tuple[int, int], list[tuple[str, float]]] = {}
    for mark in sorted(profile.marks, key=lambda m: m.t):
        stack = open_.setdefault((mark.pid, mark.tid), [])
        if mark.kind == "B":
            stack.append((mark.name, mark.t))
            continue
        # Close the innermost phase of that name (and any left open inside it).
        names = [name for name, _ in stack]
        if mark.name not in names:
            continue
        while stack:
            name, start = stack.pop()
            path = "/".join([n for n, _ in stack] + [name])
            phases.append(Phase(name, path, "marker", mark.pid, mark.tid, start, mark.t, len(stack)))
            if name == mark.name:
                break
    for (pid, tid), stack in open_.items():
        end = _end_of(profile, pid)
        while stack:
            name, start = stack.pop()
            path = "/".join([n for n, _ in stack] + [name])
            phases.append(Phase(name, path, "marker", pid, tid, start, max(end, start), len(stack)))
    return phases


def _end_of(profile: Profile, pid: int) -> float:
    info = profile.processes.get(pid)
    if info is not None and info.end_time is not None:
        return info.end_time
    if profile.meta.end_time is not None:
        return profile.meta.end_time
    span = profile.timeline.span()
    return span[1] if span else profile.meta.start_time


# ---- rules -------------------------------------------------------------------------------------


def _node_rule_paths(profile: Profile, rules: tuple[Rule, ...]) -> list[tuple[int, ...]]:
    """For each trie node, the rules matched along its stack, outermost first, each once."""
    stacks = profile.stacks
    frame_rule = rule_of_frames(profile.frames.frames, rules)
    parent = stacks.parent.view()
    frame = stacks.frame.view()
    paths: list[tuple[int, ...]] = [()] * len(stacks)
    for node in range(1, len(stacks)):
        above = paths[int(parent[node])]
        hit = frame_rule[int(frame[node])]
        paths[node] = above + (hit,) if hit >= 0 and hit not in above else above
    return paths


def rule_phases(profile: Profile, rules: tuple[Rule, ...] = BUILTIN_RULES) -> list[Phase]:
    """Runs of samples whose stacks match the same rules, nested by stack depth.

    Only single samples count: an old bucket of merged samples (model.timeline
    compaction) no longer says in which order its stacks ran, so rules
    would turn each bucket into overlapping phases of its full weight.
    """
    if not rules or len(profile.timeline) == 0:
        return []
    paths = _node_rule_paths(profile, rules)
    if not any(paths):
        return []
    tl = profile.timeline
    single = tl.n == 1
    phases: list[Phase] = []
    for pid, tid in _threads(tl):
        idx = np.flatnonzero((tl.pid == pid) & (tl.tid == tid) & single)
        idx = idx[np.argsort(tl.t[idx], kind="stable")]
        t, w, stack = tl.t[idx], tl.w[idx], tl.stack[idx]
        labels = [paths[int(s)] for s in stack]
        _runs_to_phases(phases, rules, labels, t, w, pid, tid, level=0, prefix=())
    return phases


def _runs_to_phases(out, rules, labels, t, w, pid, tid, level, prefix) -> None:
    """Contiguous runs of one rule at `level` become phases; recurse into each run for the next level."""
    current, start_i = None, 0
    last_t = None
    for i, lab in enumerate(labels):
        rule = lab[level] if len(lab) > level and lab[:level] == prefix else None
        gap = last_t is not None and t[i] - last_t > RULE_GAP_S + w[i]
        if rule != current or gap:
            if current is not None:
                _close_rule(out, rules, labels, t, w, pid, tid, level, prefix, current, start_i, i)
            current, start_i = rule, i
        if rule is not None:
            last_t = t[i]
    if current is not None:
        _close_rule(out, rules, labels, t, w, pid, tid, level, prefix, current, start_i, len(labels))


def _close_rule(out, rules, labels, t, w, pid, tid, level, prefix, rule, i0, i1) -> None:
    start = float(t[i0] - w[i0] / 2)
    end = float(t[i1 - 1] + w[i1 - 1] / 2)
    names = [rules[r].name for r in prefix + (rule,)]
    out.append(Phase(names[-1], "/".join(names), "rule", pid, tid, start, end, level))
    _runs_to_phases(out, rules, labels[i0:i1], t[i0:i1], w[i0:i1], pid, tid, level + 1, prefix + (rule,))


# ---- automatic -----------------------------------------------------------------------------------


def auto_phases(profile: Profile, min_s: float = AUTO_MIN_S, levels: int = 2) -> list[Phase]:
    """Each busy thread's timeline cut into lasting stretches of one frame, at the shallowest depth that has them."""
    tl = profile.timeline
    phases: list[Phase] = []
    for pid, tid in _threads(tl):
        idx = np.flatnonzero((tl.pid == pid) & (tl.tid == tid))
        idx = idx[np.argsort(tl.t[idx], kind="stable")]
        if len(idx) < 4:
            continue
        active = float(tl.active[idx].sum())
        sampled = float(tl.w[idx].sum())
        if active < 0.1 * sampled and not (pid == tid == profile.meta.target_pid):
            continue  # a thread or helper process that only ever waits has no phases worth a name
        span = float(tl.t[idx[-1]] - tl.t[idx[0]])
        _segment(profile, phases, idx, pid, tid, max(min_s, 0.02 * span), levels, 0, "", 1)
    return phases


def _segment(profile, out, idx, pid, tid, min_s, levels, depth, prefix, from_level) -> None:
    tl = profile.timeline
    stacks = profile.stacks
    t, w = tl.t[idx], tl.w[idx].astype(np.float64)
    nodes = tl.stack[idx]
    weight = tl.active[idx].astype(np.float64) + 1e-3 * w
    bin_s = min_s / 4
    t0 = float(t[0] - w[0] / 2)
    bins = np.floor((t - t0) / bin_s).astype(np.int64)
    deepest = int(stacks.depth.view()[np.unique(nodes)].max(initial=0))
    for level in range(from_level, deepest + 1):
        # By function: the same function running on two lines is one stretch.
        funcs = functions_at(stacks, nodes, level)
        codes, inverse = np.unique(funcs, return_inverse=True)
        if len(codes) < 2:
            continue
        # Dominant function per bin of min_s / 4; lasting runs of bins are the phases.
        table = np.zeros((int(bins[-1]) + 1, len(codes)))
        np.add.at(table, (bins, inverse), weight)
        # Runs carry function ids; -1 is a gap (no frame at this depth), empty bins too.
        dominant = np.where(table.sum(axis=1) > 0, codes[table.argmax(axis=1)], -1)
        runs = [r for r in _keep_lasting(_runs(dominant), max(1, int(round(min_s / bin_s)))) if r[0] >= 0]
        if len({r[0] for r in runs}) >= 2:
            break
    else:
        return  # no depth has two lasting stretches: one phase, already named by the level above
    for func, b0, b1 in runs:
        name = profile.frames.functions[func][0]
        start, end = t0 + b0 * bin_s, t0 + b1 * bin_s
        mine = np.flatnonzero((t >= start) & (t < end) & (funcs == func))
        if len(mine) == 0:
            continue
        # Edges at this function's own first and last samples, reaching into the neighbouring
        # bins while the samples there are still this function's (bins are coarser than samples).
        first, last = int(mine[0]), int(mine[-1])
        while first > 0 and funcs[first - 1] == func:
            first -= 1
        while last + 1 < len(funcs) and funcs[last + 1] == func:
            last += 1
        start = float(t[first] - w[first] / 2)
        end = float(t[last] + w[last] / 2)
        path = f"{prefix}/{name}" if prefix else name
        out.append(Phase(name, path, "auto", pid, tid, start, end, depth))
        if depth + 1 < levels and end - start >= 4 * min_s:
            sub = idx[(t >= start) & (t <= end)]
            if len(sub) >= 8:
                _segment(profile, out, sub, pid, tid, min_s, levels, depth + 1, path, level + 1)


def _runs(values: np.ndarray) -> list[list[int]]:
    """[value, first bin, end bin) for each run of equal values."""
    if len(values) == 0:
        return []
    edges = np.flatnonzero(np.diff(values)) + 1
    starts = np.r_[0, edges]
    ends = np.r_[edges, len(values)]
    return [[int(values[s]), int(s), int(e)] for s, e in zip(starts, ends)]


def _keep_lasting(runs: list[list[int]], min_bins: int) -> list[list[int]]:
    """Stretches shorter than min_bins become gaps; a stretch broken only by a short gap is one.

    Nothing short is handed to a neighbour: a phase keeps the edges its
    samples give it, and the odd short call between two phases stays unnamed.
    """
    runs = [[v if e - b >= min_bins else -1, b, e] for v, b, e in runs]
    out: list[list[int]] = []
    for r in runs:
        if out and out[-1][0] == r[0]:
            out[-1][2] = r[2]
        elif (r[0] >= 0 and len(out) >= 2 and out[-1][0] == -1 and out[-2][0] == r[0]
              and out[-1][2] - out[-1][1] < min_bins):
            out.pop()  # the short gap
            out[-1][2] = r[2]
        else:
            out.append(list(r))
    return out


def _threads(tl) -> list[tuple[int, int]]:
    if len(tl) == 0:
        return []
    pairs = np.unique(np.stack([tl.pid, tl.tid], axis=1), axis=0)
    return [(int(p), int(t)) for p, t in pairs]


# ---- all together ----------------------------------------------------------------------------------


def all_phases(profile: Profile, rules: tuple[Rule, ...] = (), auto: bool = True) -> list[Phase]:
    """Marker, rule (user's first, then built-in) and automatic phases, in time order."""
    with profile.lock:
        markers = marker_phases(profile)
        phases = markers + rule_phases(profile, tuple(rules) + BUILTIN_RULES)
        if auto:
            # Where the user marked a stretch, the automatic phase saying the same is noise.
            phases += [p for p in auto_phases(profile) if not _covered(p, markers)]
    return sorted(phases, key=lambda p: (p.start, p.depth, p.source, p.pid, p.tid))


def _covered(phase: Phase, markers: list[Phase], share: float = 0.8) -> bool:
    for m in markers:
        if m.pid == phase.pid and m.tid == phase.tid:
            overlap = min(m.end, phase.end) - max(m.start, phase.start)
            if overlap >= share * phase.duration and overlap >= share * m.duration:
                return True
    return False


@dataclass(frozen=True)
class PhaseLane:
    """One timeline row of phases: one thread, one nesting depth; per bin the phase index (or -1)."""

    label: str
    cells: np.ndarray
    names: list[str]


def phase_lanes(phases: list[Phase], t0: float, t1: float, bins: int, max_depth: int = 1,
                sources: tuple[str, ...] = ("marker", "auto")) -> list[PhaseLane]:
    """Phases drawn on the timeline's bins: a lane per (thread, depth) up to `max_depth`."""
    bins = max(bins, 1)
    width = (t1 - t0) / bins if t1 > t0 else 1.0
    keys = sorted({(p.pid, p.tid, p.depth) for p in phases if p.source in sources and p.depth <= max_depth})
    lanes = []
    for pid, tid, depth in keys:
        cells = np.full(bins, -1, dtype=np.int64)
        names: list[str] = []
        mine = [p for p in phases if (p.pid, p.tid, p.depth) == (pid, tid, depth) and p.source in sources]
        # Longer phases first, so a short one over a long one stays visible.
        for p in sorted(mine, key=lambda p: -p.duration):
            if p.end <= t0 or p.start >= t1:
                continue  # outside the drawn span (before an attach, say)
            a = int(np.clip((p.start - t0) / width, 0, bins - 1))
            b = int(np.clip(np.ceil((p.end - t0) / width), a + 1, bins))
            cells[a:b] = len(names)
            names.append(p.name)
        label = f"{tid if tid != pid else pid} phases" if depth == 0 else f"  └ level {depth + 1}"
        lanes.append(PhaseLane(label, cells, names))
    return lanes
