"""collectors.pyspy.parse_chrometrace on a Chrome trace written by hand, as py-spy writes it (--idle -t)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gradetop.collectors.pyspy import last_change_s, parse_chrometrace


def event(ph: str, name: str, ts: int, tid: int = 7, filename: str = "job.py", line: int = 1) -> dict:
    return {"args": {"filename": filename, "line": line}, "cat": "py-spy", "name": name, "ph": ph,
            "pid": 42, "tid": tid, "ts": ts}


def thread(ph: str, ts: int, tid: int = 7, os_tid: int = 1001, name: str = "MainThread") -> dict:
    return {"args": {"filename": "", "line": 0}, "cat": "py-spy", "name": f"thread ({os_tid}): {name}",
            "ph": ph, "pid": 42, "tid": tid, "ts": ts}


# main runs f from its first tick (ts 1000 us), g from 51000 us, and py-spy closes everything at 101000 us.
TRACE = json.dumps([
    thread("B", 1000), event("B", "main", 1000), event("B", "f", 1000, line=3),
    event("E", "f", 51000, line=3), event("B", "g", 51000, line=5),
    event("E", "g", 101000, line=5), event("E", "main", 101000), thread("E", 101000),
])


def test_each_change_keeps_its_time_and_each_stretch_is_ticks():
    batch = parse_chrometrace(TRACE, 42, t_first=10.0, t_end=10.1, rate_hz=100.0)
    (ts,) = batch.threads
    assert (ts.pid, ts.tid, ts.name) == (42, 1001, "MainThread")
    names = [[batch.frames[i][0] for i in stack] for stack in batch.stacks_of(ts)]
    assert names == [["main", "f"]] * 5 + [["main", "g"]] * 5
    assert np.allclose(ts.weights, 0.01) and ts.weights.sum() == pytest.approx(0.1)
    assert ts.times[0] == pytest.approx(10.005) and ts.times[5] == pytest.approx(10.055)


def test_on_py_spys_own_clock_a_change_is_placed_a_tick_before_the_tick_that_saw_it():
    # py-spy exec'd at 9.99 (its ts 0): g was seen at 9.99 + 0.051; ticks come one 1/rate apart on
    # average (exponential), so g began about 10 ms before that. The first stack reaches back to t_from.
    batch = parse_chrometrace(TRACE, 42, t_first=10.0, t_end=10.1, rate_hz=100.0, t_zero=9.99)
    (ts,) = batch.threads
    names = [batch.frames[stack[-1]][0] for stack in batch.stacks_of(ts)]
    g = names.index("g")
    assert ts.times[g] - ts.weights[g] / 2 == pytest.approx(9.99 + 0.051 - 0.01)
    assert ts.times[0] - ts.weights[0] / 2 == pytest.approx(10.0)
    # py-spy closed every stack as it wrote the file (ts 101000, not seen at a tick): the end stays there.
    assert ts.weights.sum() == pytest.approx(9.99 + 0.101 - 10.0)


def test_a_cut_keeps_what_came_before_it_and_the_first_stretch_reaches_back():
    batch = parse_chrometrace(TRACE, 42, t_first=10.0, t_end=10.07, rate_hz=100.0, t_from=9.98)
    (ts,) = batch.threads
    assert ts.weights.sum() == pytest.approx(0.09)  # 9.98 .. 10.07
    assert ts.times[0] > 9.98 and ts.times[-1] < 10.07
    assert (batch.t_start, batch.t_end) == (9.98, 10.07)


def test_ticks_are_py_spys_traces_over_the_threads_it_saw():
    assert parse_chrometrace(TRACE, 42, 10.0, 10.1, 100.0, traces=9).ticks == 9
    assert parse_chrometrace(TRACE, 42, 10.0, 10.05, 100.0, traces=8).ticks == 4  # half of it kept
    assert parse_chrometrace(TRACE, 42, 10.0, 10.1, 100.0).ticks == 10  # not said: the asked rate


def test_last_change_is_the_one_before_the_closing():
    assert last_change_s(TRACE) == pytest.approx(0.05)
    assert last_change_s("[]") is None


def test_a_torn_file_is_an_error_the_sampler_catches():
    with pytest.raises(ValueError):
        parse_chrometrace(TRACE[: len(TRACE) // 2], 42, 10.0, 10.1, 100.0)
