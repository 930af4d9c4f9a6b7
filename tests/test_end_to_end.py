"""The installed gradetop in a real terminal (tmux): what a person sees and types."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import psutil

from conftest import WORKLOADS, alive, gradetop_below, spawn_sleeper
from gradetop.model.snapshot import load

pytestmark = [
    pytest.mark.attach,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)"),
]

GRADETOP = str(Path(sys.executable).parent / "gradetop")


class Tmux:
    def __init__(self, name: str, width: int = 100, height: int = 30) -> None:
        self.name = name
        self.width, self.height = width, height

    def start(self, command: str) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", str(self.width), "-y", str(self.height),
             f"{command}; echo GRADETOP-EXIT=$?; sleep 60"],
            check=True, env={**os.environ, "TERM": "xterm-256color"},
        )

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; screen was:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)

    def show(self, fmt: str) -> str:
        return subprocess.run(["tmux", "display", "-p", "-t", self.name, fmt], capture_output=True,
                              text=True).stdout.strip()

    def gradetop_pid(self, timeout: float = 10.0) -> int:
        """The gradetop process running in the pane (a child of its shell)."""
        return gradetop_below(int(self.show("#{pane_pid}")), timeout)


@pytest.fixture
def tmux(ptrace):
    session = Tmux(f"gradetop-test-{os.getpid()}")
    yield session
    session.kill()


def test_run_shows_the_workloads_functions_and_stops_it_when_asked(tmux, tmp_path):
    marker = tmp_path / "started"
    workload = WORKLOADS / "busy_forever.py"
    tmux.start(f"cd {tmp_path} && touch {marker} && {GRADETOP} run -- {sys.executable} {workload}")
    screen = tmux.wait_for("crunch", timeout=15)
    assert "busy_forever.py" in screen
    tmux.keys("2")
    tmux.wait_for("%Own")
    tmux.keys("s")
    tmux.wait_for("-saved.gtop")
    tmux.keys("q")
    tmux.wait_for("Stop it")
    tmux.keys("s")
    tmux.wait_for("GRADETOP-EXIT=", timeout=30)
    saved = list(tmp_path.glob("gradetop-*-saved.gtop"))
    assert saved, "the 's' key saved a snapshot"
    recorded = [p for p in tmp_path.glob("gradetop-*.gtop") if p not in saved]
    assert len(recorded) == 1 and load(recorded[0]).warnings == [], "the run was recorded whole as well"
    workflow = load(saved[0]).meta.target_pid
    assert not alive(workflow), "the workflow was stopped as chosen"


def test_leaving_the_workflow_running_detaches(tmux, tmp_path):
    workload = WORKLOADS / "sleeper.py"
    tmux.start(f"cd {tmp_path} && {GRADETOP} run -- {sys.executable} {workload} 120")
    tmux.wait_for("every thread waited", timeout=15)  # active time by default: a sleeper shows none
    tmux.keys("i")
    tmux.wait_for("waiting_forever", timeout=15)
    tmux.keys("q")
    tmux.wait_for("Leave running")
    tmux.keys("l")
    screen = tmux.wait_for("GRADETOP-EXIT=0", timeout=30)
    pid = int(re.search(r"runs on as pid (\d+)", screen).group(1))
    try:
        assert alive(pid), "the workflow must keep running after detaching"
    finally:
        os.kill(pid, signal.SIGKILL)


def test_attach_never_harms_the_target_and_quit_detaches(tmux, tmp_path):
    proc, pid = spawn_sleeper()
    try:
        tmux.start(f"{GRADETOP} attach {pid}")
        tmux.wait_for("RUNNING")
        tmux.keys("5")  # the threads view: where every thread is, and for how long
        tmux.wait_for("waiting_forever", timeout=15)
        tmux.keys("q")
        tmux.wait_for("GRADETOP-EXIT=0", timeout=20)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_ended_workflow_keeps_the_final_picture(tmux, tmp_path):
    tmux.start(f"cd {tmp_path} && {GRADETOP} run -- {sys.executable} {WORKLOADS / 'known.py'} --exit 3")
    tmux.wait_for("EXITED 3", timeout=30)
    screen = tmux.wait_for("beta")
    assert "spin" in screen
    tmux.keys("q")
    tmux.wait_for("GRADETOP-EXIT=3", timeout=15)


def test_open_a_saved_snapshot(tmux):
    tmux.start(f"{GRADETOP} open {Path(__file__).parent / 'data' / 'demo.gtop'}")
    tmux.wait_for("FILE")
    tmux.wait_for("train")
    tmux.keys("q")
    tmux.wait_for("GRADETOP-EXIT=0")


def test_attach_without_pid_picks_from_a_filtered_list(tmux, tmp_path):
    proc, pid = spawn_sleeper()
    try:
        tmux.start(f"{GRADETOP} attach")
        tmux.wait_for("Attach to which Python process?")
        time.sleep(0.5)  # keys typed before the filter box has focus are lost
        tmux.keys("sleeper.py")
        # The list is filtered: our sleeper is there, and this very test (python -m pytest) is not.
        deadline = time.monotonic() + 15
        while "pytest" in (screen := tmux.wait_for(str(pid))) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "pytest" not in screen, screen
        tmux.keys("Enter")
        tmux.wait_for("RUNNING", timeout=15)
        tmux.keys("6")  # the processes tab: the one chosen is the one watched
        tmux.wait_for(f" {pid} ", timeout=15)
        tmux.keys("q")
        tmux.wait_for("GRADETOP-EXIT=0", timeout=20)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_sigkilled_run_leaves_a_recording_that_opens(tmux, tmp_path):
    workload = WORKLOADS / "busy_forever.py"
    tmux.start(f"cd {tmp_path} && {GRADETOP} run -- {sys.executable} {workload}")
    tmux.wait_for("crunch", timeout=15)
    time.sleep(6)
    pid = tmux.gradetop_pid()
    workflow = next(c.pid for c in psutil.Process(pid).children() if "busy_forever" in " ".join(c.cmdline()))
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    tmux.wait_for("GRADETOP-EXIT=137", timeout=15)
    try:
        recorded = list(tmp_path.glob("gradetop-*.gtop"))
        assert len(recorded) == 1
        profile = load(recorded[0])
        assert profile.warnings  # cut off, and it says so
        assert float(profile.timeline.t.max()) >= killed_at - 5
    finally:
        # `run` leaves its workflow running when gradetop goes (it has its own session).
        os.kill(workflow, signal.SIGKILL)


def test_sigterm_to_run_restores_the_terminal_and_says_what_is_left(tmux, tmp_path):
    workload = WORKLOADS / "sleeper.py"
    tmux.start(f"cd {tmp_path} && {GRADETOP} run -- {sys.executable} {workload} 120")
    tmux.wait_for("RUNNING", timeout=15)
    os.kill(tmux.gradetop_pid(), signal.SIGTERM)
    screen = tmux.wait_for("GRADETOP-EXIT=0", timeout=30)
    assert tmux.show("#{alternate_on}") == "0", "the terminal is back from the alternate screen"
    assert tmux.show("#{mouse_any_flag}") == "0", "mouse tracking is off again"
    assert "the recording is in gradetop-" in screen
    pid = int(re.search(r"runs on as pid (\d+)", screen).group(1))
    try:
        assert alive(pid)
    finally:
        os.kill(pid, signal.SIGKILL)
