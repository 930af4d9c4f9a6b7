"""gradetop dump: real stuck programs under real py-spy, and the wait rules on hand-made stacks.

The real tests check that exactly the stuck threads are flagged, with the
wait and the line they wait on, within the watch, and that a busy thread is
never flagged, even one whose line reads like a wait.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import WORKLOADS, free_pid, gradetop, one_line, spawn_sleeper
from gradetop.model import waits
from gradetop.model.waits import REASONS, find_wait, is_native, is_stuck, judge, wait_reason

WATCH_S = 1.5
STARTUP_BUDGET_S = 6.0
"""Interpreter start, imports and the last dump, on a loaded 2-core machine: generous on purpose."""


# -- helpers ----------------------------------------------------------------


def line_of(script: str, text: str) -> int:
    """The line number of the first line of a workload containing `text` (tests must not hard-code lines)."""
    for number, line in enumerate((WORKLOADS / script).read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {script}")


def spawn(script: str, *args: str) -> tuple[subprocess.Popen, int]:
    """Start a workload in its own process group (so its children die with it); wait until it prints its pid."""
    proc = subprocess.Popen([sys.executable, str(WORKLOADS / script), *args], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    pid = int(proc.stdout.readline())
    return proc, pid


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def dump_json(pid: int, *args: str) -> tuple[dict, float]:
    started = time.monotonic()
    result = gradetop("dump", "--pid", str(pid), "--json", *args)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    doc = json.loads(result.stdout)
    check_schema(doc)
    return doc, elapsed


def check_schema(doc: dict) -> None:
    """{processes: [{pid, cmdline, threads: [{tid, name, state, stuck, unchanged_s, wait_reason, frames: [{function, file, line}]}]}]}."""
    assert isinstance(doc["processes"], list) and doc["processes"]
    for process in doc["processes"]:
        assert isinstance(process["pid"], int)
        assert isinstance(process["cmdline"], str)
        assert isinstance(process["threads"], list)
        for thread in process["threads"]:
            assert isinstance(thread["tid"], int)
            assert isinstance(thread["name"], str)
            assert thread["state"] in ("running", "holding GIL", "idle")
            assert isinstance(thread["stuck"], bool)
            assert isinstance(thread["unchanged_s"], (int, float)) and thread["unchanged_s"] >= 0
            assert thread["wait_reason"] is None or isinstance(thread["wait_reason"], str)
            assert isinstance(thread["frames"], list) and thread["frames"]
            for frame in thread["frames"]:
                assert isinstance(frame["function"], str)
                assert isinstance(frame["file"], str)
                assert isinstance(frame["line"], int)


def threads(doc: dict, pid: int | None = None) -> dict[str, dict]:
    """Threads by name (of one process, or of the root)."""
    pid = doc["pid"] if pid is None else pid
    process = next(p for p in doc["processes"] if p["pid"] == pid)
    return {t["name"]: t for t in process["threads"]}


def stuck(doc: dict) -> set[tuple[int, str]]:
    return {(p["pid"], t["name"]) for p in doc["processes"] for t in p["threads"] if t["stuck"]}


def assert_flagged_within_watch(thread: dict, doc: dict, elapsed: float, reason: str, file: str, line: int) -> None:
    assert thread["stuck"], thread
    assert thread["wait_reason"] == reason, thread
    assert thread["state"] == "idle", thread
    assert os.path.basename(thread["wait_frame"]["file"]) == file and thread["wait_frame"]["line"] == line, thread
    assert thread["unchanged_s"] == pytest.approx(doc["watch_s"], abs=1e-3)
    assert WATCH_S - 0.05 <= doc["watch_s"] < WATCH_S + 1.0, doc["watch_s"]
    assert elapsed < WATCH_S + STARTUP_BUDGET_S, elapsed


# -- real stuck programs ---------------------------------------------------------


@pytest.fixture(scope="module")
def deadlock(ptrace):
    proc, pid = spawn("stuck_deadlock.py")
    yield pid
    stop(proc)


@pytest.fixture(scope="module")
def queue_wait(ptrace):
    proc, pid = spawn("stuck_queue.py")
    yield pid
    stop(proc)


@pytest.fixture(scope="module")
def child_wait(ptrace):
    proc, pid = spawn("stuck_child.py", "--troubled", "1.0")
    yield pid
    stop(proc)


@pytest.mark.attach
def test_deadlock_flags_exactly_the_two_locked_threads(deadlock):
    doc, elapsed = dump_json(deadlock, "--watch", str(WATCH_S))
    by_name = threads(doc)
    assert stuck(doc) == {(deadlock, "left"), (deadlock, "right")}
    # "left" blocks in `with lock_b:`: py-spy shows no acquire frame, only that line.
    assert_flagged_within_watch(by_name["left"], doc, elapsed, "lock acquire", "stuck_deadlock.py",
                                line_of("stuck_deadlock.py", "with lock_b:  # deadlock"))
    assert_flagged_within_watch(by_name["right"], doc, elapsed, "lock acquire", "stuck_deadlock.py",
                                line_of("stuck_deadlock.py", "lock_a.acquire()  # deadlock"))
    # The busy main thread spins on a line that reads like a wait (`.get(`): never flagged.
    busy = by_name["MainThread"]
    assert not busy["stuck"] and busy["wait_reason"] is None and busy["state"] == "running"
    assert busy["frames"][0]["function"] == "busy"
    assert by_name["left"]["tid"] != deadlock and by_name["MainThread"]["tid"] == deadlock


@pytest.mark.attach
def test_text_puts_the_verdict_on_top_and_native_frames_keep_it(deadlock):
    started = time.monotonic()
    result = gradetop("dump", "--pid", str(deadlock), "--watch", str(WATCH_S), "--native")
    assert time.monotonic() - started < WATCH_S + STARTUP_BUDGET_S
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    verdict = re.compile(r"^STUCK: thread (\d+) '(\w+)' waiting in lock acquire at stuck_deadlock\.py:(\d+) "
                         r"\(unchanged (\d+\.\d) s\)$")
    top = [verdict.match(line) for line in lines[:2]]
    assert all(top), lines[:3]
    assert {m.group(2): int(m.group(3)) for m in top} == {
        "left": line_of("stuck_deadlock.py", "with lock_b:  # deadlock"),
        "right": line_of("stuck_deadlock.py", "lock_a.acquire()  # deadlock"),
    }
    assert all(float(m.group(4)) >= WATCH_S - 0.1 for m in top)
    assert not any(line.startswith("STUCK") for line in lines[2:])
    assert lines[3].startswith(f"Process {deadlock}: ")
    assert re.search(r'^Thread \d+ \(idle, unchanged \d+\.\d s\): "left"  STUCK in lock acquire$', result.stdout, re.M)
    assert re.search(r'^Thread \d+ \(running, holds GIL, unchanged \d+\.\d s\): "MainThread"$', result.stdout, re.M)
    assert "    busy (stuck_deadlock.py:" in result.stdout
    assert ".so" in result.stdout, "--native adds the C frames (libc, libpython) to the last dump"


@pytest.mark.attach
def test_queue_wait_is_flagged_at_the_get_and_the_busy_thread_is_not(queue_wait):
    doc, elapsed = dump_json(queue_wait, "--watch", str(WATCH_S))
    assert stuck(doc) == {(queue_wait, "consumer")}
    by_name = threads(doc)
    assert_flagged_within_watch(by_name["consumer"], doc, elapsed, "queue.get", "stuck_queue.py",
                                line_of("stuck_queue.py", "inbox.get()  #"))
    assert [f["function"] for f in by_name["consumer"]["frames"][:2]] == ["Condition.wait", "Queue.get"]
    assert not by_name["MainThread"]["stuck"]
    assert doc["blocking_dumps"] == 0, "watch dumps never pause the target"


@pytest.mark.attach
def test_one_dump_with_native_and_locals_marks_waits_but_judges_nothing(queue_wait):
    doc, elapsed = dump_json(queue_wait, "--watch", "0", "--native", "--locals")
    assert doc["dumps"] == 1 and stuck(doc) == set()
    consumer = threads(doc)["consumer"]
    assert consumer["wait_reason"] == "queue.get" and consumer["unchanged_s"] == 0
    assert any(f["native"] for f in consumer["frames"]), "native frames asked for"
    get = next(f for f in consumer["frames"] if f["function"] == "Queue.get")
    assert {v["name"] for v in get["locals"]} >= {"self", "block", "timeout"}
    assert elapsed < STARTUP_BUDGET_S


@pytest.mark.attach
def test_parent_waiting_on_a_sleeping_child(child_wait):
    doc, elapsed = dump_json(child_wait, "--watch", str(WATCH_S))
    processes = {p["pid"]: p for p in doc["processes"]}
    parent = processes[child_wait]
    sleeper = next(p for p in doc["processes"] if p["ppid"] == child_wait and p["status"] == "running")
    # Exactly the parent's join and the child's sleep; the parent's busy thread is never flagged.
    assert stuck(doc) == {(child_wait, "MainThread"), (sleeper["pid"], "MainThread")}
    assert_flagged_within_watch(threads(doc)["MainThread"], doc, elapsed, "process join/wait", "stuck_child.py",
                                line_of("stuck_child.py", "child.join()"))
    assert_flagged_within_watch(threads(doc, sleeper["pid"])["MainThread"], doc, elapsed, "sleep", "stuck_child.py",
                                line_of("stuck_child.py", "time.sleep(3600)"))
    assert not threads(doc)["busy"]["stuck"]
    # Process trouble: the child idles while its parent waits on it; two children died and were never reaped.
    assert any("0% CPU" in t and str(child_wait) in t for t in sleeper["trouble"]), sleeper
    assert parent["trouble"] == []
    dead = {(p["exit_code"], p["signal"]): p for p in doc["processes"] if p["status"] == "zombie"}
    assert set(dead) == {(3, None), (None, 9)}, dead
    assert "exited with status 3" in dead[(3, None)]["trouble"][0]
    assert "killed by SIGKILL" in dead[(None, 9)]["trouble"][0]
    assert all(not t["stuck"] for p in dead.values() for t in p["threads"]), "the dead wait for nothing"


@pytest.mark.attach
def test_no_subprocesses_dumps_only_the_parent(child_wait):
    doc, _ = dump_json(child_wait, "--watch", "0.5", "--no-subprocesses")
    assert [p["pid"] for p in doc["processes"]] == [child_wait]
    assert set(threads(doc)) == {"MainThread", "busy"}


# -- bad inputs: one line, non-zero, no traceback ----------------------------------


def test_pid_that_does_not_exist(no_traceback):
    result = gradetop("dump", "--pid", str(free_pid()))
    no_traceback(result)
    assert result.returncode == 1 and result.stdout == ""
    assert "no process with pid" in one_line(result)


def test_usage_mistakes(no_traceback, capsys):
    result = gradetop("dump")
    no_traceback(result)
    assert result.returncode == 2 and "--pid" in one_line(result)
    # The rest in-process: the same parser, without paying an interpreter start each.
    from gradetop.cli.main import main

    for args in (["--pid", "abc"], ["--pid", "0"], ["--pid", "1", "--watch", "-1"], ["--pid", "1", "--watch", "x"]):
        with pytest.raises(SystemExit) as exit_:
            main(["dump", *args])
        assert exit_.value.code == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("gradetop: "), (args, err)


def test_not_python_says_so(no_traceback, ptrace):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        result = gradetop("dump", "--pid", str(sleeper.pid), "--watch", "0.5")
        no_traceback(result)
        assert result.returncode == 1 and result.stdout == ""
        assert "not a Python process" in one_line(result)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_zombie_says_how_it_exited(no_traceback):
    # A child that exited and that its parent (a sleeping Python) never reaps.
    parent = subprocess.Popen([sys.executable, "-c", "import os, sys, time\npid = os.fork()\nif pid == 0: os._exit(7)\n"
                               "print(pid, flush=True)\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        zombie = int(parent.stdout.readline())
        time.sleep(0.2)
        result = gradetop("dump", "--pid", str(zombie))
        no_traceback(result)
        assert result.returncode == 1
        message = one_line(result)
        assert "zombie" in message and "exited with status 7" in message
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"),
                    reason="needs root, setpriv and /usr/bin/python3 to stage a ptrace denial")
def test_ptrace_denied_names_the_fix(no_traceback):
    # A target owned by another user, and gradetop without CAP_SYS_PTRACE: the kernel says no.
    proc, pid = spawn_sleeper(python="/usr/bin/python3", prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    try:
        result = subprocess.run(
            ["setpriv", "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace",
             sys.executable, "-m", "gradetop", "dump", "--pid", str(pid)],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        no_traceback(result)
        assert result.returncode == 1 and result.stdout == ""
        message = one_line(result)
        assert "ptrace" in message and "CAP_SYS_PTRACE" in message
        assert "ptrace_scope" in message and "root" in message
    finally:
        proc.kill()
        proc.wait()


# -- the wait rules on hand-made stacks --------------------------------------------

THREADING = "/usr/lib/python3.11/threading.py"
BOOT = [("Thread._bootstrap", THREADING, 1002), ("Thread._bootstrap_inner", THREADING, 1045),
        ("Thread.run", THREADING, 982)]
USER = "/app/train.py"
LIBPY = "/usr/lib/libpython3.11.so.1.0"


@pytest.mark.parametrize(
    "frames, line, active, reason, at",
    [
        # C waits: only the caller's line shows.
        (BOOT + [("worker", USER, 12)], "        with self._lock:", False, "lock acquire", ("worker", USER, 12)),
        (BOOT + [("worker", USER, 12)], "    with state_mutex:  # guards state", None, "lock acquire", ("worker", USER, 12)),
        (BOOT + [("worker", USER, 12)], "    lock.acquire()", False, "lock acquire", ("worker", USER, 12)),
        ([("<module>", USER, 3)], "time.sleep(30)", False, "sleep", ("<module>", USER, 3)),
        ([("serve", USER, 40)], "    data = conn.recv(4096)", False, "socket recv", ("serve", USER, 40)),
        ([("loop", USER, 7)], "    item = jobs.get()", False, "queue.get", ("loop", USER, 7)),
        ([("loop", USER, 7)], "    ready = select.select(rs, [], [])", False, "select/poll", ("loop", USER, 7)),
        ([("reap", USER, 9)], "    os.waitpid(pid, 0)", False, "process join/wait", ("reap", USER, 9)),
        # A `with` that is not lock-ish counts only when the thread is known idle.
        ([("load", USER, 5)], "    with open(path) as f:", None, None, None),
        ([("load", USER, 5)], "    with open(path) as f:", False, "lock acquire", ("load", USER, 5)),
        # A running thread on a line that reads like a wait is running it.
        ([("busy", USER, 35)], "    n = table.get(n, n) + 1", True, None, None),
        ([("calc", USER, 2)], "    x = y + 1  # then q.get()", False, None, None),
        ([("calc", USER, 2)], None, False, None, None),
        # Library waits: the outermost of the run names it, its caller is where the thread waits.
        (BOOT + [("consumer", USER, 16), ("Queue.get", "/usr/lib/python3.11/queue.py", 171),
                 ("Condition.wait", THREADING, 327)], "waiter.acquire()", False, "queue.get", ("consumer", USER, 16)),
        ([("<module>", USER, 50), ("Thread.join", THREADING, 1112),
          ("Thread._wait_for_tstate_lock", THREADING, 1132)], "if lock.acquire(block, timeout):", False,
         "thread join", ("<module>", USER, 50)),
        ([("produce", USER, 22), ("Queue.put", "/usr/lib/python3.11/queue.py", 140),
          ("Condition.wait", THREADING, 327)], "waiter.acquire()", False, "queue.put", ("produce", USER, 22)),
        (BOOT + [("wait_ready", USER, 8), ("Event.wait", THREADING, 622), ("Condition.wait", THREADING, 320)],
         "waiter.acquire()", False, "condition wait", ("wait_ready", USER, 8)),
        ([("<module>", USER, 51), ("BaseProcess.join", "/x/multiprocessing/process.py", 149),
          ("Popen.wait", "/x/multiprocessing/popen_fork.py", 43), ("Popen.poll", "/x/multiprocessing/popen_fork.py", 27)],
         "pid, sts = os.waitpid(self.pid, flag)", False, "process join/wait", ("<module>", USER, 51)),
        ([("build", USER, 4), ("run", "/x/subprocess.py", 550), ("Popen.communicate", "/x/subprocess.py", 1209),
          ("Popen._communicate", "/x/subprocess.py", 2115), ("EpollSelector.select", "/x/selectors.py", 468)],
         "fd_event_list = self._selector.poll(timeout, max_ev)", False, "process join/wait", ("build", USER, 4)),
        ([("_run_once", "/x/asyncio/base_events.py", 1884), ("EpollSelector.select", "/x/selectors.py", 468)],
         "fd_event_list = self._selector.poll(timeout, max_ev)", False, "select/poll",
         ("_run_once", "/x/asyncio/base_events.py", 1884)),
        ([("step", USER, 30), ("wrapper", "/venv/torch/distributed/c10d_logger.py", 79),
          ("all_reduce", "/venv/torch/distributed/distributed_c10d.py", 2050)], "work.wait()", False,
         "torch.distributed collective", ("step", USER, 30)),
        # torchrun's agent polls its workers with a sleep: that is a sleep, not a collective.
        ([("_invoke_run", "/venv/torch/distributed/elastic/agent/server/api.py", 850)],
         "            time.sleep(monitor_interval)", False, "sleep",
         ("_invoke_run", "/venv/torch/distributed/elastic/agent/server/api.py", 850)),
        # Native frames (--native) above the top Python frame say what the C call does.
        (BOOT + [("t1", USER, 6), ("lock_PyThread_acquire_lock", LIBPY, 0), ("PyThread_acquire_lock_timed", LIBPY, 0),
                 ("0x7f1af66a3f16", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0)], "    x = compute()", False,
         "lock acquire", ("t1", USER, 6)),
        ([("<module>", USER, 21), ("time_sleep", LIBPY, 0), ("clock_nanosleep", "/lib/libc.so.6", 0)], None, None,
         "sleep", ("<module>", USER, 21)),
        # Waiting for the GIL is contention, not a wait on something.
        ([("work", USER, 3), ("take_gil", LIBPY, 0)], "    time.sleep(1)", False, None, None),
        ([("take_gil", LIBPY, 0)], None, None, None, None),
        ([("epoll_wait", "/lib/libc.so.6", 0)], None, None, "select/poll", ("epoll_wait", "/lib/libc.so.6", 0)),
        ([], None, None, None, None),
    ],
)
def test_wait_rules(frames, line, active, reason, at):
    found = find_wait(frames, line, active)
    assert wait_reason(frames, line, active) == reason
    assert (found.frame if found else None) == at


def test_every_reason_is_in_the_published_vocabulary():
    tables = ([r for _, _, r in waits._LIBRARY_WAITS] + [r for _, r in waits._NATIVE_WAITS if r]
              + [r for _, r in waits._LINE_WAITS] + ["lock acquire"])
    assert set(tables) <= set(REASONS), set(tables) - set(REASONS)


def test_native_frames_are_told_from_python_ones():
    assert is_native(("PyThread_acquire_lock_timed", "/usr/lib/libpython3.11.so.1.0", 0))
    assert is_native(("0x7f1af66a3f16", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0))
    assert not is_native(("Queue.get", "/usr/lib/python3.11/queue.py", 171))
    assert not is_native(("<module>", "<frozen runpy>", 88))


def test_stuck_needs_all_three_facts():
    assert is_stuck(True, "lock acquire", active=False)
    assert not is_stuck(False, "lock acquire", active=False)
    assert not is_stuck(True, None, active=False)
    assert not is_stuck(True, "lock acquire", active=True)


def test_judge():
    frames = BOOT + [("worker", USER, 12)]
    verdict = judge(frames, "with lock:", False, unchanged_s=2.0, watch_s=2.0)
    assert verdict.stuck and verdict.wait_reason == "lock acquire" and verdict.wait_frame == ("worker", USER, 12)
    assert not judge(frames, "with lock:", False, unchanged_s=1.5, watch_s=2.0).stuck, "moved during the watch"
    assert not judge(frames, "with lock:", True, unchanged_s=2.0, watch_s=2.0).stuck, "it ran"
    one_look = judge(frames, "with lock:", False, unchanged_s=0.0, watch_s=0.0)
    assert not one_look.stuck and one_look.wait_reason == "lock acquire", "one dump marks the wait, judges nothing"
    assert not judge(frames, "x = 1", False, unchanged_s=2.0, watch_s=2.0).stuck, "unchanged but not a wait"


def test_waits_module_is_pure():
    source = Path(__file__).parent.parent.joinpath("model", "waits.py").read_text()
    imports = {m.group(1) for m in re.finditer(r"^(?:from|import) (\S+)", source, re.M)}
    assert imports <= {"__future__", "re", "dataclasses"}, imports
