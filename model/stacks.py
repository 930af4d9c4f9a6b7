"""Interned frames and stacks.

Every distinct (function, file, line) is stored once and named by an integer;
every distinct stack is a node of a prefix trie over those integers, so a
stack id *is* a node of the calling-context tree and trees are derived by
summing sample weights over node ids. The queries at the end (a node's
ancestor at a depth, where a set of stacks splits) work on arrays of nodes.

Must never know about time or threads (that is the timeline's job), nor
depend on textual or rich.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradetop.model.growable import GrowableArray

ROOT = 0
"""Node id of the trie's root: the empty stack, above every thread's entry point."""


@dataclass(frozen=True, slots=True)
class Frame:
    function: str
    file: str
    line: int

    @property
    def label(self) -> str:
        return f"{self.function} ({short_path(self.file)}:{self.line})"


def short_path(path: str) -> str:
    """The part of a path a reader recognises: the package path below site-packages, or the file name."""
    for marker in ("site-packages/", "dist-packages/", "lib/python3"):
        cut = path.rfind(marker)
        if cut >= 0:
            rest = path[cut + len(marker):]
            if marker == "lib/python3":
                rest = rest.split("/", 1)[-1]
            return rest
    return path.rsplit("/", 1)[-1]


class FrameTable:
    """Frames interned once; `function_of[frame]` groups frames of one function."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self._ids: dict[tuple[str, str, int], int] = {}
        # A function is (name, file): the unit of the top-functions table.
        self._function_ids: dict[tuple[str, str], int] = {}
        self.functions: list[tuple[str, str]] = []
        self.function_of = GrowableArray(np.int32)
        self.line_of = GrowableArray(np.int64)

    def __len__(self) -> int:
        return len(self.frames)

    def frozen(self) -> "FrameTable":
        """The frames known now, for a reader that must not see later ones (read-only)."""
        copy = FrameTable.__new__(FrameTable)
        copy.frames = self.frames[:]
        copy.functions = self.functions[:]
        copy._ids, copy._function_ids = {}, {}
        copy.function_of = self.function_of.frozen()
        copy.line_of = self.line_of.frozen()
        return copy

    def intern(self, function: str, file: str, line: int) -> int:
        key = (function, file, line)
        fid = self._ids.get(key)
        if fid is None:
            fid = len(self.frames)
            self._ids[key] = fid
            self.frames.append(Frame(function, file, line))
            fkey = (function, file)
            func = self._function_ids.get(fkey)
            if func is None:
                func = len(self.functions)
                self._function_ids[fkey] = func
                self.functions.append(fkey)
            self.function_of.append(func)
            self.line_of.append(line)
        return fid


class StackTable:
    """A prefix trie of frame ids: node = (parent node, frame), root = node 0.

    Children are always created after their parent, so node ids are in
    topological order: summing from the last node to the first visits every
    child before its parent.
    """

    def __init__(self, frames: FrameTable | None = None) -> None:
        self.frames = frames if frames is not None else FrameTable()
        self.parent = GrowableArray(np.int32)
        self.frame = GrowableArray(np.int32)
        self.depth = GrowableArray(np.int16)
        # True where an ancestor runs the same function: such a node's total
        # is already inside the ancestor's, so function totals skip it.
        self.recursive = GrowableArray(np.bool_)
        self._children: dict[tuple[int, int], int] = {}
        self._paths: dict[tuple[int, ...], int] = {}
        """Whole stacks seen before -> node: one lookup where the trie takes one per frame."""
        self.parent.append(-1)
        self.frame.append(-1)
        self.depth.append(0)
        self.recursive.append(False)

    def __len__(self) -> int:
        return len(self.parent)

    def frozen(self) -> "StackTable":
        """The trie as it is now, read-only: the nodes that later ingest adds are not in it."""
        copy = StackTable.__new__(StackTable)
        copy.frames = self.frames.frozen()
        for name in ("parent", "frame", "depth", "recursive"):
            setattr(copy, name, getattr(self, name).frozen())
        copy._children = {}
        copy._paths = {}
        return copy

    def intern(self, frame_ids) -> int:
        """Node id of a stack given root-first frame ids."""
        node = ROOT
        children = self._children
        for depth, fid in enumerate(frame_ids):
            child = children.get((node, fid))
            if child is None:
                return self._add_path(node, [int(f) for f in frame_ids], depth)
            node = child
        return node

    def _add_path(self, node: int, frame_ids: list[int], depth: int) -> int:
        """The nodes of `frame_ids[depth:]` below `node` (the part of the path that is new), all at once:
        a new stack is 20-40 frames, and node by node each would walk its ancestors again."""
        functions = self.frames.function_of.view()[frame_ids].tolist()
        above = set(functions[:depth])
        first = len(self.parent)
        parents, recursive = [], []
        for k in range(depth, len(frame_ids)):
            self._children[(node, frame_ids[k])] = first + k - depth
            parents.append(node)
            recursive.append(functions[k] in above)
            above.add(functions[k])
            node = first + k - depth
        self.parent.extend(parents)
        self.frame.extend(frame_ids[depth:])
        self.depth.extend(np.arange(depth + 1, len(frame_ids) + 1))
        self.recursive.extend(recursive)
        return node

    def intern_path(self, path: tuple[int, ...]) -> int:
        """`intern` of a tuple of frame ids, remembered: a job shows the same few hundred stacks all day."""
        node = self._paths.get(path)
        if node is None:
            node = self._paths[path] = self.intern(path)
        return node

    def child(self, parent: int, fid: int) -> int:
        """The node of frame `fid` under `parent`, made if new (merging another trie node by node)."""
        node = self._children.get((parent, fid))
        return self.add_node(parent, fid) if node is None else node

    def add_node(self, parent: int, fid: int) -> int:
        """Append a new child of `parent` running frame `fid` (loading a saved trie node by node)."""
        node = len(self.parent)
        self._children[(parent, fid)] = node
        func = self.frames.function_of[fid]
        function_of = self.frames.function_of.view()
        frame = self.frame.view()
        parent_arr = self.parent.view()
        recursive = False
        ancestor = parent
        while ancestor > ROOT:
            if function_of[frame[ancestor]] == func:
                recursive = True
                break
            ancestor = parent_arr[ancestor]
        self.parent.append(parent)
        self.frame.append(fid)
        self.depth.append(self.depth[parent] + 1)
        self.recursive.append(recursive)
        return node

    def path(self, node: int) -> list[int]:
        """Frame ids from the root down to `node`."""
        frames = []
        parent = self.parent.view()
        frame = self.frame.view()
        while node > ROOT:
            frames.append(int(frame[node]))
            node = int(parent[node])
        frames.reverse()
        return frames

    def frames_of(self, node: int) -> list[Frame]:
        return [self.frames.frames[f] for f in self.path(node)]


