"""The session: a recording that survives SIGKILL, closed copies mid-run, no scratch left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import psutil
import pytest

from conftest import WORKLOADS
from gradetop.collectors import scratch
from gradetop.collectors.session import Session, SessionOptions
from gradetop.collectors.window import StackOptions
from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import StackBatch, ThreadSamples
from gradetop.model.snapshot import load
from gradetop.model.timeline import Compaction, Timeline


def _scratch_of(pid: int) -> list[str]:
    return [n for n in os.listdir(tempfile.gettempdir()) if n.startswith((f"gradetop-workflow-{pid}-",
                                                                          f"gradetop-windows-{pid}-"))]


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


def test_sigkilled_record_leaves_a_recording_that_opens_and_nothing_running(tmp_path, ptrace):
    out = tmp_path / "killed.gtop"
    proc = subprocess.Popen([sys.executable, "-m", "gradetop", "record", "-o", str(out), "--",
                             sys.executable, str(WORKLOADS / "busy_forever.py")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        children = []
        while time.monotonic() < deadline and not children:
            children = [c for c in psutil.Process(proc.pid).children() if "busy_forever" in " ".join(c.cmdline())]
            time.sleep(0.1)
        assert children, "the workload did not start"
        workflow = children[0].pid
        time.sleep(7)
        killed_at = time.time()
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    # The command gradetop started dies with it (PDEATHSIG), and so do its py-spy windows (--duration).
    assert _wait_gone(workflow, 10), "the recorded command outlived gradetop"
    assert _wait_gone_pyspy(workflow, 6), "a py-spy window kept sampling for nobody"
    profile = load(out)
    assert profile.warnings  # it says the recording was cut off
    last = float(profile.timeline.t.max())
    assert last >= killed_at - 5, f"only {killed_at - last:.1f} s before the kill are missing at most"
    assert profile.timeline.samples > 300
    # The next gradetop sweeps what the killed one could not clean up.
    scratch.sweep()
    assert _scratch_of(proc.pid) == []


def _wait_gone_pyspy(target: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in psutil.process_iter(["name", "cmdline"])
                 if p.info["name"] == "py-spy" and str(target) in (p.info["cmdline"] or [])]
        if not alive:
            return True
        time.sleep(0.2)
    return False


def test_a_finished_session_leaves_no_scratch_and_a_whole_file(tmp_path, ptrace):
    out = tmp_path / "done.gtop"
    session = Session.spawn([sys.executable, "-c", "import time; [sum(range(10**5)) for _ in range(300)]"],
                            SessionOptions(StackOptions(), output=str(out)), mode="run", capture_output=True)
    folder = session.phase_folder
    assert os.path.isdir(folder)
    session.start()
    deadline = time.monotonic() + 60
    while not session.poll() and time.monotonic() < deadline:
        time.sleep(0.1)
    session.finish()
    assert not os.path.exists(folder), "the workflow ended: its markers and log go with it"
    assert _scratch_of(os.getpid()) == []
    profile = load(out)
    assert profile.warnings == [] and profile.meta.exit_code == 0
    assert session.state().label == "exited 0"


def test_a_command_is_sampled_from_its_start_while_the_session_loads(tmp_path, ptrace):
    """`launch` starts the command and py-spy on it; a session made 0.6 s later (gradetop loading slowly)
    takes that window over: the samples start with the command, not with the session, and nothing is
    sampled twice or left running."""
    from gradetop.collectors.launch import launch

    options = SessionOptions(StackOptions(), save=False)
    launched = launch([sys.executable, "-c", "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"],
                      options.stacks)
    window = launched.first_window
    assert window is not None
    time.sleep(0.6)
    session = Session.spawn([], options, launched=launched).start()
    deadline = time.monotonic() + 30
    while not session.poll() and time.monotonic() < deadline:
        time.sleep(0.05)
    session.finish()
    profile = session.profile
    assert profile.meta.start_time == launched.started
    assert window.proc.poll() is not None, "the first window was ended, not left to its own --duration"
    t = np.sort(profile.timeline.t[profile.timeline.pid == launched.target.pid])
    assert len(t) > 100
    # The interpreter takes a few tens of ms to become readable (more on a loaded machine): well under
    # the 0.6 s the session took to come.
    assert t[0] - launched.started < 0.4, f"first sample {t[0] - launched.started:.2f} s after the start"
    assert np.all(np.diff(t) > 0), "no sample twice"
    assert _scratch_of(os.getpid()) == []


def test_a_copy_saved_mid_run_is_a_closed_record(tmp_path, ptrace):
    session = Session.spawn([sys.executable, str(WORKLOADS / "busy_forever.py")],
                            SessionOptions(StackOptions(), save=False), mode="run", capture_output=True)
    session.start()
    try:
        time.sleep(3)
        copy = tmp_path / "copy.gtop"
        session.save_copy(str(copy))
        first = load(copy)
        time.sleep(1.5)
        again = load(copy)
        assert first.meta.end_time is not None
        assert first.duration_s == again.duration_s  # its clock does not run on
        assert 2 < first.duration_s < 10
    finally:
        session.stop_workflow(grace_s=2)
    assert session.writer is None and session.path is None  # --no-save wrote nothing


def test_unwritable_recording_is_a_notice_and_the_session_goes_on(tmp_path, ptrace):
    folder = tmp_path / "ro"
    folder.mkdir()
    out = folder / "x.gtop"
    out.mkdir()  # a directory where the file should be: opening it fails even as root
    session = Session.spawn([sys.executable, "-c", "import time; time.sleep(1.5)"],
                            SessionOptions(StackOptions(), output=str(out)), mode="record")
    session.start()
    assert any("cannot write" in n and "memory" in n for n in session.notices)
    while not session.poll():
        time.sleep(0.1)
    session.finish()
    assert session.profile.process_series.t.size > 0


def test_a_frozen_picture_never_changes():
    """Pictures share the live buffers: appends, compaction and new stacks must not reach them."""
    p = Profile(ProfileMeta(host="h", start_time=0.0))
    p.timeline = Timeline((Compaction(age_s=1.0, bucket_s=1.0),))

    def batch(t0: float, fn: str) -> StackBatch:
        return StackBatch(1, t0, t0 + 1, 100, [("main", "/a.py", 1), (fn, "/a.py", 2)],
                          [ThreadSamples(1, 1, "Main", t0 + np.arange(100) * 0.01, np.full(100, 0.01, np.float32),
                                         [(0, 1)] * 100)])

    p.ingest(batch(0.0, "first"))
    p.ingest(batch(1.0, "second"))
    picture = p.freeze()
    before = {k: v.copy() for k, v in picture.timeline.rows().items()}
    nodes, frames = len(picture.stacks), len(picture.frames)
    tree_before = picture.tree().total_s.copy()
    for t in range(2, 6):
        p.ingest(batch(float(t), f"later{t}"))
        p.timeline.compact(min_new_rows=1)
    assert len(p.timeline) < 600  # the live timeline did compact
    after = picture.timeline.rows()
    for name, column in before.items():
        assert np.array_equal(column, after[name]), name
    assert (len(picture.stacks), len(picture.frames)) == (nodes, frames)
    assert np.array_equal(picture.tree().total_s, tree_before)
    assert picture.duration_s == pytest.approx(picture.taken_at - 0.0)


def test_scratch_sweep_keeps_what_a_live_workflow_still_uses(tmp_path):
    dead = 4_000_000
    while psutil.pid_exists(dead):
        dead += 1
    gone = tmp_path / f"gradetop-workflow-{dead}-abc"
    kept = tmp_path / f"gradetop-workflow-{dead}-def"
    mine = tmp_path / f"gradetop-windows-{os.getpid()}-ghi"
    other = tmp_path / "gradetop-demo.gtop"
    for folder in (gone, kept, mine):
        folder.mkdir()
    other.write_text("x")
    scratch.claim(str(kept), os.getpid())  # a workflow that outlived its gradetop, still running
    scratch.sweep(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted([kept.name, mine.name, other.name])


def test_sigterm_and_sighup_end_record_as_sigint_does(tmp_path, ptrace):
    for sig in (signal.SIGTERM, signal.SIGHUP):
        out = tmp_path / f"sig{int(sig)}.gtop"
        proc = subprocess.Popen([sys.executable, "-m", "gradetop", "record", "-o", str(out), "--",
                                 sys.executable, str(WORKLOADS / "busy_forever.py")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        first = proc.stderr.readline()  # "recording to ...": from here on, signals are gradetop's
        assert "recording to" in first, first
        time.sleep(2)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
        assert "Traceback" not in stderr
        assert f"wrote {out}" in stderr
        profile = load(out)
        assert profile.warnings == [] and profile.timeline.samples > 50


def test_ctrl_c_before_the_ui_is_up_stops_the_workflow_it_started(monkeypatch, tmp_path, ptrace):
    """`run` starts its command in a session of its own (it may outlive a detach), so the terminal's
    Ctrl-C reaches gradetop alone. Before the UI has the keyboard, that Ctrl-C stops the run, as
    under `record`: the workflow must not run on unseen."""
    from gradetop.cli import live
    from gradetop.cli.main import build_parser, parse

    argv = ["run", "--no-save", "--", sys.executable, "-c", "import time; time.sleep(60)"]
    args = parse(build_parser(argv), argv)
    started = []
    real_launch = live.launch
    monkeypatch.setattr(live, "launch", lambda *a, **k: started.append(real_launch(*a, **k)) or started[-1])

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt  # as Ctrl-C lands while the session and the UI load

    monkeypatch.setattr(live, "watch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        live.watch_command(args.command, args, "run")
    target = started[0].target
    assert target.poll() is not None, "the workflow was left running"
    assert _wait_gone(target.pid, 10)
