"""More faults on real processes (issue 12): a reused pid, a tiny terminal, signals while saving, SIGINT
and SIGHUP to `run`. gradetop keeps running or exits with one clear line, and keeps every sample it took."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from conftest import WORKLOADS, alive, gradetop, gradetop_below
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


# ---- the live screen in a real terminal (tmux, on a server of our own) -------------------

GRADETOP = str(Path(sys.executable).parent / "gradetop")


class Tmux:
    """One tmux session on a server socket of its own (`tmux -L`): never the user's default server."""

    def __init__(self, socket: str, width: int = 80, height: int = 24) -> None:
        self.socket, self.name = socket, "gradetop"
        self.width, self.height = width, height

    def tmux(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check,
                              env={**os.environ, "TERM": "xterm-256color"}, stdin=subprocess.DEVNULL)

    def start(self, command: str) -> None:
        self.tmux("new-session", "-d", "-s", self.name, "-x", str(self.width), "-y", str(self.height),
                  f"{command}; echo GRADETOP-EXIT=$?; sleep 60", check=True)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name).stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys, check=True)

    def show(self, fmt: str) -> str:
        return self.tmux("display", "-p", "-t", self.name, fmt).stdout.strip()

    def resize(self, width: int, height: int) -> None:
        self.tmux("resize-window", "-t", self.name, "-x", str(width), "-y", str(height), check=True)

    def wait_for(self, *texts: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(text in screen for text in texts):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{texts!r} never all appeared; screen was:\n{self.screen()}")

    def gradetop_pid(self, timeout: float = 10.0) -> int:
        return gradetop_below(int(self.show("#{pane_pid}")), timeout)

    def kill_server(self) -> None:
        """Stop our server and remove its socket file (tmux leaves it behind on kill-server)."""
        path = self.tmux("display", "-p", "#{socket_path}").stdout.strip()
        self.tmux("kill-server")
        if path:
            Path(path).unlink(missing_ok=True)


@pytest.fixture
def tmux(ptrace, request):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (.ci/run installs it)")
    session = Tmux(f"gradetop-faults-{os.getpid()}-{request.node.name[:40]}")
    yield session
    session.kill_server()




@pytest.mark.attach
def test_run_survives_a_40x10_terminal_and_comes_back_whole(tmux, tmp_path):
    tmux.start(f"cd '{tmp_path}' && {GRADETOP} run -- '{sys.executable}' '{WORKLOADS / 'busy_forever.py'}'")
    tmux.wait_for("crunch", "RUNNING")
    pid = tmux.gradetop_pid()
    tmux.resize(40, 10)
    small = tmux.wait_for("RUNNING")
    time.sleep(1.0)  # a few redraws at the small size
    small = tmux.screen()
    assert tmux.show("#{window_width}x#{window_height}") == "40x10"
    assert alive(pid) and "Traceback" not in small and "Error" not in small, small
    tmux.resize(80, 24)
    # Its normal panels again: the header, the tabs, the flame with the workload's function, the footer.
    screen = tmux.wait_for("RUNNING", "1 Flame  2 Top  3 Timeline", "crunch (busy_forever.py", "q Quit", "samples (")
    assert "Traceback" not in screen and len(screen.splitlines()) >= 20, screen
    tmux.keys("q")
    tmux.wait_for("Stop it")
    tmux.keys("s")
    tmux.wait_for("GRADETOP-EXIT=0", timeout=30)
    recorded = list(tmp_path.glob("gradetop-*.gtop"))
    assert len(recorded) == 1, recorded
    assert load(recorded[0]).warnings == []
    assert gradetop("report", str(recorded[0])).returncode == 0


@pytest.mark.attach
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_sigint_and_sighup_to_run_restore_the_terminal_and_say_what_is_left(tmux, tmp_path, sig):
    tmux.start(f"cd '{tmp_path}' && {GRADETOP} run -- '{sys.executable}' '{WORKLOADS / 'sleeper.py'}' 120")
    tmux.wait_for("RUNNING")
    os.kill(tmux.gradetop_pid(), sig)
    screen = tmux.wait_for("GRADETOP-EXIT=", timeout=30)
    assert "Traceback" not in screen, screen
    assert tmux.show("#{alternate_on}") == "0", "the terminal is back from the alternate screen"
    assert tmux.show("#{mouse_any_flag}") == "0", "mouse tracking is off again"
    assert "the recording is in gradetop-" in screen, screen
    workflow = re.search(r"runs on as pid (\d+)", screen)
    assert workflow, screen
    try:
        assert alive(int(workflow.group(1)))
    finally:
        os.kill(int(workflow.group(1)), signal.SIGKILL)
    recorded = list(tmp_path.glob("gradetop-*.gtop"))
    assert len(recorded) == 1 and gradetop("report", str(recorded[0])).returncode == 0, recorded


# ---- signals while saving ----------------------------------------------------------------

@pytest.mark.attach
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signals_while_record_writes_its_file_lose_nothing(tmp_path, ptrace, sig):
    """One signal, then the same again every few milliseconds until gradetop is gone: some land while it
    flushes its samplers and rewrites its file. It says where the file is, and the file opens and holds
    every sample it said it wrote. (A SIGTERM after its last line may still end it by default.)"""
    out = tmp_path / "sig.gtop"
    proc = subprocess.Popen([sys.executable, "-m", "gradetop", "record", "-o", str(out), "--",
                             sys.executable, str(WORKLOADS / "busy_forever.py")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            cwd=tmp_path)
    try:
        assert "recording to" in proc.stderr.readline()
        time.sleep(2.5)
        sent = 0
        while proc.poll() is None and sent < 3000:
            proc.send_signal(sig)
            sent += 1
            time.sleep(0.005)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert sent > 2, "gradetop ended before the second signal: nothing was tested"
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    # The workflow's own status (busy_forever ends 0 on the SIGINT that stops it), as after any stop; or
    # the signal's own, where one landed after gradetop's last line and its handler was gone.
    assert proc.returncode in (0, -sig), (proc.returncode, stderr)
    said = re.search(r"wrote .*: (\d+) samples", stderr)
    assert said, stderr
    profile = load(out)
    assert profile.warnings == [] and profile.timeline.samples == int(said.group(1)) > 100
    assert gradetop("report", str(out)).returncode == 0
    assert not list(tmp_path.glob(".gradetop-*.tmp")), "a half-written temp file was left behind"


@pytest.mark.attach
def test_sigterm_right_after_s_in_the_live_screen(tmux, tmp_path):
    """`s` starts a save in a worker and SIGTERM follows at once: it lands before, during or after that save
    (runs saw both with and without the saved copy). Every file left opens, the recording is whole, and no
    half-written temp file is left behind."""
    tmux.start(f"cd '{tmp_path}' && {GRADETOP} run -- '{sys.executable}' '{WORKLOADS / 'busy_forever.py'}'")
    tmux.wait_for("crunch", "RUNNING")
    time.sleep(1.0)
    pid = tmux.gradetop_pid()
    workflow = next(c.pid for c in psutil.Process(pid).children() if "busy_forever" in " ".join(c.cmdline()))
    try:
        tmux.keys("s")
        os.kill(pid, signal.SIGTERM)
        screen = tmux.wait_for("GRADETOP-EXIT=", timeout=30)
        assert "Traceback" not in screen and "internal error" not in screen, screen
        assert tmux.show("#{alternate_on}") == "0"
        assert "the recording is in gradetop-" in screen, screen
    finally:
        if alive(workflow):
            os.kill(workflow, signal.SIGKILL)
    files = list(tmp_path.glob("gradetop-*.gtop"))
    recorded = [f for f in files if not f.name.endswith("-saved.gtop")]
    assert len(recorded) == 1, files
    profile = load(recorded[0])
    assert profile.warnings == [] and profile.timeline.samples > 50
    for f in files:
        assert gradetop("report", str(f)).returncode == 0, f
    assert not list(tmp_path.glob(".gradetop-*.tmp")), "a half-written temp file was left behind"


def test_a_reused_pids_records_go_to_the_process_alive_at_their_time():
    """The model side of a reused pid, on records made by hand: the old process's last window, arriving
    after the new process was seen, still goes to the old one (by the window's start time)."""
    import numpy as np

    from gradetop.model.processes import PID_STRIDE
    from gradetop.model.profile import Profile, ProfileMeta
    from gradetop.model.records import ProcessEnded, ProcessReading, ResourceBatch, StackBatch, ThreadSamples

    def reading(born: float, cmd: str) -> ProcessReading:
        return ProcessReading(42, 1, "python", ["python", cmd], born, "running", 0.5, 1, 0, 0, 1, {42: (0.5, 0.5)})

    def window(t0: float, fn: str) -> StackBatch:
        return StackBatch(42, t0, t0 + 0.5, 50, [(fn, "/a.py", 1)],
                          [ThreadSamples(42, 42, "Main", t0 + np.arange(50) * 0.01, np.full(50, 0.01, np.float32),
                                         [(0,)] * 50)])

    profile = Profile(ProfileMeta(host="h", start_time=0.0))
    profile.ingest(ResourceBatch(1.0, [reading(0.9, "old.py")]))
    profile.ingest(ProcessEnded(42, 2.0, 0))
    profile.ingest(ResourceBatch(3.0, [reading(2.9, "new.py")]))
    profile.ingest(window(1.2, "old_work"))  # held back until the readings passed it: arrives late
    profile.ingest(window(3.1, "new_work"))
    new = 42 + PID_STRIDE
    assert sorted(profile.processes) == [42, new]
    assert profile.processes[42].cmdline == ["python", "old.py"] and profile.processes[42].end_time == 2.0
    assert profile.processes[new].cmdline == ["python", "new.py"] and profile.processes[new].end_time is None
    assert profile.processes[new].real_pid == 42
    columns = profile.timeline.rows()
    for pid, fn in ((42, "old_work"), (new, "new_work")):
        nodes = set(columns["stack"][columns["pid"] == pid].tolist())
        assert {f.function for n in nodes for f in profile.stacks.frames_of(int(n))} == {fn}
