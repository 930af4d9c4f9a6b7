"""build_report's JSON contract and format_report's text."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings

from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import (
    ProcessEnded,
    ProcessReading,
    ResourceBatch,
    SamplerNote,
    StackBatch,
    ThreadSamples,
)
from gradetop.model.report import build_report, format_report
from gradetop.model.report import REPORT_VERSION as VERSION
from model_helpers import metas, profile_from, records

SETTINGS = settings(max_examples=60, deadline=None)
FILE = "/home/me/project/train.py"


def reading(t_active: float, pid: int = 100, tid: int = 100) -> ProcessReading:
    return ProcessReading(pid, 1, "python", ["python", "train.py"], 999.0, "running", 1.0, 1 << 20, 0, 0, 1,
                          {tid: (t_active, t_active)})


def known_profile(**meta) -> Profile:
    """100 samples of 0.1 s over [1000, 1010): 60 in forward, 30 in load, 10 in main itself.

    The thread's kernel counter says it ran 4 of those 10 s, evenly: active = 0.4 * wall.
    """
    p = Profile(ProfileMeta(host="box", start_time=1000.0, end_time=1010.0, rate_hz=10.0,
                            command=["python", "train.py"], target_pid=100, **meta))
    p.ingest(ResourceBatch(1000.0, [reading(0.0)]))
    p.ingest(ResourceBatch(1010.0, [reading(4.0)]))
    frames = [("main", FILE, 1), ("train", FILE, 10), ("forward", FILE, 20), ("load", FILE, 30)]
    stacks = [(0, 1, 2)] * 60 + [(0, 1, 3)] * 30 + [(0,)] * 10
    times = 1000.05 + np.arange(100) * 0.1
    p.ingest(StackBatch(100, 1000.0, 1010.0, 100, frames,
                        [ThreadSamples(100, 100, "MainThread", times, np.full(100, 0.1, np.float32), stacks)],
                        {100: "python train.py"}))
    p.ingest(ResourceBatch(1001.0, [ProcessReading(200, 100, "bash", ["bash", "-c", "x"], 1000.0, "sleeping",
                                                   0.1, 1000, -1, -1, 1, {})]))
    p.ingest(SamplerNote(1001.0, 200, "not-python", "not Python"))
    p.ingest(ProcessEnded(200, 1005.0, 3))
    return p


def check_contract(report: dict) -> None:
    assert isinstance(report["version"], int) and report["version"] == VERSION
    assert isinstance(report["duration_s"], (int, float)) and report["duration_s"] >= 0
    assert isinstance(report["samples"], int) and not isinstance(report["samples"], bool)
    assert isinstance(report["rate_hz"], (int, float))
    assert isinstance(report["processes"], list)
    for p in report["processes"]:
        assert {"pid", "ppid", "cmdline", "exit_code"} <= set(p)
        assert isinstance(p["pid"], int) and isinstance(p["ppid"], int)
        assert isinstance(p["cmdline"], str)
        assert p["exit_code"] is None or isinstance(p["exit_code"], int)
    assert isinstance(report["functions"], list)
    for f in report["functions"]:
        assert {"function", "file", "line", "self_s", "total_s"} <= set(f)
        assert isinstance(f["function"], str) and isinstance(f["file"], str) and isinstance(f["line"], int)
        assert isinstance(f["self_s"], float) and isinstance(f["total_s"], float)
        assert 0 <= f["self_s"] <= f["total_s"] + 1e-6
    totals = [f["total_s"] for f in report["functions"]]
    assert totals == sorted(totals, reverse=True)
    assert isinstance(report["phases"], list)
    json.loads(json.dumps(report))  # the --json contract: plain JSON types only


def functions_by_name(report: dict) -> dict[str, dict]:
    return {f["function"]: f for f in report["functions"]}


def test_contract_and_wall_seconds():
    report = build_report(known_profile(), include_idle=True)
    check_contract(report)
    assert report["duration_s"] == pytest.approx(10.0)
    assert report["samples"] == 100
    assert report["rate_hz"] == 10.0
    assert report["idle_included"] is True
    funcs = functions_by_name(report)
    assert [f["function"] for f in report["functions"]] == ["main", "train", "forward", "load"]
    expect = {"main": (1.0, 10.0), "train": (0.0, 9.0), "forward": (6.0, 6.0), "load": (3.0, 3.0)}
    for name, (self_s, total_s) in expect.items():
        assert funcs[name]["self_s"] == pytest.approx(self_s, rel=1e-5), name
        assert funcs[name]["total_s"] == pytest.approx(total_s, rel=1e-5), name
        assert funcs[name]["file"] == FILE
    assert funcs["forward"]["line"] == 20
    assert funcs["forward"]["total_samples"] == 60


def test_active_seconds_without_idle():
    profile = known_profile()
    report = build_report(profile, include_idle=False)
    check_contract(report)
    assert report["idle_included"] is False
    funcs = functions_by_name(report)
    # The kernel counter grew by 4 s over the 10 s the samples tile: 0.4 of each sample's wall time.
    expect = {"main": (0.4, 4.0), "train": (0.0, 3.6), "forward": (2.4, 2.4), "load": (1.2, 1.2)}
    for name, (self_s, total_s) in expect.items():
        assert funcs[name]["self_s"] == pytest.approx(self_s, rel=1e-4, abs=1e-6), name
        assert funcs[name]["total_s"] == pytest.approx(total_s, rel=1e-4, abs=1e-6), name
    # ... and they are exactly the timeline's `active` column.
    assert float(profile.timeline.active.astype(np.float64).sum()) == pytest.approx(4.0, rel=1e-5)
    assert funcs["main"]["total_s"] == pytest.approx(float(profile.timeline.active.astype(np.float64).sum()),
                                                     abs=1e-6)


def test_idle_default_comes_from_options():
    assert build_report(known_profile(options={"idle": True}))["idle_included"] is True
    assert build_report(known_profile(options={}))["idle_included"] is False
    wall = functions_by_name(build_report(known_profile(options={"idle": True})))
    assert wall["main"]["total_s"] == pytest.approx(10.0, rel=1e-5)


def test_processes_and_limit():
    report = build_report(known_profile(), include_idle=True, limit=2)
    assert [f["function"] for f in report["functions"]] == ["main", "train"]
    procs = {p["pid"]: p for p in report["processes"]}
    assert set(procs) == {100, 200}
    assert procs[100]["cmdline"] == "python train.py"
    assert procs[100]["exit_code"] is None
    assert procs[200] == {"pid": 200, "ppid": 100, "cmdline": "bash -c x", "exit_code": 3, "sampled": False,
                          "why_not_sampled": "not Python", "role": "child", "host": procs[200]["host"], "host_pid": 200,
                          "rank": None, "local_rank": None, "world_size": None, "started_s": 0.0, "ended_s": 5.0,
                          **{k: procs[200][k] for k in ("cpu_s", "rss_bytes", "read_bytes", "write_bytes",
                                                         "samples", "coverage", "quiet_s", "parked_s")}}
    assert procs[200]["samples"] == 0 and procs[100]["samples"] > 0 and procs[100]["rss_bytes"] > 0
    assert [p["pid"] for p in report["processes"]] == [100, 200]  # by create time
    assert report["threads"] == [{"pid": 100, "tid": 100, "name": "MainThread"}]
    assert report["notes"][0]["kind"] == "not-python"


def test_empty_profile_report():
    report = build_report(Profile(ProfileMeta(host="h", start_time=0.0, end_time=1.0)), include_idle=True)
    check_contract(report)
    assert report["functions"] == [] and report["processes"] == [] and report["samples"] == 0
    text = format_report(report)
    assert "(no stack samples)" in text


@SETTINGS
@given(records(), metas())
def test_function_seconds_equal_fed_weights_property(recs, meta):
    profile = profile_from(recs, meta)
    rows = profile.timeline.rows()
    for include_idle, column in ((True, "w"), (False, "active")):
        report = build_report(profile, include_idle=include_idle)
        check_contract(report)
        assert report["samples"] == int(rows["n"].sum())
        expect_total: dict[tuple[str, str], float] = {}
        expect_self: dict[tuple[str, str], float] = {}
        for stack, weight in zip(rows["stack"].tolist(), rows[column].astype(np.float64).tolist()):
            funcs = [(f.function, f.file) for f in profile.stacks.frames_of(stack)]
            for key in set(funcs):
                expect_total[key] = expect_total.get(key, 0.0) + weight
            if funcs:
                expect_self[funcs[-1]] = expect_self.get(funcs[-1], 0.0) + weight
        got = {(f["function"], f["file"]): f for f in report["functions"]}
        assert set(got) == set(expect_total)
        for key, f in got.items():
            assert f["total_s"] == pytest.approx(expect_total[key], abs=2e-6)
            assert f["self_s"] == pytest.approx(expect_self.get(key, 0.0), abs=2e-6)
        text = format_report(report)
        assert all(len(line) <= 100 for line in text.splitlines())


# ---- format_report ------------------------------------------------------------------------------


def test_format_report_lines_and_top_function():
    report = build_report(known_profile(), include_idle=True)
    text = format_report(report)
    lines = text.splitlines()
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    assert "main" in text and "train.py:1" in text
    top = next(i for i, line in enumerate(lines) if line.startswith("Top functions"))
    assert "main" in lines[top + 2]  # first row after the column header
    assert "wall seconds, idle included" in lines[top]
    assert "python train.py" in lines[0]
    assert "exit 3" in text and "not sampled: not Python" in text
    assert "note: pid 200" in text
    assert "active seconds" in format_report(build_report(known_profile(), include_idle=False))


def test_format_report_clips_long_names():
    p = known_profile()
    p.ingest(StackBatch(100, 1010.0, 1011.0, 1, [("f" * 200, "/" + "d" * 150 + "/mod.py", 123456)],
                        [ThreadSamples(100, 100, "MainThread", np.array([1010.5]), np.array([50.0], np.float32),
                                       [(0,)])]))
    p.processes[100].cmdline = ["python"] + ["--flag"] * 60
    text = format_report(build_report(p, include_idle=True))
    assert all(len(line) <= 100 for line in text.splitlines()), max(text.splitlines(), key=len)
    assert "f" * 30 in text


def test_format_report_top_limits_rows():
    text = format_report(build_report(known_profile(), include_idle=True), top=1)
    functions = text.split("\nPhases")[0]  # the phases section may name the same functions
    assert "forward" not in functions and "main" in functions


# What collectors/pyspy.py explain_failure says of a process that is not Python.
NOT_PYTHON = "process {} is not a Python process (or its interpreter has not started): stacks unavailable"


@pytest.mark.parametrize("what", ["command", "note", "why_not_sampled"])
def test_format_report_long_command_and_notes(what):
    p = known_profile()
    if what == "command":
        p.meta.command = ["python", "train.py", "--config", "x" * 150]
    elif what == "note":
        p.ingest(SamplerNote(1002.0, 300, "not-python", NOT_PYTHON.format(300)))  # pid 300: no process row, only the note
    else:
        p.processes[200].why_not_sampled = NOT_PYTHON.format(200)
    text = format_report(build_report(p, include_idle=True))
    assert all(len(line) <= 100 for line in text.splitlines()), max(text.splitlines(), key=len)
