"""Timeline: appends, select masks, rows, bucket_rows and multi-level compaction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradetop.model.timeline import COLUMNS, Compaction, Timeline, bucket_rows
from model_helpers import make_timeline, timeline_rows

SETTINGS = settings(max_examples=60, deadline=None)
RULES = (Compaction(age_s=10, bucket_s=1), Compaction(age_s=100, bucket_s=10))
KEY = ("stack", "pid", "tid", "flags")


# ---- append / basic accessors -----------------------------------------------------------


def test_append_broadcasts_scalars_and_keeps_dtypes():
    tl = Timeline()
    tl.append(t=np.array([1.0, 2.0, 3.0]), w=0.01, active=0.005, n=1, stack=np.array([1, 2, 1]), pid=7, tid=8, flags=0)
    assert len(tl) == 3
    for name, dtype in COLUMNS.items():
        assert tl.column(name).dtype == dtype
        assert len(getattr(tl, name)) == 3
    assert list(tl.pid) == [7, 7, 7]
    assert list(tl.stack) == [1, 2, 1]
    assert tl.samples == 3
    assert tl.span() == (1.0, 3.0)
    with pytest.raises(AttributeError):
        tl.no_such_column  # noqa: B018


def test_empty_timeline():
    tl = Timeline()
    assert len(tl) == 0
    assert tl.span() is None
    assert tl.samples == 0
    rows = tl.rows()
    assert all(len(v) == 0 for v in rows.values())
    assert tl.select(0, 10).shape == (0,)


def test_samples_counts_n_not_rows():
    tl = make_timeline(timeline_rows([1.0, 2.0], 0.5, 1, n=np.array([3, 4])))
    assert tl.samples == 7
    assert len(tl) == 2


def test_growth_past_initial_capacity():
    tl = Timeline()
    for i in range(10):
        tl.append(**timeline_rows(np.arange(300) + 300.0 * i, 0.01, i % 3))
    assert len(tl) == 3000
    assert np.array_equal(tl.t, np.arange(3000, dtype=np.float64))


# ---- select / rows ------------------------------------------------------------------------


def _example():
    t = np.array([0.0, 1.0, 1.5, 2.0, 3.0, 3.0, 4.0])
    return make_timeline(timeline_rows(
        t, np.arange(1, 8, dtype=np.float32), np.array([1, 2, 3, 1, 2, 3, 1]),
        pid=np.array([10, 10, 11, 11, 10, 12, 10]), tid=np.array([1, 2, 3, 3, 1, 4, 2])))


def test_select_time_is_half_open():
    tl = _example()
    assert list(np.flatnonzero(tl.select(1.0, 3.0))) == [1, 2, 3]
    assert list(np.flatnonzero(tl.select(t0=3.0))) == [4, 5, 6]
    assert list(np.flatnonzero(tl.select(t1=1.0))) == [0]
    assert tl.select().all()
    assert not tl.select(5.0, 6.0).any()
    assert not tl.select(2.0, 2.0).any()


def test_select_by_pid_and_tid():
    tl = _example()
    assert list(np.flatnonzero(tl.select(pids=[11]))) == [2, 3]
    assert list(np.flatnonzero(tl.select(pids={10, 12}))) == [0, 1, 4, 5, 6]
    assert list(np.flatnonzero(tl.select(tids=[3]))) == [2, 3]
    assert list(np.flatnonzero(tl.select(0.5, 3.5, pids=[10], tids=[1, 2]))) == [1, 4]
    assert not tl.select(pids=[]).any()
    assert not tl.select(pids=[99]).any()


def test_rows_masked_and_copies():
    tl = _example()
    rows = tl.rows(tl.select(pids=[10]))
    assert set(rows) == set(COLUMNS)
    assert list(rows["w"]) == [1.0, 2.0, 5.0, 7.0]
    assert list(rows["t"]) == [0.0, 1.0, 3.0, 4.0]
    everything = tl.rows()
    everything["w"][:] = 0
    rows["w"][:] = 0
    assert tl.w.sum() == 28.0, "rows() must hand out copies"


times = st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
bound = st.none() | times
id_sets = st.none() | st.lists(st.integers(0, 3), max_size=3)


@SETTINGS
@given(st.lists(st.tuples(times, st.integers(0, 3), st.integers(0, 3)), max_size=30), bound, bound, id_sets, id_sets)
def test_select_matches_naive_filter(rows, t0, t1, pids, tids):
    t = np.array([r[0] for r in rows], dtype=np.float64)
    tl = make_timeline(timeline_rows(t, np.arange(len(rows), dtype=np.float32), 1,
                                     pid=np.array([r[1] for r in rows], dtype=np.int32),
                                     tid=np.array([r[2] for r in rows], dtype=np.int32)))
    mask = tl.select(t0, t1, pids, tids)
    expected = [
        (t0 is None or ti >= t0) and (t1 is None or ti < t1) and (pids is None or p in pids)
        and (tids is None or q in tids)
        for ti, p, q in rows
    ]
    assert mask.dtype == bool
    assert list(mask) == expected
    picked = tl.rows(mask)
    assert list(picked["w"]) == [float(i) for i, keep in enumerate(expected) if keep]


# ---- bucket_rows --------------------------------------------------------------------------


def cut_of(newest: float, rule: Compaction) -> float:
    """Where compaction cuts: the rule's age, floored to its bucket edge."""
    return np.floor((newest - rule.age_s) / rule.bucket_s) * rule.bucket_s


