"""Every export parsed back: speedscope against its schema, collapsed counts, Chrome trace balance, pprof totals."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from conftest import gradetop, one_line
from export_helpers import COUNTS, small_profile
from gradetop.model.export import FORMATS, profile_pb2, render
from gradetop.model.export.chrometrace import PHASE_TID_BASE
from gradetop.model.export.selection import SelectionError, select
from gradetop.model.report import build_report
from gradetop.model.snapshot import load
from model_helpers import profile_from, records

DEMO = Path(__file__).parent / "data" / "demo.gtop"


@lru_cache(maxsize=1)
def demo():
    return load(DEMO)


def export(fmt: str, profile=None, **options) -> bytes:
    profile = profile if profile is not None else small_profile()
    return render(fmt, profile, select(profile, **options))


# ---- selection ---------------------------------------------------------------------------------------


def test_selection_by_process_thread_time_and_phase():
    p = small_profile()
    assert select(p).samples == sum(COUNTS.values())
    assert select(p, pid=200).samples == 20
    assert select(p, thread="101").samples == 30
    assert select(p, thread="worker").samples == 30
    assert select(p, pid=100, thread="MainThread").samples == 60
    assert select(p, t_from=1.0, t_to=2.0).samples == 10 + 10 + 10  # 10 samples a second on each thread
    inside = select(p, phase="train")
    assert inside.samples == 40  # [1002, 1006) of the main thread only
    assert set(inside.rows["tid"].tolist()) == {100}
    assert [ph.name for ph in inside.phases] == ["train"]


@pytest.mark.parametrize("options, words", [
    ({"pid": 999}, "no process 999"),
    ({"thread": "nobody"}, "no thread 'nobody'"),
    ({"thread": "4242"}, "no thread '4242'"),
    ({"phase": "nope"}, "no phase 'nope'"),
    ({"t_from": 5.0, "t_to": 2.0}, "--from 5 is after --to 2"),
])
def test_a_selection_of_nothing_is_one_clear_error(options, words):
    with pytest.raises(SelectionError, match=words):
        select(small_profile(), **options)


# ---- collapsed -------------------------------------------------------------------------------------------


def collapsed_counts(data: bytes) -> dict[str, int]:
    out = {}
    for line in data.decode().splitlines():
        stack, count = line.rsplit(" ", 1)
        assert stack not in out, "one line per stack"
        out[stack] = int(count)
    return out


def test_collapsed_counts_add_up_to_the_samples_with_pyspy_prefixes():
    counts = collapsed_counts(export("collapsed"))
    assert sum(counts.values()) == sum(COUNTS.values())
    assert counts['process 100:"python 100.py";thread (100): MainThread;main (train.py:1);alpha (train.py:10)'] == 60
    assert counts['process 100:"python 100.py";thread (101): worker;main (train.py:1);beta (train.py:20)'] == 30
    assert counts['process 200:"python 200.py";thread (200): MainThread;child_work (child.py:5)'] == 20


@pytest.mark.parametrize("options", [{}, {"pid": 9209}, {"t_from": 2.0, "t_to": 4.0}, {"phase": "train"}])
def test_collapsed_of_a_recording_sums_to_its_selection(options):
    selection = select(demo(), **options)
    counts = collapsed_counts(render("collapsed", demo(), selection))
    assert sum(counts.values()) == selection.samples > 0


# ---- speedscope ------------------------------------------------------------------------------------------

# Required fields, from https://www.speedscope.app/file-format-schema.json
FILE_REQUIRED = {"$schema", "shared", "profiles"}
FRAME_REQUIRED = {"name"}
SAMPLED_REQUIRED = {"type", "name", "unit", "startValue", "endValue", "samples", "weights"}
UNITS = {"none", "nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"}


SCHEMA = Path(__file__).parent / "data" / "speedscope-file-format-schema.json"
"""speedscope's file-format-schema.json, as the speedscope 1.25.0 npm package ships it (MIT)."""


