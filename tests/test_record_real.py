"""gradetop record on real processes under real py-spy, checked against known function times."""

from __future__ import annotations

import json
import re

import pytest

from conftest import WORKLOADS, gradetop
from gradetop.model.snapshot import load

pytestmark = pytest.mark.attach


def functions_by_name(report: dict) -> dict[str, dict]:
    return {f["function"]: f for f in report["functions"]}


def close(measured: float, truth: float, rel: float = 0.10, abs_s: float = 0.15) -> bool:
    return abs(measured - truth) <= max(rel * truth, abs_s)


@pytest.fixture(scope="module")
def known(tmp_path_factory, ptrace):
    out = tmp_path_factory.mktemp("known") / "known.gtop"
    result = gradetop("record", "-o", str(out), "--", "python", str(WORKLOADS / "known.py"), "--child", "--exit", "7")
    active = json.loads(gradetop("report", str(out), "--json").stdout)
    idle = json.loads(gradetop("report", str(out), "--json", "--idle").stdout)
    return result, out, active, idle


def test_record_returns_the_commands_exit_code_and_keeps_it(known):
    result, out, active, _ = known
    assert result.returncode == 7, result.stderr
    assert active["exit_code"] == 7
    root = next(p for p in active["processes"] if "known.py" in p["cmdline"] and p["exit_code"] is not None)
    assert root["exit_code"] == 7


def test_busy_functions_match_their_true_times(known):
    _, _, active, _ = known
    funcs = functions_by_name(active)
    for name, truth in (("alpha", 1.0), ("beta", 2.0), ("helper_thread", 1.0), ("child_work", 1.0)):
        assert name in funcs, f"{name} missing from {list(funcs)[:15]}"
        assert close(funcs[name]["total_s"], truth), (name, funcs[name])
    assert close(funcs["spin"]["self_s"], 5.0, rel=0.08), funcs["spin"]


def test_idle_time_is_left_out_unless_asked(known):
    _, _, active, idle = known
    assert functions_by_name(active).get("napper", {"total_s": 0})["total_s"] < 0.15
    funcs = functions_by_name(idle)
    assert close(funcs["napper"]["total_s"], 1.5), funcs["napper"]
    assert close(funcs["beta"]["total_s"], 2.0), funcs["beta"]


def test_functions_are_sorted_by_total_time(known):
    _, _, active, _ = known
    totals = [f["total_s"] for f in active["functions"]]
    assert totals == sorted(totals, reverse=True)
    for f in active["functions"]:
        assert set(f) >= {"function", "file", "line", "self_s", "total_s"}
        assert f["self_s"] <= f["total_s"] + 1e-9


def test_child_process_is_sampled_and_listed(known):
    _, _, active, _ = known
    sampled = [p for p in active["processes"] if p["sampled"]]
    assert len(sampled) >= 2, active["processes"]
    assert all(set(p) >= {"pid", "ppid", "cmdline", "exit_code"} for p in active["processes"])


def test_report_contract(known):
    _, _, active, _ = known
    assert isinstance(active["version"], int)
    assert isinstance(active["samples"], int) and active["samples"] > 300
    assert active["rate_hz"] == 100.0
    assert 5.0 < active["duration_s"] < 15.0
    for phase in active["phases"]:
        assert set(phase) >= {"name", "path", "pid", "tid", "source", "start_s", "end_s", "duration_s", "cpu_s",
                              "peak_rss_bytes", "verdict"}
        assert phase["source"] in ("marker", "rule", "auto")
    # The unmarked script's stages are found on their own.
    auto = {p["name"] for p in active["phases"] if p["source"] == "auto"}
    assert {"alpha", "beta", "napper"} <= auto, auto
    # Wall time is covered by samples, not only the asked rate: at least 95% even on a short run.
    assert active["coverage"] >= 0.95, active["coverage"]


def test_threads_are_named(known):
    _, out, active, _ = known
    names = {t["name"] for t in active["threads"]}
    assert {"MainThread", "helper"} <= names