def _key_sums(rows: dict[str, np.ndarray]) -> dict[tuple, tuple[float, float, int]]:
    """Per (stack, pid, tid, flags): sums of w, active (float64) and n."""
    out: dict[tuple, list] = {}
    if len(rows["t"]) == 0:
        return {}
    keys = np.stack([rows[k].astype(np.int64) for k in KEY], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    w = np.bincount(inverse, weights=rows["w"].astype(np.float64), minlength=len(uniq))
    a = np.bincount(inverse, weights=rows["active"].astype(np.float64), minlength=len(uniq))
    n = np.bincount(inverse, weights=rows["n"].astype(np.float64), minlength=len(uniq))
    for i, key in enumerate(map(tuple, uniq.tolist())):
        out[key] = (w[i], a[i], int(round(n[i])))
    return out


def _assert_same_sums(before: dict, after: dict) -> None:
    assert set(before) == set(after)
    for key, (w, a, n) in before.items():
        w2, a2, n2 = after[key]
        assert w2 == pytest.approx(w, rel=1e-5, abs=1e-5), key
        assert a2 == pytest.approx(a, rel=1e-5, abs=1e-5), key
        assert n2 == n, key


def test_bucket_rows_hand_made():
    rows = timeline_rows([0.1, 0.2, 0.9, 1.1, 0.3], np.array([1, 2, 3, 4, 5], dtype=np.float32),
                         np.array([1, 1, 1, 1, 2]), n=np.array([1, 1, 2, 1, 1]))
    out = bucket_rows(rows, 1.0)
    assert list(out["t"]) == [0.5, 0.5, 1.5]
    assert sorted(zip(out["stack"].tolist(), out["w"].tolist(), out["n"].tolist())) == [(1, 4.0, 1), (1, 6.0, 4), (2, 5.0, 1)]
    for name, dtype in COLUMNS.items():
        assert out[name].dtype == dtype


def test_bucket_rows_empty():
    out = bucket_rows(timeline_rows([], np.zeros(0, np.float32), np.zeros(0, np.int32)), 1.0)
    assert set(out) == set(COLUMNS)
    assert all(len(v) == 0 for v in out.values())


@SETTINGS
@given(
    st.lists(st.tuples(st.floats(0, 100, allow_nan=False), st.floats(0, 1, width=32), st.integers(1, 3),
                       st.integers(0, 2), st.integers(1, 2), st.integers(0, 1)), min_size=1, max_size=40),
    st.sampled_from([0.5, 1.0, 10.0]),
)
def test_bucket_rows_property(raw, bucket_s):
    t, w, stack, tid, n, flags = (np.array(c) for c in zip(*raw))
    rows = timeline_rows(t, w.astype(np.float32), stack, tid=tid, n=n, flags=flags, active=(w / 2).astype(np.float32))
    out = bucket_rows(rows, bucket_s)
    _assert_same_sums(_key_sums(rows), _key_sums(out))
    assert np.all(np.diff(out["t"]) >= 0)
    # One row per (bucket, key), at the bucket's middle.
    buckets = np.floor(out["t"] / bucket_s)
    assert np.allclose(out["t"], (buckets + 0.5) * bucket_s)
    keys = set(zip(buckets.tolist(), *(out[k].tolist() for k in KEY)))
    assert len(keys) == len(out["t"])
    in_keys = set(zip(np.floor(t / bucket_s).tolist(), *(rows[k].tolist() for k in KEY)))
    assert keys == in_keys


# ---- compaction -----------------------------------------------------------------------------


class Run:
    """A simulated recording: windows of samples of a few threads, appended thread by thread
    (as Profile does), compacted after every window. Keeps every raw row to check against."""

    def __init__(self, threads=((1, 11), (1, 12), (2, 21)), rules=RULES) -> None:
        self.tl = Timeline(compaction=rules)
        self.rules = rules
        self.threads = threads
        self.raw: list[dict[str, np.ndarray]] = []
        self.now = 1000.0

    def window(self, rng: np.random.Generator, dt: float, per_thread: int, lag: float = 0.0) -> None:
        start = self.now - lag
        for pid, tid in self.threads:
            count = int(rng.integers(0, per_thread + 1))
            t = np.sort(start + rng.random(count) * dt)
            w = rng.random(count).astype(np.float32) * 0.05
            rows = timeline_rows(
                t, w, rng.integers(1, 5, count), pid=pid, tid=tid,
                active=(w * rng.random(count).astype(np.float32)).astype(np.float32),
                n=rng.integers(1, 3, count), flags=rng.integers(0, 2, count),
            )
            self.tl.append(**rows)
            self.raw.append(rows)
        self.now += dt

    def compact(self, check: bool = True) -> None:
        before = len(self.tl)
        if before == 0:
            return  # compact() of an empty timeline is a known bug: see test_compact_empty_timeline_is_a_noop
        self.tl.compact(min_new_rows=0)
        assert len(self.tl) <= before
        assert len(self.tl) == len(self.tl.n) == len(self.tl.flags)
        if check:
            self.check()

    def raw_rows(self) -> dict[str, np.ndarray]:
        if not self.raw:
            return timeline_rows([], np.zeros(0, np.float32), np.zeros(0, np.int32))
        return {name: np.concatenate([r[name] for r in self.raw]) for name in COLUMNS}

    def check(self) -> None:
        raw = self.raw_rows()
        tl = self.tl
        got = tl.rows()
        for name, dtype in COLUMNS.items():
            assert got[name].dtype == dtype and len(got[name]) == len(tl)
        # 1. Nothing is lost: per (stack, pid, tid, flags) the sums of w, active and n are kept.
        _assert_same_sums(_key_sums(raw), _key_sums(got))
        assert tl.samples == int(raw["n"].sum())
        # 2. Rows only ever shrink.
        assert len(tl) <= len(raw["t"])
        if len(tl) == 0:
            return
        newest = float(raw["t"].max())
        assert float(tl.t.max()) == newest
        # 3. Recent rows (younger than the first cut) are untouched, in their order, at the end.
        recent = raw["t"] >= cut_of(newest, self.rules[0])
        k = int(recent.sum())
        for name in COLUMNS:
            assert np.array_equal(got[name][len(tl) - k:], raw[name][recent]), name
        # 4. Every row older than a rule's cut (its age, floored to a bucket edge so that no
        #    bucket is merged in parts) is a bucket of that rule or a coarser one.
        t = got["t"]
        level0 = np.isclose(np.mod(t, self.rules[0].bucket_s), self.rules[0].bucket_s / 2)
        level1 = np.isclose(np.mod(t, self.rules[1].bucket_s), self.rules[1].bucket_s / 2)
        cut0, cut1 = (cut_of(newest, rule) for rule in self.rules)
        assert np.all(level0[t < cut0] | level1[t < cut0])
        assert np.all(level1[t < cut1])


def test_compaction_one_shot_hand_checked():
    tl = Timeline(compaction=RULES)
    t = 0.05 + np.arange(0, 300, 0.1)  # 300 s at 10 Hz, one thread, two stacks alternating
    stack = np.arange(len(t)) % 2 + 1
    rows = timeline_rows(t, np.full(len(t), 0.1, np.float32), stack, active=np.full(len(t), 0.025, np.float32))
    tl.append(**rows)
    tl.compact(min_new_rows=0)
    _assert_same_sums(_key_sums(rows), _key_sums(tl.rows()))
    newest = t.max()
    # The last 10 s stay raw; the next 90 s are 1 s buckets (2 stacks each); the rest are 10 s buckets.
    recent = t >= newest - 10
    assert np.array_equal(tl.t[-recent.sum():], t[recent])
    assert len(tl) < len(t) / 5
    old = tl.t < cut_of(newest, Compaction(age_s=100, bucket_s=10))
    assert np.all(np.mod(tl.t[old], 10) == 5)
    assert np.all(tl.n[old][:-2] == 50)  # full 10 s buckets of one stack: 50 samples each
    assert tl.w[old][:-2] == pytest.approx(5.0, rel=1e-5)


def test_compaction_noop_below_threshold_and_without_rules():
    rows = timeline_rows(np.arange(0, 500.0), np.full(500, 0.1, np.float32), 1)
    tl = make_timeline(rows, compaction=RULES)
    tl.compact()  # default threshold: 50 000 new rows
    assert len(tl) == 500
    tl = make_timeline(rows, compaction=())
    tl.compact(min_new_rows=0)
    assert len(tl) == 500


def test_compaction_is_idempotent_without_new_rows():
    tl = make_timeline(timeline_rows(np.arange(0, 500.0, 0.25), np.full(2000, 0.1, np.float32), 1), compaction=RULES)
    tl.compact(min_new_rows=0)
    first = tl.rows()
    tl.compact(min_new_rows=0)
    second = tl.rows()
    for name in COLUMNS:
        assert np.array_equal(first[name], second[name])


@pytest.mark.parametrize("seed", range(2))
def test_long_run_compacted_every_window(seed):
    rng = np.random.default_rng(seed)
    run = Run()
    for step in range(400):
        run.window(rng, dt=float(rng.uniform(0.2, 2.0)), per_thread=12)
        run.compact(check=step % 10 == 0)
    run.check()
    # Seven-odd minutes of 3 threads: fewer rows than samples, the sums all there.
    # (Not as few as one row per bucket and key: see test_frequent_compaction_one_row_per_bucket.)
    assert len(run.tl) < len(run.raw_rows()["t"])


def test_long_run_with_late_windows():
    """A process's window may come in late (its py-spy lags): its rows land after newer ones."""
    rng = np.random.default_rng(7)
    run = Run()
    for step in range(300):
        lag = float(rng.choice([0.0, 0.0, 0.0, 3.0, 15.0, 120.0]))
        run.window(rng, dt=1.0, per_thread=8, lag=lag)
        if step % 3 == 0:
            run.compact()
    run.compact()


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.1, 30.0), st.integers(0, 10), st.sampled_from([0.0, 0.0, 0.0, 5.0, 50.0])),
             min_size=1, max_size=40),
    st.integers(0, 2**32 - 1),
    st.integers(1, 4),
)
def test_compaction_invariants_property(steps, seed, every):
    rng = np.random.default_rng(seed)
    run = Run()
    for i, (dt, per_thread, lag) in enumerate(steps):
        run.window(rng, dt, per_thread, lag)
        if i % every == 0:
            run.compact()
    run.compact()


