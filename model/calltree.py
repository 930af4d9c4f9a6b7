"""The calling-context tree of any slice of samples, and the top-functions table.

Both are pure functions of (stack trie, sample rows): filter the timeline
first (by time, process, thread), then build. Nothing is cached here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradetop.model.stacks import ROOT, StackTable


@dataclass(frozen=True)
class CallTree:
    """Per-node weights over the nodes of a stack trie (index = node id).

    `self_*` counts samples whose leaf is the node; `total_*` adds the
    node's whole subtree. Seconds are wall seconds, or on-CPU seconds when
    the tree was built with `weight="active"` (time running or runnable).
    """

    stacks: StackTable
    self_s: np.ndarray
    total_s: np.ndarray
    self_n: np.ndarray
    total_n: np.ndarray

    @property
    def size(self) -> int:
        return len(self.self_s)

    @property
    def root_s(self) -> float:
        return float(self.total_s[ROOT]) if self.size else 0.0

    def children(self, node: int) -> np.ndarray:
        """Child node ids of `node` that carry weight, heaviest first."""
        parent = self.stacks.parent.view()[: self.size]
        kids = np.flatnonzero((parent == node) & (self.total_n > 0))
        return kids[np.argsort(-self.total_s[kids], kind="stable")]

    def children_index(self) -> dict[int, np.ndarray]:
        """All children lists at once (parent -> heaviest-first child ids), for drawing whole trees."""
        parent = self.stacks.parent.view()[: self.size]
        live = np.flatnonzero(self.total_n > 0)
        live = live[live != ROOT]
        order = np.lexsort((-self.total_s[live], parent[live]))
        live = live[order]
        parents = parent[live]
        splits = np.flatnonzero(np.diff(parents)) + 1
        return {int(group_parent[0]): group for group_parent, group in
                zip(np.split(parents, splits), np.split(live, splits)) if len(group)}


def build_tree(stacks: StackTable, rows: dict[str, np.ndarray], weight: str = "w") -> CallTree:
    """Sum sample rows into the trie: `weight` is the column of seconds ("w" wall, "active" running or runnable)."""
    size = len(stacks)
    stack = rows["stack"]
    self_s = np.bincount(stack, weights=rows[weight], minlength=size).astype(np.float64)
    self_n = np.bincount(stack, weights=rows["n"], minlength=size).astype(np.int64)
    total_s = self_s.copy()
    total_n = self_n.copy()
    parent = stacks.parent.view()[:size]
    depth = stacks.depth.view()[:size]
    # Children sit one level below their parents: fold the deepest level up first.
    for level in range(int(depth.max(initial=0)), 0, -1):
        nodes = np.flatnonzero(depth == level)
        np.add.at(total_s, parent[nodes], total_s[nodes])
        np.add.at(total_n, parent[nodes], total_n[nodes])
    return CallTree(stacks, self_s, total_s, self_n, total_n)


@dataclass(frozen=True)
class FunctionRow:
    function: str
    file: str
    line: int
    self_s: float
    total_s: float
    self_n: int
    total_n: int


def top_functions(tree: CallTree) -> list[FunctionRow]:
    """Own and total seconds per function, sorted by total then own time.

    A recursive function counts each sample once in its total: nodes with
    the same function above them are skipped (their time is in the ancestor's).
    """
    stacks = tree.stacks
    size = tree.size
    if size <= 1:
        return []
    frame = stacks.frame.view()[1:size]
    func = stacks.frames.function_of.view()[frame]
    outer = ~stacks.recursive.view()[1:size]
    nfunc = len(stacks.frames.functions)
    self_s = np.bincount(func, weights=tree.self_s[1:], minlength=nfunc)
    self_n = np.bincount(func, weights=tree.self_n[1:], minlength=nfunc)
    total_s = np.bincount(func[outer], weights=tree.total_s[1:][outer], minlength=nfunc)
    total_n = np.bincount(func[outer], weights=tree.total_n[1:][outer], minlength=nfunc)
    # A function's frames carry the lines it was seen on; the smallest is nearest its start.
    line = np.full(nfunc, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(line, func, stacks.frames.line_of.view()[frame])
    seen = np.flatnonzero(total_n > 0)
    order = seen[np.lexsort((-self_s[seen], -total_s[seen]))]
    names = stacks.frames.functions
    return [
        FunctionRow(names[i][0], names[i][1], int(line[i]), float(self_s[i]), float(total_s[i]),
                    int(self_n[i]), int(total_n[i]))
        for i in order
    ]