# ---- queries over many nodes at once ---------------------------------------------------------


def _jumps(stacks: StackTable) -> list[np.ndarray]:
    """up[k][node]: the node's ancestor 2**k levels up (the root stays the root), kept while the trie is unchanged.

    Walking parents one level at a time made `ancestor_at` cost the depth
    in numpy passes, and callers ask for every level: opening a 1000-deep
    recursion took seconds per picture. With these it is log2(depth) passes.
    """
    n = len(stacks)
    cached = getattr(stacks, "_jump_cache", None)
    if cached is not None and cached[0] == n:
        return cached[1]
    up = stacks.parent.view()[:n].astype(np.int32)
    up[up < 0] = ROOT
    ups = [up]
    deepest = int(stacks.depth.view()[:n].max()) if n else 0
    while (1 << len(ups)) <= deepest:
        ups.append(ups[-1][ups[-1]])
    stacks._jump_cache = (n, ups)
    return ups


def ancestor_at(stacks: StackTable, nodes: np.ndarray, depth_wanted: int) -> np.ndarray:
    """Each node's ancestor at `depth_wanted` (the node itself when shallower)."""
    depth = stacks.depth.view()
    current = np.asarray(nodes).copy()
    steps = np.maximum(depth[current].astype(np.int64) - depth_wanted, 0)
    if not steps.any():
        return current
    for k, up in enumerate(_jumps(stacks)):
        bit = (steps >> k) & 1 == 1
        if bit.any():
            current = np.where(bit, up[current], current)
    return current


def functions_at(stacks: StackTable, nodes: np.ndarray, level: int) -> np.ndarray:
    """Per node, the function id of its frame at depth `level` (>= 1); -1 for nodes shallower than that."""
    anchors = ancestor_at(stacks, nodes, level)
    function_of = stacks.frames.function_of.view()
    frame = stacks.frame.view()
    at_level = (anchors > ROOT) & (stacks.depth.view()[anchors] == level)
    return np.where(at_level, function_of[np.maximum(frame[anchors], 0)], -1)


def divergence_depth(stacks: StackTable, nodes: np.ndarray, weights: np.ndarray, share: float = 0.8) -> int:
    """The depth at which a lane's work splits: one below the end of its heavy path.

    From the top, follow the function holding at least `share` of the time
    at each depth; where none does, the work splits. For a script that is
    the level below `main()` (load, preprocess, train...), and a few odd
    samples (imports at start-up, interpreter exit) do not move it.
    Functions, not stack nodes: the same function on two lines is one.
    """
    keep = nodes > ROOT
    nodes, weights = nodes[keep], weights[keep]
    if len(nodes) == 0:
        return 1
    depth = stacks.depth.view()
    for level in range(1, int(depth[nodes].max()) + 1):
        funcs = functions_at(stacks, nodes, level)
        codes, inverse = np.unique(funcs, return_inverse=True)
        totals = np.bincount(inverse, weights=weights)
        best = int(totals.argmax())
        if codes[best] < 0 or totals[best] < share * weights.sum():
            return level
        nodes, weights = nodes[inverse == best], weights[inverse == best]
    return max(1, int(depth[nodes].max()))
