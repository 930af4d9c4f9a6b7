"""Every bad input: one clear line on stderr, a non-zero exit, no traceback, nothing lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import msgpack
import pytest

from conftest import WORKLOADS, free_pid, gradetop, one_line, spawn_sleeper
from gradetop.model.snapshot import load


def test_pid_that_does_not_exist(tmp_path, no_traceback):
    result = gradetop("record", "--pid", str(free_pid()), "-o", str(tmp_path / "x.gtop"))
    no_traceback(result)
    assert result.returncode != 0
    assert "no process with pid" in one_line(result)


def test_pid_that_is_not_python_records_resources_anyway(tmp_path, no_traceback, ptrace):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        out = tmp_path / "sleep.gtop"
        result = gradetop("record", "--pid", str(sleeper.pid), "--duration", "3", "-o", str(out))
        no_traceback(result)
        assert result.returncode == 3, result.stderr
        assert "not a Python process" in result.stderr
        assert "stacks unavailable" in result.stderr
        profile = load(out)
        assert len(profile.process_series) >= 5, "CPU and memory must be recorded anyway"
        report = json.loads(gradetop("report", str(out), "--json").stdout)
        process = next(p for p in report["processes"] if p["pid"] == sleeper.pid)
        assert not process["sampled"] and "not a Python process" in process["why_not_sampled"]
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"),
                    reason="needs root, setpriv and /usr/bin/python3 to stage a ptrace denial")
def test_ptrace_denied_names_the_fix(tmp_path, no_traceback):
    # A target owned by another user, and gradetop without CAP_SYS_PTRACE: the kernel says no.
    proc, pid = spawn_sleeper(python="/usr/bin/python3", prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    try:
        out = tmp_path / "denied.gtop"
        result = subprocess.run(
            ["setpriv", "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace",
             sys.executable, "-m", "gradetop", "record", "--pid", str(pid), "--duration", "1", "-o", str(out)],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        no_traceback(result)
        assert result.returncode != 0
        assert "ptrace" in result.stderr and "CAP_SYS_PTRACE" in result.stderr
        assert "ptrace_scope" in result.stderr and "root" in result.stderr
        assert out.exists(), "what was collected is still written"
    finally:
        proc.kill()
        proc.wait()


def test_command_not_found(tmp_path, no_traceback):
    result = gradetop("record", "-o", str(tmp_path / "x.gtop"), "--", "no-such-command-gradetop")
    no_traceback(result)
    assert result.returncode != 0
    assert "command not found: no-such-command-gradetop" in one_line(result)


@pytest.mark.parametrize("where", ["missing-dir/x.gtop", "a-dir"])
def test_unwritable_output_fails_before_running(tmp_path, no_traceback, where):
    (tmp_path / "a-dir").mkdir()
    marker = tmp_path / "ran"
    result = gradetop("record", "-o", str(tmp_path / where), "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    no_traceback(result)
    assert result.returncode != 0
    assert "cannot write" in one_line(result)
    assert not marker.exists(), "the workflow must not run when its snapshot could not be written"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; the missing-folder case covers it")
def test_readonly_output_dir(tmp_path, no_traceback):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    result = gradetop("record", "-o", str(ro / "x.gtop"), "--", "true")
    assert "permission denied" in one_line(result)


def test_usage_mistakes_are_one_line(no_traceback):
    for args in (["record"], ["record", "--rate", "fast", "--", "true"], ["record", "--pid", "12", "--", "true"],
                 ["report"], ["nosuchcommand"]):
        result = gradetop(*args)
        no_traceback(result)
        assert result.returncode == 2, (args, result.stderr)
        one_line(result)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty or truncated"),
        (b"hello, I am text\n" * 10, "not a gradetop snapshot"),
        (json.dumps({"format": "gradetop-snapshot"}).encode(), "not a gradetop snapshot"),
        (msgpack.packb({"format": "something-else", "version": 1}), "not a gradetop snapshot"),
        (msgpack.packb({"format": "gradetop-snapshot", "version": 99}), "newer gradetop"),
        (msgpack.packb({"format": "gradetop-snapshot", "version": 1}), "truncated"),
    ],
)
def test_report_refuses_files_that_are_not_snapshots(tmp_path, no_traceback, content, message):
    path = tmp_path / "file.gtop"
    path.write_bytes(content)
    result = gradetop("report", str(path))
    no_traceback(result)
    assert result.returncode == 1
    assert message in one_line(result)


def test_report_on_truncated_real_snapshot(tmp_path, no_traceback, ptrace):
    out = tmp_path / "real.gtop"
    gradetop("record", "-o", str(out), "--", sys.executable, "-c", "import time; time.sleep(1)")
    data = out.read_bytes()
    for cut in (len(data) // 3, len(data) - 10):
        broken = tmp_path / f"cut{cut}.gtop"
        broken.write_bytes(data[:cut])
        result = gradetop("report", str(broken))
        no_traceback(result)
        # A recording cut off (SIGKILL, power cut) opens with what it holds, and says so in one line.
        assert result.returncode == 0, result.stderr
        assert "torn" in one_line(result)
        assert "samples" in result.stdout
    broken.write_bytes(data[:20])
    result = gradetop("report", str(broken))
    no_traceback(result)
    assert result.returncode == 1 and "truncated" in one_line(result)


def test_report_missing_file(tmp_path, no_traceback):
    result = gradetop("report", str(tmp_path / "nope.gtop"))
    no_traceback(result)
    assert result.returncode == 1
    assert "no such file" in one_line(result)


def test_sigint_during_record_writes_what_was_collected(tmp_path, ptrace):
    out = tmp_path / "interrupted.gtop"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradetop", "record", "-o", str(out), "--", sys.executable, str(WORKLOADS / "busy_forever.py")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert "Traceback" not in stderr
    report = json.loads(gradetop("report", str(out), "--json").stdout)
    crunch = next(f for f in report["functions"] if f["function"] == "crunch")
    # What matters is that what was collected is there; how much depends on the machine's load.
    assert crunch["total_s"] > 0.5, report["functions"][:3]
    assert report["samples"] > 50
    # The workflow we started was stopped with us, not left behind.
    root = next(p for p in report["processes"] if "busy_forever" in p["cmdline"])
    assert root["exit_code"] is not None


def test_sigint_while_attached_leaves_the_target_alone(tmp_path, ptrace):
    target, pid = spawn_sleeper()
    try:
        out = tmp_path / "attached.gtop"
        proc = subprocess.Popen(
            [sys.executable, "-m", "gradetop", "record", "--pid", str(pid), "-o", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        )
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert target.poll() is None
        assert load(out).timeline.samples > 50
    finally:
        target.kill()
        target.wait()