@lru_cache(maxsize=1)
def speedscope_validator():
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


def check_speedscope(doc: dict) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in speedscope_validator().iter_errors(doc)]
    assert not errors, errors[:5]
    assert FILE_REQUIRED <= doc.keys()
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    frames = doc["shared"]["frames"]
    for f in frames:
        assert FRAME_REQUIRED <= f.keys() and isinstance(f["name"], str)
        assert isinstance(f.get("line", 0), int) and isinstance(f.get("file", ""), str)
    for p in doc["profiles"]:
        assert SAMPLED_REQUIRED <= p.keys()
        assert p["type"] == "sampled" and p["unit"] in UNITS
        assert len(p["samples"]) == len(p["weights"])
        assert all(0 <= i < len(frames) for s in p["samples"] for i in s)
        assert p["endValue"] >= p["startValue"] >= 0
        assert p["endValue"] - p["startValue"] == pytest.approx(sum(p["weights"]), abs=1e-5)
    if doc.get("activeProfileIndex") is not None:
        assert doc["activeProfileIndex"] < len(doc["profiles"])


def test_speedscope_has_a_sampled_profile_per_thread_weighted_in_seconds():
    doc = json.loads(export("speedscope"))
    check_speedscope(doc)
    assert doc["exporter"].startswith("gradetop@")
    by_name = {p["name"]: p for p in doc["profiles"]}
    assert set(by_name) == {'Process 100 Thread 100 "MainThread"', 'Process 100 Thread 101 "worker"',
                            'Process 200 Thread 200 "MainThread"'}
    main = by_name['Process 100 Thread 100 "MainThread"']
    assert main["unit"] == "seconds" and len(main["samples"]) == 60
    assert sum(main["weights"]) == pytest.approx(6.0, rel=1e-6)
    names = [doc["shared"]["frames"][i]["name"] for i in main["samples"][0]]
    assert names == ["main", "alpha"], "root first, as speedscope reads stacks"


def test_speedscope_of_a_recording_keeps_its_seconds():
    doc = json.loads(export("speedscope", demo()))
    check_speedscope(doc)
    total = sum(sum(p["weights"]) for p in doc["profiles"])
    assert total == pytest.approx(float(demo().timeline.w.sum()), rel=1e-5)


# ---- Chrome trace ----------------------------------------------------------------------------------------


def check_trace(doc: dict) -> dict:
    """Well formed, balanced B/E per track, monotonic; returns the events by kind."""
    events = doc["traceEvents"]
    kinds = defaultdict(list)
    open_ = defaultdict(list)
    last = {}
    for e in events:
        assert {"ph", "pid"} <= e.keys()
        kinds[e["ph"]].append(e)
        if e["ph"] in "BEXC":
            assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0
        if e["ph"] in "BE":
            track = (e["pid"], e["tid"])
            assert e["ts"] >= last.get(track, 0), "time runs forward on a track"
            last[track] = e["ts"]
            if e["ph"] == "B":
                open_[track].append(e["name"])
            else:
                assert open_[track] and open_[track].pop() == e["name"], "E closes the innermost open slice"
        if e["ph"] == "X":
            assert e["dur"] >= 0
    assert all(not stack for stack in open_.values()), "every slice is closed"
    named_pids = {e["pid"] for e in kinds["M"] if e["name"] == "process_name"}
    named_threads = {(e["pid"], e["tid"]) for e in kinds["M"] if e["name"] == "thread_name"}
    for e in kinds["B"] + kinds["X"]:
        assert e["pid"] in named_pids and (e["pid"], e["tid"]) in named_threads
    return kinds


