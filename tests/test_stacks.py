"""FrameTable and StackTable: interning, topological ids, paths, recursion marks."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gradetop.model.stacks import ROOT, Frame, FrameTable, StackTable, short_path
from model_helpers import FRAMES, build_stacks, frame_key, intern_named, paths

SETTINGS = settings(max_examples=80, deadline=None)


# ---- FrameTable -------------------------------------------------------------------


def test_frame_intern_is_idempotent_and_dense():
    table = FrameTable()
    a = table.intern("f", "/x.py", 1)
    b = table.intern("g", "/x.py", 1)
    assert (a, b) == (0, 1)
    assert table.intern("f", "/x.py", 1) == a
    assert table.intern("g", "/x.py", 1) == b
    assert len(table) == 2
    assert table.frames == [Frame("f", "/x.py", 1), Frame("g", "/x.py", 1)]


def test_frames_of_one_function_share_a_function_id():
    table = FrameTable()
    f1 = table.intern("f", "/x.py", 1)
    f2 = table.intern("f", "/x.py", 9)
    other_file = table.intern("f", "/y.py", 1)
    g = table.intern("g", "/x.py", 1)
    func = table.function_of
    assert func[f1] == func[f2]
    assert len({int(func[f1]), int(func[other_file]), int(func[g])}) == 3
    assert table.functions == [("f", "/x.py"), ("f", "/y.py"), ("g", "/x.py")]
    assert list(table.line_of.view()) == [1, 9, 1, 1]


@SETTINGS
@given(st.lists(st.sampled_from(FRAMES), max_size=40))
def test_frame_intern_property(frames):
    table = FrameTable()
    ids = [table.intern(*f) for f in frames]
    again = [table.intern(*f) for f in frames]
    assert ids == again
    assert len(table) == len(set(frames))
    for f, fid in zip(frames, ids):
        assert table.frames[fid] == Frame(*f)
        assert table.functions[table.function_of[fid]] == frame_key(f)
        assert table.line_of[fid] == f[2]
    # Same id exactly when same (function, file, line).
    for f, fid in zip(frames, ids):
        for g, gid in zip(frames, ids):
            assert (fid == gid) == (f == g)


# ---- StackTable -------------------------------------------------------------------


def test_empty_stack_is_the_root():
    stacks = StackTable()
    assert len(stacks) == 1
    assert stacks.intern([]) == ROOT
    assert stacks.path(ROOT) == []
    assert stacks.parent[ROOT] == -1
    assert stacks.depth[ROOT] == 0
    assert not stacks.recursive[ROOT]


def test_stack_intern_is_idempotent_and_shares_prefixes():
    stacks = StackTable()
    abc = intern_named(stacks, "a", "b", "c")
    assert len(stacks) == 4
    assert intern_named(stacks, "a", "b", "c") == abc
    assert len(stacks) == 4
    abd = intern_named(stacks, "a", "b", "d")
    assert len(stacks) == 5  # only `d` is new
    assert stacks.parent[abd] == stacks.parent[abc]
    ab = intern_named(stacks, "a", "b")
    assert ab == stacks.parent[abc]
    assert [f.function for f in stacks.frames_of(abd)] == ["a", "b", "d"]


def test_recursive_marks_hand_built():
    stacks = StackTable()
    # a -> b -> a -> c: the inner `a` is recursive, nothing else is.
    leaf = intern_named(stacks, "a", "b", "a", "c")
    nodes = [*_ancestors(stacks, leaf)]
    assert [stacks.frames.frames[stacks.frame[n]].function for n in nodes] == ["a", "b", "a", "c"]
    assert [bool(stacks.recursive[n]) for n in nodes] == [False, False, True, False]
    # Same function on another line is still recursion; same name in another file is not.
    f1 = stacks.frames.intern("f", "/m.py", 1)
    f2 = stacks.frames.intern("f", "/m.py", 2)
    f_other = stacks.frames.intern("f", "/other.py", 1)
    node = stacks.intern([f1, f2])
    assert stacks.recursive[node]
    node = stacks.intern([f1, f_other])
    assert not stacks.recursive[node]
    # Direct self-recursion with the identical frame.
    node = stacks.intern([f1, f1, f1])
    assert [bool(stacks.recursive[n]) for n in _ancestors(stacks, node)] == [False, True, True]


def _ancestors(stacks: StackTable, node: int) -> list[int]:
    out = []
    while node != ROOT:
        out.append(node)
        node = int(stacks.parent[node])
    return out[::-1]


def _naive_recursive(stacks: StackTable, node: int) -> bool:
    funcs = [stacks.frames.functions[stacks.frames.function_of[f]] for f in stacks.path(node)]
    return funcs[-1] in funcs[:-1]


def _check_trie(stacks: StackTable) -> None:
    parent = stacks.parent.view()
    depth = stacks.depth.view()
    size = len(stacks)
    assert len(stacks.frame) == len(depth) == len(stacks.recursive) == size
    for node in range(1, size):
        assert 0 <= parent[node] < node, "ids must be topological: parent before child"
        assert depth[node] == depth[parent[node]] + 1
        assert depth[node] == len(stacks.path(node))
        assert bool(stacks.recursive[node]) == _naive_recursive(stacks, node)
    # No duplicate (parent, frame) pairs: every stack is one node.
    pairs = set(zip(parent[1:].tolist(), stacks.frame.view()[1:].tolist()))
    assert len(pairs) == size - 1


@SETTINGS
@given(st.lists(paths, max_size=30))
def test_stack_intern_property(stack_paths):
    stacks, nodes = build_stacks(stack_paths)
    fids = [stacks.frames.intern(*f) for f in FRAMES]
    _check_trie(stacks)
    for path, node in zip(stack_paths, nodes):
        global_path = [fids[i] for i in path]
        assert stacks.path(node) == global_path  # path() round-trips intern()
        assert stacks.intern(global_path) == node  # idempotent
        assert [tuple(vars_of(f)) for f in stacks.frames_of(node)] == [FRAMES[i] for i in path]
    # Node count = distinct non-empty prefixes + the root.
    prefixes = {tuple(p[:k]) for p in stack_paths for k in range(1, len(p) + 1)}
    assert len(stacks) == len(prefixes) + 1
    # Equal paths share a node, different paths do not.
    for p, a in zip(stack_paths, nodes):
        for q, b in zip(stack_paths, nodes):
            assert (a == b) == (list(p) == list(q))


def vars_of(frame: Frame):
    return (frame.function, frame.file, frame.line)


@SETTINGS
@given(st.lists(paths, max_size=30))
def test_add_node_rebuild_matches(stack_paths):
    """Loading a trie node by node (as snapshots do) rebuilds depth, marks and the child index."""
    stacks, nodes = build_stacks(stack_paths)
    copy = StackTable(stacks.frames)
    for node in range(1, len(stacks)):
        assert copy.add_node(int(stacks.parent[node]), int(stacks.frame[node])) == node
    for name in ("parent", "frame", "depth", "recursive"):
        assert np.array_equal(getattr(copy, name).view(), getattr(stacks, name).view())
    fids = [stacks.frames.intern(*f) for f in FRAMES]
    size = len(copy)
    for path, node in zip(stack_paths, nodes):
        assert copy.intern([fids[i] for i in path]) == node
    assert len(copy) == size


def test_many_nodes_grow_arrays():
    stacks = StackTable()
    fids = [stacks.frames.intern(f"f{i}", "/x.py", i) for i in range(300)]
    leaf = stacks.intern(fids)
    assert leaf == 300
    assert stacks.path(leaf) == fids
    assert stacks.depth[leaf] == 300
    assert not stacks.recursive.view().any()


def test_short_path_and_label():
    assert short_path("/usr/lib/python3.11/site-packages/torch/nn/module.py") == "torch/nn/module.py"
    assert short_path("/usr/lib/python3/dist-packages/numpy/core.py") == "numpy/core.py"
    assert short_path("/usr/lib/python3.11/threading.py") == "threading.py"
    assert short_path("/home/me/train.py") == "train.py"
    assert short_path("train.py") == "train.py"
    assert Frame("step", "/home/me/train.py", 12).label == "step (train.py:12)"
