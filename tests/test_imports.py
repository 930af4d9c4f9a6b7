"""py-spy's raw and speedscope files, made by the real `py-spy record`, and gradetop's own exports, read back."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import WORKLOADS, gradetop
from export_helpers import COUNTS, small_profile
from gradetop.model.export import render
from gradetop.model.export.selection import select
from gradetop.model.imports import load_any
from gradetop.model.report import build_report
from gradetop.model.snapshot import SnapshotError

ALPHA_S, BETA_S = 0.5, 1.5


def pyspy_record(out, fmt: str, *flags: str) -> None:
    from gradetop.collectors.window import find_pyspy

    result = subprocess.run([find_pyspy(), "record", "-f", fmt, "-r", "100", "-o", str(out), *flags, "--",
                             sys.executable, str(WORKLOADS / "variant.py"), str(ALPHA_S), str(BETA_S)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, ptrace):
    """One raw, one raw with process and thread frames, one speedscope: all of variant.py 0.5 1.5."""
    tmp = tmp_path_factory.mktemp("pyspy")
    files = {"raw": tmp / "plain.txt", "raw-st": tmp / "prefixed.txt", "speedscope": tmp / "run.json"}
    pyspy_record(files["raw"], "raw")
    pyspy_record(files["raw-st"], "raw", "-s", "-t")
    pyspy_record(files["speedscope"], "speedscope")
    return files


def own_seconds(profile) -> dict[str, float]:
    return {f["function"]: f["self_s"] for f in build_report(profile)["functions"] if f["self_s"] > 0}


@pytest.mark.attach
@pytest.mark.parametrize("kind", ["raw", "raw-st", "speedscope"])
def test_pyspy_files_import_with_their_functions_in_proportion(recorded, kind):
    profile = load_any(recorded[kind])
    assert profile.meta.mode == "import"
    assert profile.meta.options["imported_from"] in ("py-spy raw", "py-spy speedscope")
    own = own_seconds(profile)
    assert {"alpha", "beta"} <= own.keys()
    ratio = own["beta"] / own["alpha"]
    # The import keeps py-spy's counts; py-spy itself read alpha short on a loaded machine (5.0x and
    # 5.3x in CI-like runs, alpha a busy 0.5 s): this checks the import, not py-spy's sampling.
    assert 2.0 < ratio < 6.5, f"beta ran 3x as long as alpha, the import says {ratio:.2f}x"
    # py-spy drifts from its rate, but not by half.
    assert 0.6 * (ALPHA_S + BETA_S) < own["alpha"] + own["beta"] < 1.6 * (ALPHA_S + BETA_S)


@pytest.mark.attach
def test_pyspy_process_and_thread_frames_become_pids_and_tids(recorded):
    profile = load_any(recorded["raw-st"])
    assert len(profile.processes) == 1
    (pid, info), = profile.processes.items()
    assert pid > 0
    # py-spy writes an empty command when it read the process before its command line was set.
    assert "variant.py" in info.command or info.command == ""
    # py-spy names a thread only where it found the threading module's name for it.
    assert (pid, pid) in profile.threads and profile.threads[(pid, pid)].name in ("", "MainThread")
    for frame in profile.frames.frames:
        assert not frame.function.startswith(("process ", "thread ")), "prefix frames are not stack frames"


@pytest.mark.attach
def test_report_and_export_read_pyspy_files(recorded, tmp_path):
    result = gradetop("report", str(recorded["speedscope"]), "--json")
    assert result.returncode == 0, result.stderr
    names = {f["function"] for f in json.loads(result.stdout)["functions"]}
    assert {"alpha", "beta"} <= names
    out = tmp_path / "again.trace.json"
    result = gradetop("export", str(recorded["raw"]), "--format", "chrometrace", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert any(e.get("name") == "beta" for e in json.loads(out.read_text())["traceEvents"])


def test_gradetop_collapsed_export_reads_back_to_the_same_stacks(tmp_path):
    path = tmp_path / "small.collapsed.txt"
    p = small_profile()
    path.write_bytes(render("collapsed", p, select(p)))
    back = load_any(path)
    assert back.meta.mode == "import"
    assert back.timeline.samples == sum(COUNTS.values())
    assert render("collapsed", back, select(back)) == path.read_bytes(), "a round trip changes nothing"
    assert back.threads[(100, 101)].name == "worker"
    assert back.processes[200].command == "python 200.py"


def test_gradetop_speedscope_export_reads_back_with_its_weights(tmp_path):
    path = tmp_path / "small.speedscope.json"
    p = small_profile()
    path.write_bytes(render("speedscope", p, select(p)))
    back = load_any(path)
    assert back.meta.options["imported_from"] == "speedscope"
    assert own_seconds(back) == pytest.approx({"alpha": 6.0, "beta": 3.0, "child_work": 2.0}, abs=1e-5)
    assert {(t.pid, t.tid, t.name) for t in back.threads.values()} == {
        (100, 100, "MainThread"), (100, 101, "worker"), (200, 200, "MainThread")}


def test_hex_thread_ids_and_stacks_without_frames(tmp_path):
    path = tmp_path / "hex.txt"
    path.write_text("thread (0x7F00AB);main (x.py:1);work (x.py:5) 7\nthread (0x7F00AB) 3\n")
    profile = load_any(path)
    assert profile.timeline.samples == 10
    assert set(profile.timeline.tid.tolist()) == {0x7F00AB}
    assert own_seconds(profile)["work"] == pytest.approx(0.07)


@pytest.mark.parametrize("text, words", [
    ("main (x.py:1) 3\nthis line has no count\n", "line 2 is not 'stack count'"),
    ('{"shared": {"frames": [{"name": "f"}]}, "profiles": [{"type": "evented", "events": []}]}',
     "no sampled profiles"),
    ('{"shared": {"frames": []}, "profiles": [{"type": "sampled", "samples": [[3]], "weights": [1]}]}',
     "damaged speedscope file"),
    ('{"shared": {"frames": ', "nor a speedscope file: invalid JSON"),
])
def test_bad_imports_are_one_snapshot_error(tmp_path, text, words):
    path = tmp_path / "bad"
    path.write_text(text)
    with pytest.raises(SnapshotError, match=words):
        load_any(path)


@pytest.mark.parametrize("text", ["main (x.py:1);work (x.py:5) 7\n", "thread (4321);main (x.py:1) 2\nthread (4330);f (x.py:2) 1\n"])
def test_a_file_without_process_frames_gets_a_process_the_views_can_draw(tmp_path, text):
    from gradetop.model.views import ViewFilter, view_data

    path = tmp_path / "plain.txt"
    path.write_text(text)
    profile = load_any(path)
    (pid, info), = profile.processes.items()
    assert pid > 0 and info.ppid != pid, "a process that is its own parent would loop the process tree"
    view = view_data(profile, ViewFilter())
    assert view.samples == profile.timeline.samples and [row.pid for row in view.processes] == [pid]
    if "4321" in text:
        assert pid == 4321, "the main thread's tid is the pid"
