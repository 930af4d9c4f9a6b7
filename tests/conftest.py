"""Fixtures shared by the tests that run real processes under real py-spy."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKLOADS = Path(__file__).parent / "workloads"


@pytest.fixture(autouse=True)
def _scratch_cwd(tmp_path, monkeypatch):
    """Each test runs in its own folder: recordings that default to the current directory land there, not in the repo."""
    monkeypatch.chdir(tmp_path)


def gradetop(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed gradetop (this interpreter's) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "gradetop", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    """The single line a bad input must print on stderr (as 'gradetop: ...')."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gradetop: "), lines[0]
    return lines[0]


def free_pid() -> int:
    """A process id nothing uses now."""
    pid = 4_000_000
    while os.path.exists(f"/proc/{pid}"):
        pid += 1
    return pid


def spawn_sleeper(*args: str, python: str = sys.executable, prefix: list[str] | None = None) -> tuple[subprocess.Popen, int]:
    """A Python process sleeping in `waiting_forever`; returns (popen, pid it printed)."""
    proc = subprocess.Popen(
        [*(prefix or []), python, str(WORKLOADS / "sleeper.py"), *args], stdout=subprocess.PIPE, text=True
    )
    pid = int(proc.stdout.readline())
    return proc, pid


@pytest.fixture(scope="session")
def ptrace():
    """Skip, saying why, where this machine does not let us read another process's memory."""
    from gradetop.collectors.window import find_pyspy

    proc, pid = spawn_sleeper("30")
    try:
        time.sleep(0.2)
        out = subprocess.run([find_pyspy(), "dump", "-p", str(pid)], capture_output=True, text=True, timeout=30)
    finally:
        proc.kill()
        proc.wait()
    if out.returncode != 0:
        reason = out.stderr.split("Stack backtrace:")[0].strip().splitlines()[:1]
        pytest.skip(f"ptrace is denied here, py-spy cannot attach ({' '.join(reason)}): run as root or with CAP_SYS_PTRACE")
    return True


@pytest.fixture
def no_traceback():
    def check(result: subprocess.CompletedProcess) -> None:
        assert "Traceback" not in result.stderr, result.stderr
        assert "Stack backtrace" not in result.stderr, result.stderr

    return check


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    monkeypatch.delenv("GRADETOP_DEBUG", raising=False)


def kill_tree(proc: subprocess.Popen) -> None:
    """Kill a workload and every process under it: a pool's workers outlive a killed parent (they wait
    on a queue whose other end they hold themselves), and pile up over a run of the suite."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    proc.kill()
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass
    proc.wait()
    psutil.wait_procs(children, timeout=5)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gradetop_below(shell_pid: int, timeout: float = 10.0) -> int:
    """The gradetop process started by a terminal's shell (a tmux pane's `#{pane_pid}`)."""
    import psutil

    shell = psutil.Process(shell_pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in shell.children(recursive=True):
            if "gradetop" in " ".join(child.cmdline()[:2]):
                return child.pid
        time.sleep(0.1)
    raise AssertionError("no gradetop in the pane")

