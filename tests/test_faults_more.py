"""More faults on real processes (issue 12): a reused pid, a tiny terminal, signals while saving, SIGINT
and SIGHUP to `run`. gradetop keeps running or exits with one clear line, and keeps every sample it took."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import gradetop
from gradetop.model.snapshot import load

SPIN_CHILD = textwrap.dedent("""
    import time
    def {name}():
        end = time.perf_counter() + 1.0
        while time.perf_counter() < end:
            pass
    {name}()
""")

REUSE_JOB = textwrap.dedent("""
    import subprocess, sys, time
    CHILD = {child!r}
    first = subprocess.Popen([sys.executable, "-c", CHILD.format(name="first_child")])
    first.wait()
    time.sleep(0.6)  # long enough for gradetop to see it end
    # The next pid this namespace hands out is the one that just ended (needs CAP_SYS_ADMIN in it).
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(first.pid - 1))
    second = subprocess.Popen([sys.executable, "-c", CHILD.format(name="second_child")])
    print("REUSED" if second.pid == first.pid else "NOT-REUSED", first.pid, second.pid, flush=True)
    second.wait()
""")


def _report(out) -> dict:
    result = gradetop("report", str(out), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.attach
def test_a_reused_pid_is_a_new_process(tmp_path, ptrace):
    """A child ends and the next child gets its pid (forced in a pid namespace): two rows, each with its
    own samples, never the second's samples added to the first."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) for a pid namespace")
    job = tmp_path / "reuse.py"
    job.write_text(REUSE_JOB.format(child=SPIN_CHILD), encoding="utf-8")
    out = tmp_path / "reuse.gtop"
    # sh is the namespace's init (pid 1); gradetop and the job are ordinary processes in it.
    cmd = ["unshare", "--fork", "--pid", "--mount-proc", "sh", "-c",
           f"'{sys.executable}' -m gradetop record -o '{out}' -- '{sys.executable}' '{job}'"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                            cwd=tmp_path)
    if result.returncode != 0 and not out.exists():
        pytest.skip(f"cannot make a pid namespace here: {result.stderr.strip()[:200]}")
    assert "Traceback" not in result.stderr, result.stderr
    if "REUSED" not in result.stdout.split():
        pytest.skip(f"the pid was not reused (another process took it first): {result.stdout.strip()}")
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout.split()[1])
    rep = _report(out)
    rows = [p for p in rep["processes"] if p["host_pid"] == pid]
    assert len(rows) == 2, rep["processes"]
    first = next(r for r in rows if "first_child" in r["cmdline"])
    second = next(r for r in rows if "second_child" in r["cmdline"])
    assert first["pid"] != second["pid"] and first["samples"] > 0 and second["samples"] > 0, rows
    # Each process's samples are its own function's.
    profile = load(out)
    columns = profile.timeline.rows()
    for row, own, other in ((first, "first_child", "second_child"), (second, "second_child", "first_child")):
        nodes = set(columns["stack"][columns["pid"] == row["pid"]].tolist())
        names = {f.function for node in nodes for f in profile.stacks.frames_of(int(node))}
        assert own in names and other not in names, (row, names)