def test_chrome_trace_merges_samples_into_balanced_slices():
    kinds = check_trace(json.loads(export("chrometrace")))
    main = [e for e in kinds["B"] if (e["pid"], e["tid"]) == (100, 100)]
    # 60 samples of one stack are one slice per frame, 6 s long.
    assert [e["name"] for e in main] == ["main", "alpha"]
    end = [e for e in kinds["E"] if (e["pid"], e["tid"]) == (100, 100)]
    assert end[-1]["ts"] - main[0]["ts"] == pytest.approx(6e6)
    phases = [e for e in kinds["X"] if e["tid"] >= PHASE_TID_BASE]
    # The marker phase, on its own track; automatic phases (main() here) may stand beside it.
    assert ("train", 2e6, 4e6) in [(e["name"], e["ts"], e["dur"]) for e in phases]
    from gradetop.model.phases import all_phases

    assert {e["name"] for e in phases} == {ph.name for ph in all_phases(small_profile())}
    counters = {(e["pid"], e["name"]) for e in kinds["C"]}
    assert {(100, "CPU %"), (100, "RSS MiB"), (200, "CPU %")} <= counters
    cpu = [e["args"]["cpu"] for e in kinds["C"] if (e["pid"], e["name"]) == (100, "CPU %")]
    assert cpu and all(c == pytest.approx(100.0) for c in cpu), "two threads half busy: one core"


def test_chrome_trace_of_a_recording_is_balanced_and_named():
    kinds = check_trace(json.loads(export("chrometrace", demo())))
    assert kinds["B"] and kinds["C"] and kinds["X"]
    assert len(kinds["B"]) < demo().timeline.samples * 3, "consecutive samples share their open frames"


# ---- pprof -----------------------------------------------------------------------------------------------


def decode(data: bytes) -> profile_pb2.Profile:
    out = profile_pb2.Profile()
    out.ParseFromString(gzip.decompress(data))
    return out


def pprof_self_seconds(prof: profile_pb2.Profile, value: int) -> dict[tuple[str, str], float]:
    strings = prof.string_table
    functions = {f.id: (strings[f.name], strings[f.filename]) for f in prof.function}
    location = {loc.id: functions[loc.line[0].function_id] for loc in prof.location}
    out = defaultdict(float)
    for s in prof.sample:
        if s.location_id:
            out[location[s.location_id[0]]] += s.value[value] / 1e9
    return out


@pytest.mark.parametrize("profile", [small_profile, demo], ids=["by-hand", "recorded"])
def test_pprof_decodes_and_its_totals_are_the_reports(profile):
    p = profile()
    prof = decode(export("pprof", p))
    strings = prof.string_table
    assert strings[0] == ""
    assert [(strings[t.type], strings[t.unit]) for t in prof.sample_type] == [("wall", "nanoseconds"),
                                                                             ("cpu", "nanoseconds")]
    for idle, value in ((False, 1), (True, 0)):
        report = build_report(p, include_idle=idle)
        own = pprof_self_seconds(prof, value)
        for f in report["functions"]:
            assert own.get((f["function"], f["file"]), 0.0) == pytest.approx(f["self_s"], abs=1e-5), f
        assert sum(own.values()) == pytest.approx(sum(f["self_s"] for f in report["functions"]), abs=1e-4)


def test_pprof_labels_say_pid_thread_phase_and_role():
    prof = decode(export("pprof"))
    strings = prof.string_table
    seen = defaultdict(set)
    for s in prof.sample:
        labels = {strings[lab.key]: (lab.num if not lab.str else strings[lab.str]) for lab in s.label}
        seen[(labels["pid"], labels["tid"], labels["thread"], labels["role"])].add(labels.get("phase"))
    # The marker phase labels its samples; the rest of main() is an automatic phase of its own.
    assert "train" in seen[(100, 100, "MainThread (100)", "main")]
    # The marker phase is the main thread's alone.
    assert "train" not in seen[(100, 101, "worker (101)", "main")]
    assert "train" not in seen[(200, 200, "MainThread (200)", "child")]