def test_compact_keeps_t_sorted_when_appends_are_sorted():
    t = np.round(np.arange(0.0, 20.3, 0.1), 6)  # newest 20.2 -> cut 10.2: bucket [10, 11) is split
    tl = make_timeline(timeline_rows(t, np.full(len(t), 0.1, np.float32), 1), compaction=RULES)
    tl.compact(min_new_rows=0)
    # Actual: [... 9.5, 10.5, 10.2, 10.3, ...]: the bucket row at 10.5 sits before raw rows 10.2-10.4.
    assert np.all(np.diff(tl.t) >= 0), tl.t[8:16]


def test_compact_empty_timeline_is_a_noop():
    tl = Timeline(compaction=RULES)
    tl.compact(min_new_rows=0)
    assert len(tl) == 0


def test_frequent_compaction_one_row_per_bucket():
    tl = Timeline(compaction=RULES)
    for second in range(300):  # one thread, one stack, 10 Hz, compacted after every 1 s window
        t = second + 0.05 + np.arange(10) * 0.1
        tl.append(**timeline_rows(t, np.full(10, 0.1, np.float32), 1))
        tl.compact(min_new_rows=0)
    newest = float(tl.t.max())
    old = tl.t < newest - 110  # well inside the 10 s level
    buckets = np.floor(tl.t[old] / 10)
    # Expected one row per 10 s bucket (n == 100 each); actual: about ten partial rows per bucket.
    assert len(np.unique(buckets)) == len(buckets), np.unique(buckets, return_counts=True)[1]
