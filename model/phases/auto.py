"""Automatic phases: each busy thread's timeline cut where the label at the depth its work splits changes.

Labels are the user's words (model.phases.naming): the user's own
functions, `import sklearn`, `fit (SVC)`; process entry points and import
machinery never name a phase, and a worker process's phases carry its role
(`worker: decode_shard`, model.roles). Per thread, samples are binned at a
quarter of the minimum phase length; the dominant label per bin, at the
shallowest logical depth where two lasting stretches of different labels
appear, gives the phases, and each long one is cut again one level down.
Must never use markers or rules (merge does that), nor import textual or
rich.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradetop.model.phases.naming import Namer, UserCode
from gradetop.model.phases.slices import thread_slices
from gradetop.model.phases.types import Phase
from gradetop.model.profile import Profile
from gradetop.model.roles import process_roles, role_prefix

AUTO_MIN_S = 1.0
"""Automatic phases shorter than this (or 2% of the thread's life, if longer) are noise."""
DOMINANT = 0.75
"""A bin belongs to a label that holds this share of its weight; below, the bin is mixed work (a loop of
forward, backward and step calls a few ms each) and names no phase: the level above already does."""


def namer_of(profile: Profile) -> Namer:
    """The profile's labeller, with the user's code as the recording was told (`--user-code`)."""
    return Namer(profile.stacks, UserCode(tuple(profile.meta.options.get("user_code") or ())))


def auto_phases(profile: Profile, min_s: float = AUTO_MIN_S, levels: int = 2, namer: Namer | None = None,
                roles: dict[int, str] | None = None) -> list[Phase]:
    """Each busy thread's timeline cut into lasting stretches of one label, at the shallowest depth that has them."""
    tl = profile.timeline
    namer = namer or namer_of(profile)
    roles = process_roles(profile) if roles is None else roles
    phases: list[Phase] = []
    for one in thread_slices(tl):
        idx, pid, tid = one.idx, one.pid, one.tid
        if len(idx) < 4:
            continue
        active = float(tl.active[idx].sum())
        sampled = float(tl.w[idx].sum())
        if active < 0.1 * sampled and not (pid == tid == profile.meta.target_pid):
            continue  # a thread or helper process that only ever waits has no phases worth a name
        span = float(tl.t[idx[-1]] - tl.t[idx[0]])
        prefix = role_prefix(roles.get(pid, ""))
        _AutoCut(profile, namer, pid, tid, max(min_s, 0.02 * span), levels, phases, prefix).segment(idx, 0, "", 0)
    return phases


@dataclass(frozen=True)
class _AutoCut:
    """One thread's cutting: its phases go to `out`, `levels` deep at most, none shorter than `min_s`."""

    profile: Profile
    namer: Namer
    pid: int
    tid: int
    min_s: float
    levels: int
    out: list[Phase]
    role: str = ""
    """Prefix of the thread's top-level phase names ('worker: '), '' in the main process."""

    @property
    def bin_s(self) -> float:
        return self.min_s / 4

    def segment(self, idx: np.ndarray, depth: int, prefix: str, from_level: int) -> None:
        """Phases of timeline rows `idx` (time order) at phase depth `depth`, from logical depth `from_level` down."""
        tl = self.profile.timeline
        t, w = tl.t[idx], tl.w[idx].astype(np.float64)
        weight = tl.active[idx].astype(np.float64) + 1e-3 * w
        t0 = float(t[0] - w[0] / 2)
        bins = np.floor((t - t0) / self.bin_s).astype(np.int64)
        split = self._split(tl.stack[idx], bins, weight, from_level)
        if split is None:
            if depth == 0:
                self._whole(idx, t, w, weight)  # a thread doing one thing all its life: that is its phase
            return  # no depth has two lasting stretches: one phase, already named by the level above
        level, funcs, runs = split
        for func, b0, b1 in runs:
            edges = _edges(funcs, t, w, func, t0 + b0 * self.bin_s, t0 + b1 * self.bin_s)
            if edges is None:
                continue
            start, end = edges
            name = self.namer.names[func]
            if depth == 0:
                name = self.role + name
            path = f"{prefix}/{name}" if prefix else name
            self.out.append(Phase(name, path, "auto", self.pid, self.tid, start, end, depth))
            if depth + 1 < self.levels and end - start >= 4 * self.min_s:
                sub = idx[(t >= start) & (t <= end)]
                if len(sub) >= 8:
                    self.segment(sub, depth + 1, path, level + 1)

    def _whole(self, idx: np.ndarray, t: np.ndarray, w: np.ndarray, weight: np.ndarray) -> None:
        """One phase for a worker thread whose work never splits: its busiest label, first to last sample."""
        labels = self.namer.labels_at(self.profile.timeline.stack[idx], 0)
        if not (labels >= 0).any():
            return
        codes, inverse = np.unique(labels, return_inverse=True)
        totals = np.bincount(inverse, weights=np.where(labels >= 0, weight, 0.0))
        best = int(codes[int(totals.argmax())])
        mine = np.flatnonzero(labels == best)
        start, end = float(t[mine[0]] - w[mine[0]] / 2), float(t[mine[-1]] + w[mine[-1]] / 2)
        if end - start < self.min_s or self.namer.names[best] == "waiting for work":
            return
        name = self.role + self.namer.names[best]
        self.out.append(Phase(name, name, "auto", self.pid, self.tid, start, end, 0))

    def _split(self, nodes: np.ndarray, bins: np.ndarray, weight: np.ndarray,
               from_level: int) -> tuple[int, np.ndarray, list[list[int]]] | None:
        """The first logical depth with two lasting stretches of different labels: (depth, label per sample, runs)."""
        deepest = self.namer.depth(nodes)
        min_bins = max(1, int(round(self.min_s / self.bin_s)))
        for level in range(from_level, deepest):
            # By label: the same function running on two lines is one stretch.
            funcs = self.namer.labels_at(nodes, level)
            codes, inverse = np.unique(funcs, return_inverse=True)
            if len(codes) < 2:
                continue
            # Dominant function per bin of min_s / 4; lasting runs of bins are the phases.
            table = np.zeros((int(bins[-1]) + 1, len(codes)))
            np.add.at(table, (bins, inverse), weight)
            # Runs carry function ids; -1 is a gap (no frame at this depth), empty bins too.
            weight_of_bin = table.sum(axis=1)
            held = table.max(axis=1) >= DOMINANT * np.maximum(weight_of_bin, 1e-12)
            dominant = np.where((weight_of_bin > 0) & held, codes[table.argmax(axis=1)], -1)
            runs = [r for r in _keep_lasting(_runs(dominant), min_bins) if r[0] >= 0]
            if len({r[0] for r in runs}) >= 2:
                return level, funcs, runs
        return None


def _edges(funcs: np.ndarray, t: np.ndarray, w: np.ndarray, func: int, start: float,
           end: float) -> tuple[float, float] | None:
    """A stretch's edges at its function's own first and last samples; None if it has none in [start, end).

    The edges reach into the neighbouring bins while the samples there are
    still this function's (bins are coarser than samples).
    """
    mine = np.flatnonzero((t >= start) & (t < end) & (funcs == func))
    if len(mine) == 0:
        return None
    first, last = int(mine[0]), int(mine[-1])
    while first > 0 and funcs[first - 1] == func:
        first -= 1
    while last + 1 < len(funcs) and funcs[last + 1] == func:
        last += 1
    return float(t[first] - w[first] / 2), float(t[last] + w[last] / 2)


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
