"""Two runs compared: where time went, per function, per phase type, and node by node.

Pure functions of two Profiles. Functions are matched by name and short file
path (not line, nor full path: the same code run from another checkout or
imported from py-spy is the same function); phases by type (model.phases
`Phase.kind`, instance numbers folded). Rows come sorted by the size of
their change, own time first: own time says where time moved, while a
caller's total only repeats its callees' change.

`--per-second` divides each run's seconds by its own duration, for runs of
different lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradetop.model.calltree import CallTree, build_tree, top_functions
from gradetop.model.export.selection import profile_phases
from gradetop.model.profile import Profile
from gradetop.model.stacks import ROOT, StackTable, short_path


def function_times(profile: Profile, include_idle: bool = False) -> dict[tuple[str, str], tuple[float, float]]:
    """(function, short file) -> (own s, total s)."""
    tree = profile.tree(weight="w" if include_idle else "active")
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for f in top_functions(tree):
        key = (f.function, short_path(f.file))
        own, total = out.get(key, (0.0, 0.0))
        out[key] = (own + f.self_s, total + f.total_s)
    return out


def phase_times(profile: Profile) -> dict[str, tuple[float, int]]:
    """Phase type -> (wall seconds summed over its instances, instances)."""
    out: dict[str, tuple[float, int]] = {}
    for p in profile_phases(profile):
        seconds, count = out.get(p.kind, (0.0, 0))
        out[p.kind] = (seconds + p.duration, count + 1)
    return out


def _side(profile: Profile) -> dict:
    return {"command": " ".join(profile.meta.command), "duration_s": round(profile.duration_s, 6),
            "samples": profile.timeline.samples, "mode": profile.meta.mode}


def diff(a: Profile, b: Profile, per_second: bool = False, include_idle: bool = False) -> dict:
    """The `diff --json` contract: each side's summary, then functions and phases sorted by change."""
    scale_a = 1.0 / a.duration_s if per_second and a.duration_s > 0 else 1.0
    scale_b = 1.0 / b.duration_s if per_second and b.duration_s > 0 else 1.0
    fa, fb = function_times(a, include_idle), function_times(b, include_idle)
    functions = []
    for key in fa.keys() | fb.keys():
        (a_self, a_total), (b_self, b_total) = fa.get(key, (0.0, 0.0)), fb.get(key, (0.0, 0.0))
        a_self, a_total, b_self, b_total = a_self * scale_a, a_total * scale_a, b_self * scale_b, b_total * scale_b
        functions.append({"function": key[0], "file": key[1],
                          "a_self": round(a_self, 6), "b_self": round(b_self, 6), "d_self": round(b_self - a_self, 6),
                          "a_total": round(a_total, 6), "b_total": round(b_total, 6),
                          "d_total": round(b_total - a_total, 6)})
    functions.sort(key=lambda f: (-abs(f["d_self"]), -abs(f["d_total"]), f["function"], f["file"]))
    pa, pb = phase_times(a), phase_times(b)
    phases = []
    for kind in pa.keys() | pb.keys():
        (a_s, a_n), (b_s, b_n) = pa.get(kind, (0.0, 0)), pb.get(kind, (0.0, 0))
        phases.append({"phase": kind, "a": round(a_s * scale_a, 6), "b": round(b_s * scale_b, 6),
                       "d": round(b_s * scale_b - a_s * scale_a, 6), "a_count": a_n, "b_count": b_n})
    phases.sort(key=lambda p: (-abs(p["d"]), p["phase"]))
    return {"a": _side(a), "b": _side(b), "per_second": per_second, "idle_included": include_idle,
            "unit": "seconds per second of run" if per_second else "seconds",
            "functions": functions, "phases": phases}


def format_diff(result: dict, top: int = 20) -> str:
    unit = "s/s" if result["per_second"] else "s"
    a, b = result["a"], result["b"]
    lines = [f"A: {a['command'] or '(attached)'}  ({a['duration_s']:.1f} s, {a['samples']} samples)",
             f"B: {b['command'] or '(attached)'}  ({b['duration_s']:.1f} s, {b['samples']} samples)", "",
             f"Functions ({'wall' if result['idle_included'] else 'active'} {unit}; sorted by change of own time,"
             " then total)",
             f"  {'own A':>8} {'own B':>8} {'Δ own':>8}  {'total A':>8} {'total B':>8} {'Δ total':>8}  function"]
    for f in result["functions"][:top]:
        lines.append(f"  {f['a_self']:>8.3f} {f['b_self']:>8.3f} {f['d_self']:>+8.3f}  {f['a_total']:>8.3f} "
                     f"{f['b_total']:>8.3f} {f['d_total']:>+8.3f}  {f['function']} ({f['file']})")
    if not result["functions"]:
        lines.append("  (no stack samples in either run)")
    if result["phases"]:
        lines += ["", f"Phases (wall {unit} summed over instances)",
                  f"  {'A':>8} {'B':>8} {'Δ':>8}  {'n A':>4} {'n B':>4}  phase"]
        for p in result["phases"][:top]:
            lines.append(f"  {p['a']:>8.3f} {p['b']:>8.3f} {p['d']:>+8.3f}  {p['a_count']:>4} {p['b_count']:>4}  {p['phase']}")
    return "\n".join(lines)


# ---- the union tree, for drawing a diff flame ---------------------------------------------------


@dataclass(frozen=True)
class DiffTree:
    """Both runs' calling-context trees over one trie: node n is the same call path in A and in B."""

    stacks: StackTable
    a: CallTree
    b: CallTree

    @property
    def delta(self) -> np.ndarray:
        """B minus A, per node, in total seconds: positive where B spent more."""
        return self.b.total_s - self.a.total_s


def union_tree(a: Profile, b: Profile, include_idle: bool = False) -> DiffTree:
    """Each run's tree mapped into a shared trie, frames matched by function and short file."""
    stacks = StackTable()
    frame_of: dict[tuple[str, str], int] = {}
    mapped = []
    for profile in (a, b):
        tree = profile.tree(weight="w" if include_idle else "active")
        with profile.lock:
            src_parent = profile.stacks.parent.view()[: tree.size]
            src_frame = profile.stacks.frame.view()[: tree.size]
            frames = profile.frames.frames
            node_map = np.zeros(tree.size, dtype=np.int64)
            for node in np.flatnonzero(tree.total_n > 0):
                if node == ROOT:
                    continue
                f = frames[int(src_frame[node])]
                key = (f.function, short_path(f.file))
                fid = frame_of.get(key)
                if fid is None:
                    fid = frame_of[key] = stacks.frames.intern(f.function, f.file, f.line)
                # Nodes come in topological order, so the parent is already mapped.
                node_map[node] = stacks.intern(stacks.path(int(node_map[src_parent[node]])) + [fid])
        mapped.append((tree, node_map))
    sides = []
    for tree, node_map in mapped:
        live = np.flatnonzero(tree.self_n > 0)
        rows = {"stack": node_map[live], "w": tree.self_s[live], "n": tree.self_n[live]}
        sides.append(build_tree(stacks, rows, "w"))
    return DiffTree(stacks, sides[0], sides[1])