def test_snapshot_holds_resources_and_timeline(known):
    _, out, _, _ = known
    profile = load(out)
    assert len(profile.process_series) > 20
    assert len(profile.thread_series) > 20
    assert profile.timeline.samples > 300
    # Every sample's time falls inside the run.
    t = profile.timeline.t
    assert t.min() >= profile.meta.start_time - 0.05
    assert t.max() <= profile.meta.end_time + 0.05


def test_text_report_names_the_hot_function(known):
    _, out, _, _ = known
    text = gradetop("report", str(out)).stdout
    assert "spin" in text and "beta" in text
    assert all(len(line) <= 100 for line in text.splitlines())


def test_record_attached_pid_for_a_duration(tmp_path, ptrace):
    from conftest import spawn_sleeper

    proc, pid = spawn_sleeper()
    try:
        out = tmp_path / "attached.gtop"
        result = gradetop("record", "--pid", str(pid), "--duration", "1.5", "--idle", "-o", str(out))
        assert result.returncode == 0, result.stderr
        assert proc.poll() is None, "attaching must not harm the target"
        report = json.loads(gradetop("report", str(out), "--json").stdout)
        funcs = functions_by_name(report)
        assert close(funcs["waiting_forever"]["total_s"], 1.5, rel=0.15, abs_s=0.3), funcs["waiting_forever"]
    finally:
        proc.kill()
        proc.wait()


def test_shell_shim_in_front_of_python_is_followed(tmp_path, ptrace):
    out = tmp_path / "shim.gtop"
    script = f"python {WORKLOADS / 'known.py'}"
    result = gradetop("record", "-o", str(out), "--", "sh", "-c", f"{script}; true")
    assert result.returncode == 0, result.stderr
    report = json.loads(gradetop("report", str(out), "--json").stdout)
    assert "beta" in functions_by_name(report)


def test_workers_started_again_each_round_are_one_line_with_their_true_lives(tmp_path, ptrace):
    """A DataLoader without persistent workers starts new ones every epoch: a hundred processes in a
    minute. The text report gives them one line; the JSON keeps each, with when it started and ended.
    Start times were read against /proc/stat's whole-second boot time: up to a second early, and a
    worker that lived 0.25 s read as living up to 1.25 s."""
    out = tmp_path / "rounds.gtop"
    result = gradetop("record", "-o", str(out), "--", "python", str(WORKLOADS / "worker_rounds.py"))
    assert result.returncode == 0, result.stderr
    report = json.loads(gradetop("report", "--json", str(out)).stdout)
    workers = [p for p in report["processes"] if p["pid"] != report["processes"][0]["pid"]]
    assert len(workers) >= 8, workers  # 12 ran; a loaded machine's readings may miss a few
    lives = [p["ended_s"] - p["started_s"] for p in workers]
    assert all(0.2 <= life <= 0.6 for life in lives), lives
    text = gradetop("report", str(out)).stdout
    grouped = re.search(r"^\s+x(\d+)\s+\S+\s+python .*\bup to (\d+) alive, (\d\.\d) s each$", text, re.M)
    assert grouped and int(grouped.group(1)) > 5, text
    # Two at a time, a round starting as the last ends; a busy epoll thread may see an end late.
    assert int(grouped.group(2)) <= 3 and 0.2 <= float(grouped.group(3)) <= 0.6, grouped.group(0)


@pytest.mark.parametrize("users", [None, "3"], ids=["unset", "set by the user"])
def test_the_workflow_gets_the_users_blas_threads_not_gradetops(tmp_path, users):
    """gradetop loads numpy with one BLAS thread (0.06 s of CPU less at every start); the workflow it
    starts must get the environment the user gave, with or without the variable."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    if users is not None:
        env["OPENBLAS_NUM_THREADS"] = users
    shown = "import os; print('blas', os.environ.get('OPENBLAS_NUM_THREADS'), os.environ.get('MKL_NUM_THREADS'))"
    result = subprocess.run([sys.executable, "-m", "gradetop", "record", "--no-save", "--", sys.executable, "-c", shown],
                            capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"blas {users} None" in result.stdout, result.stdout