@pytest.mark.skipif(shutil.which("go") is None, reason="needs Go's own pprof (go tool pprof) to read the file")
def test_go_tool_pprof_reads_the_export(tmp_path):
    path = tmp_path / "demo.pb.gz"
    path.write_bytes(export("pprof", demo()))
    env = {**os.environ, "HOME": str(tmp_path)}
    top = subprocess.run(["go", "tool", "pprof", "-top", str(path)], capture_output=True, text=True, timeout=120, env=env)
    assert top.returncode == 0, top.stderr
    assert "Type: cpu" in top.stdout and "forward" in top.stdout
    assert "not available" not in top.stderr
    tags = subprocess.run(["go", "tool", "pprof", "-tags", str(path)], capture_output=True, text=True, timeout=120,
                          env=env)
    for label in ("phase:", "pid:", "role:", "thread:", "tid:"):
        assert label in tags.stdout


# ---- the command -------------------------------------------------------------------------------------------


def test_export_writes_beside_the_file_with_the_format_suffix(tmp_path):
    snapshot = tmp_path / "run.gtop"
    snapshot.write_bytes(DEMO.read_bytes())
    for fmt, (_, suffix) in FORMATS.items():
        result = gradetop("export", str(snapshot), "--format", fmt)
        assert result.returncode == 0, result.stderr
        out = tmp_path / ("run" + suffix)
        assert out.exists() and out.stat().st_size > 0
        assert str(out) in result.stderr


def test_export_to_stdout_with_filters():
    result = gradetop("export", str(DEMO), "--format", "collapsed", "-o", "-", "--pid", "9195",
                      "--thread", "MainThread", "--from", "1", "--to", "8", "--phase", "train")
    assert result.returncode == 0, result.stderr
    counts = collapsed_counts(result.stdout.encode())
    assert counts and all(line.startswith('process 9195:') for line in counts)


@pytest.mark.parametrize("args, words", [
    (["--format", "svg"], "invalid choice: 'svg'"),
    (["--format", "pprof", "--from", "5", "--to", "1"], "--from 5 is after --to 1"),
    (["--format", "pprof", "--phase", "nope"], "no phase 'nope'"),
    (["--format", "speedscope", "--pid", "4242"], "no process 4242"),
    (["--format", "speedscope", "--thread", "nobody"], "no thread 'nobody'"),
    (["--format", "collapsed", "--from", "500", "--to", "600"], "no samples in that selection"),
])
def test_bad_export_options_are_one_line(args, words, no_traceback, tmp_path):
    result = gradetop("export", str(DEMO), "-o", str(tmp_path / "out"), *args)
    no_traceback(result)
    assert result.returncode != 0
    assert words in one_line(result)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, words", [
    (None, "no such file"),
    (b"hello, this is not a profile\n", "not a gradetop snapshot, nor a py-spy raw"),
    (bytes(range(256)) * 4, "not a gradetop snapshot"),
    (b'{"shared": {"frames": []}}', "nor a speedscope file: JSON without 'shared' and 'profiles'"),
])
def test_bad_input_files_are_one_line(content, words, no_traceback, tmp_path):
    path = tmp_path / "input"
    if content is not None:
        path.write_bytes(content)
    for command in (["export", str(path), "--format", "collapsed"], ["report", str(path)]):
        result = gradetop(*command)
        no_traceback(result)
        assert result.returncode != 0
        assert words in one_line(result)


# ---- properties ------------------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(records(), st.floats(-1, 8), st.floats(0, 8))
def test_any_window_exports_consistently(recs, start, length):
    """Collapsed counts sum to the window's samples; the trace stays balanced; speedscope weights are its seconds."""
    p = profile_from(recs)
    selection = select(p, t_from=start, t_to=start + length, with_phases=False)
    counts = collapsed_counts(render("collapsed", p, selection))
    assert sum(counts.values()) == selection.samples
    check_trace(json.loads(render("chrometrace", p, selection)))
    doc = json.loads(render("speedscope", p, selection))
    check_speedscope(doc)
    assert sum(sum(pr["weights"]) for pr in doc["profiles"]) == pytest.approx(float(selection.rows["w"].sum()), abs=1e-4)
