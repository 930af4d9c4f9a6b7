"""build_tree, CallTree.children / children_index and top_functions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradetop.model.calltree import build_tree, top_functions
from gradetop.model.stacks import ROOT, StackTable
from gradetop.model.timeline import Timeline
from model_helpers import FRAMES, build_stacks, frame_key, intern_named, samples, timeline_rows

SETTINGS = settings(max_examples=80, deadline=None)


def tree_of(stacks, nodes, ws, ns=None, weight="w"):
    ns = [1] * len(nodes) if ns is None else ns
    rows = timeline_rows(np.arange(len(nodes), dtype=np.float64), np.asarray(ws, np.float32),
                         np.asarray(nodes, np.int32), n=np.asarray(ns, np.uint32),
                         active=(np.asarray(ws, np.float32) / 4).astype(np.float32))
    return build_tree(stacks, rows, weight)


def _small():
    stacks = StackTable()
    main_f_g = intern_named(stacks, "main", "f", "g")
    main_f = intern_named(stacks, "main", "f")
    main_h = intern_named(stacks, "main", "h")
    main = intern_named(stacks, "main")
    unused = intern_named(stacks, "main", "never")
    return stacks, dict(main=main, f=main_f, g=main_f_g, h=main_h, unused=unused)


def test_hand_built_self_and_total():
    stacks, node = _small()
    tree = tree_of(stacks, [node["g"], node["f"], node["f"], node["h"], node["main"]], [1.0, 1.5, 0.5, 4.0, 0.5],
                   ns=[1, 2, 1, 3, 1])
    assert tree.size == len(stacks)
    expect_self = {"main": 0.5, "f": 2.0, "g": 1.0, "h": 4.0, "unused": 0.0}
    expect_total = {"main": 7.5, "f": 3.0, "g": 1.0, "h": 4.0, "unused": 0.0}
    for name, n in node.items():
        assert tree.self_s[n] == pytest.approx(expect_self[name])
        assert tree.total_s[n] == pytest.approx(expect_total[name])
    assert tree.self_s[ROOT] == 0.0
    assert tree.root_s == pytest.approx(7.5)
    assert list(tree.self_n[[node["main"], node["f"], node["g"], node["h"]]]) == [1, 3, 1, 3]
    assert tree.total_n[ROOT] == 8
    assert tree.total_n[node["f"]] == 4
    # children: weighted ones only, heaviest first.
    assert list(tree.children(ROOT)) == [node["main"]]
    assert list(tree.children(node["main"])) == [node["h"], node["f"]]
    assert list(tree.children(node["f"])) == [node["g"]]
    assert list(tree.children(node["g"])) == []
    index = tree.children_index()
    assert set(index) == {ROOT, node["main"], node["f"]}
    assert list(index[node["main"]]) == [node["h"], node["f"]]


def test_tree_of_active_column():
    stacks, node = _small()
    tree = tree_of(stacks, [node["g"], node["h"]], [2.0, 4.0], weight="active")
    assert tree.root_s == pytest.approx(1.5)
    assert tree.total_s[node["f"]] == pytest.approx(0.5)
    assert tree.total_n[ROOT] == 2


def test_empty_rows_give_a_zero_tree():
    stacks, node = _small()
    tree = tree_of(stacks, [], [])
    assert tree.root_s == 0.0
    assert not tree.total_n.any()
    assert list(tree.children(ROOT)) == []
    assert tree.children_index() == {}
    assert top_functions(tree) == []


def test_root_only_trie():
    stacks = StackTable()
    tree = tree_of(stacks, [ROOT, ROOT], [1.0, 2.0])
    assert tree.size == 1
    assert tree.root_s == pytest.approx(3.0)
    assert tree.self_s[ROOT] == pytest.approx(3.0)
    assert top_functions(tree) == []


def _check_tree(stacks, tree, nodes, ws, ns):
    parent = stacks.parent.view()
    kids = {n: [] for n in range(len(stacks))}
    for node in range(1, len(stacks)):
        kids[int(parent[node])].append(node)
    for node in range(len(stacks)):
        assert tree.total_s[node] == pytest.approx(tree.self_s[node] + sum(tree.total_s[k] for k in kids[node]),
                                                   rel=1e-9, abs=1e-9)
        assert tree.total_n[node] == tree.self_n[node] + sum(tree.total_n[k] for k in kids[node])
    ws32 = np.asarray(ws, np.float32).astype(np.float64)
    assert tree.root_s == pytest.approx(float(ws32.sum()), rel=1e-9, abs=1e-9)
    assert tree.total_n[ROOT] == sum(ns)
    # self = sum of the rows whose leaf is the node
    for node in range(len(stacks)):
        here = [i for i, n in enumerate(nodes) if n == node]
        assert tree.self_s[node] == pytest.approx(float(ws32[here].sum()), abs=1e-9)
        assert tree.self_n[node] == sum(ns[i] for i in here)
    # children() and children_index() agree, heaviest first, weighted children only.
    index = tree.children_index()
    for node in range(len(stacks)):
        live = [k for k in kids[node] if tree.total_n[k] > 0]
        got = list(tree.children(node))
        assert sorted(got) == sorted(live)
        assert all(tree.total_s[a] >= tree.total_s[b] for a, b in zip(got, got[1:]))
        if live:
            assert list(index[node]) == got
        else:
            assert node not in index


@SETTINGS
@given(samples())
def test_tree_sums_property(sample):
    paths, ws, ns = sample
    stacks, nodes = build_stacks(paths)
    tree = tree_of(stacks, nodes, ws, ns)
    _check_tree(stacks, tree, nodes, ws, ns)


# ---- top_functions --------------------------------------------------------------------------


def _rows_by_function(stacks, tree):
    return {(r.function, r.file): r for r in top_functions(tree)}


def test_recursive_function_counted_once():
    stacks = StackTable()
    abac = intern_named(stacks, "a", "b", "a", "c")
    aba = intern_named(stacks, "a", "b", "a")
    tree = tree_of(stacks, [abac, aba], [1.0, 2.0])
    rows = _rows_by_function(stacks, tree)
    a, b, c = (rows[(name, "/app/x.py")] for name in "abc")
    assert a.total_s == pytest.approx(3.0)  # not 3 + 3 for the inner `a`
    assert a.self_s == pytest.approx(2.0)
    assert a.total_n == 2 and a.self_n == 1
    assert b.total_s == pytest.approx(3.0) and b.self_s == 0.0
    assert c.total_s == pytest.approx(1.0) and c.self_s == pytest.approx(1.0)
    assert sum(r.self_s for r in rows.values()) == pytest.approx(tree.root_s)


def test_top_functions_order_and_lines():
    stacks = StackTable()
    f = [stacks.frames.intern("main", "/m.py", 3), stacks.frames.intern("work", "/m.py", 40),
         stacks.frames.intern("work", "/m.py", 12), stacks.frames.intern("io", "/m.py", 7)]
    nodes = [stacks.intern([f[0], f[1]]), stacks.intern([f[0], f[2]]), stacks.intern([f[0], f[3]]),
             stacks.intern([f[0]])]
    tree = tree_of(stacks, nodes, [1.0, 2.0, 2.5, 0.25])
    rows = top_functions(tree)
    assert [r.function for r in rows] == ["main", "work", "io"]
    assert [r.total_s for r in rows] == pytest.approx([5.75, 3.0, 2.5])
    assert [r.self_s for r in rows] == pytest.approx([0.25, 3.0, 2.5])
    assert rows[1].line == 12  # smallest line seen for the function
    assert rows[1].total_n == 2


def test_ties_in_total_break_by_self():
    stacks = StackTable()
    outer_inner = intern_named(stacks, "outer", "inner")
    tree = tree_of(stacks, [outer_inner], [1.0])
    assert [r.function for r in top_functions(tree)] == ["inner", "outer"]


def test_functions_without_samples_are_left_out():
    stacks, node = _small()
    tree = tree_of(stacks, [node["h"]], [1.0])
    assert [r.function for r in top_functions(tree)] == ["h", "main"]  # tie on total: more self first


@SETTINGS
@given(samples())
def test_top_functions_property(sample):
    paths, ws, ns = sample
    stacks, nodes = build_stacks(paths)
    tree = tree_of(stacks, nodes, ws, ns)
    rows = top_functions(tree)
    ws32 = np.asarray(ws, np.float32).astype(np.float64)
    # Naive: a function's total is the weight of samples with it anywhere on the stack (once),
    # its self the weight of samples with it as the leaf.
    total, self_, total_n, self_n = {}, {}, {}, {}
    for path, w, n in zip(paths, ws32, ns):
        keys = [frame_key(FRAMES[i]) for i in path]
        for key in set(keys):
            total[key] = total.get(key, 0.0) + w
            total_n[key] = total_n.get(key, 0) + n
        if keys:
            self_[keys[-1]] = self_.get(keys[-1], 0.0) + w
            self_n[keys[-1]] = self_n.get(keys[-1], 0) + n
    by_key = {(r.function, r.file): r for r in rows}
    assert set(by_key) == set(total)
    for key, r in by_key.items():
        assert r.total_s == pytest.approx(total[key], abs=1e-9)
        assert r.self_s == pytest.approx(self_.get(key, 0.0), abs=1e-9)
        assert r.total_n == total_n[key]
        assert r.self_n == self_n.get(key, 0)
        assert r.line == min(FRAMES[i][2] for p in paths for i in p if frame_key(FRAMES[i]) == key)
        assert r.self_s <= r.total_s + 1e-9
    # Self sums match the tree's (every non-root node's own time belongs to one function).
    assert sum(r.self_s for r in rows) == pytest.approx(float(tree.self_s[1:].sum()), abs=1e-9)
    assert sum(r.self_n for r in rows) == int(tree.self_n[1:].sum())
    # Ordered by total, then self, descending.
    for a, b in zip(rows, rows[1:]):
        assert (a.total_s, a.self_s) >= (b.total_s, b.self_s)


@SETTINGS
@given(samples(min_size=1), st.data())
def test_any_window_tree_sums_to_window_weight(sample, data):
    paths, ws, ns = sample
    stacks, nodes = build_stacks(paths)
    count = len(nodes)
    t = np.array(data.draw(st.lists(st.floats(0, 10, allow_nan=False), min_size=count, max_size=count)))
    pids = np.array(data.draw(st.lists(st.integers(1, 3), min_size=count, max_size=count)))
    tl = Timeline()
    tl.append(**timeline_rows(np.sort(t), np.asarray(ws, np.float32), np.asarray(nodes), pid=pids,
                              n=np.asarray(ns)))
    t0 = data.draw(st.floats(0, 10))
    t1 = data.draw(st.floats(t0, 10))
    pid_set = data.draw(st.none() | st.sets(st.integers(1, 3)))
    mask = tl.select(t0, t1, pid_set)
    tree = build_tree(stacks, tl.rows(mask))
    ts, w = tl.t, tl.w.astype(np.float64)
    inside = (ts >= t0) & (ts < t1)
    if pid_set is not None:
        inside &= np.isin(tl.pid, list(pid_set))
    assert tree.root_s == pytest.approx(float(w[inside].sum()), abs=1e-9)
    assert tree.total_n[ROOT] == int(tl.n[inside].sum())
    assert sum(r.self_s for r in top_functions(tree)) == pytest.approx(float(tree.self_s[1:].sum()), abs=1e-9)
