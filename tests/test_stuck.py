"""The dump verdicts and report JSON on facts written by hand: no processes, no py-spy.

tests/test_dump.py runs the same verdicts on real stuck programs; here each
rule is checked on its own (did it run, stuck or not, zombie, exited,
idle child of a waiting parent) and the JSON shape is pinned.
"""

from __future__ import annotations

import json
import signal

from gradetop.model.dump_report import DumpResult, FrameReport, ProcessReport, ThreadReport, frame_json
from gradetop.model.stuck import (
    IDLE_CPU_FLOOR_S,
    ProcessFacts,
    ThreadFacts,
    exit_words,
    judge_processes,
    judge_thread,
    process_trouble,
    ran,
)

USER = "/app/train.py"
THREADING = "/usr/lib/python3.11/threading.py"
LOCKED = [FrameReport("worker", USER, 12), FrameReport("Thread.run", THREADING, 982)]
"""Leaf first: a worker blocked in `with lock:` (a C wait shows only the caller's line)."""
JOINING = [FrameReport("Popen.poll", "/x/multiprocessing/popen_fork.py", 27),
           FrameReport("Popen.wait", "/x/multiprocessing/popen_fork.py", 43),
           FrameReport("BaseProcess.join", "/x/multiprocessing/process.py", 149),
           FrameReport("<module>", USER, 51)]
WATCH = 2.0


def facts(frames=LOCKED, line="    with lock:", *, dumps=8, active_dumps=0, cpu_s=0.0, unchanged_s=WATCH,
          active=False, owns_gil=False, tid=11) -> ThreadFacts:
    return ThreadFacts(tid=tid, name="worker", frames=frames, source_line=line, active=active, owns_gil=owns_gil,
                       dumps=dumps, active_dumps=active_dumps, cpu_s=cpu_s, unchanged_s=unchanged_s,
                       python_thread_id=140000)


# -- threads -----------------------------------------------------------------------


def test_a_thread_ran_when_seen_active_half_the_time_or_given_cpu():
    assert not ran(dumps=8, active_dumps=0, cpu_s=0.0, span=WATCH)
    assert ran(dumps=8, active_dumps=4, cpu_s=None, span=WATCH)
    assert not ran(dumps=8, active_dumps=3, cpu_s=None, span=WATCH)
    assert ran(dumps=8, active_dumps=0, cpu_s=0.5, span=WATCH)
    assert not ran(dumps=8, active_dumps=0, cpu_s=IDLE_CPU_FLOOR_S, span=WATCH), "a wake-up or two is not running"
    assert not ran(dumps=1, active_dumps=0, cpu_s=5.0, span=0.0), "one look measures no CPU share"
    assert ran(dumps=1, active_dumps=1, cpu_s=None, span=0.0)


def test_a_thread_unmoved_in_a_wait_without_running_is_stuck():
    report = judge_thread(facts(), WATCH, running=True)
    assert report.stuck and not report.ran
    assert report.wait_reason == "lock acquire" and report.wait_frame == ("worker", USER, 12)
    assert report.state == "idle" and report.tid == 11 and report.frames == LOCKED


def test_a_thread_is_not_stuck_if_it_moved_ran_or_is_no_wait():
    assert not judge_thread(facts(unchanged_s=WATCH - 0.5), WATCH, running=True).stuck, "moved during the watch"
    assert not judge_thread(facts(cpu_s=0.4), WATCH, running=True).stuck, "it ran"
    assert not judge_thread(facts(line="    x = y + 1"), WATCH, running=True).stuck, "unchanged but no wait"
    busy = judge_thread(facts(active=True, active_dumps=8), WATCH, running=True)
    assert busy.state == "running" and busy.ran and not busy.stuck


def test_an_exited_process_threads_are_shown_not_judged():
    report = judge_thread(facts(), WATCH, running=False)
    assert not report.stuck and report.wait_reason == "lock acquire"


def test_thread_state_names_the_gil_holder():
    assert judge_thread(facts(owns_gil=True), WATCH, running=True).state == "holding GIL"


# -- processes -------------------------------------------------------------------------


def process(pid, ppid, status="running", *, threads=(), cpu_percent=0.0, exit_code=None, sig=None) -> ProcessReport:
    return ProcessReport(pid, ppid, f"python job{pid}.py", status, exit_code, sig, cpu_percent, WATCH,
                         threads=list(threads))


IDLE = ProcessFacts(whole_watch=True, cpu_used_s=0.0)


def waiting_parent() -> ProcessReport:
    return process(100, 1, threads=[judge_thread(facts(JOINING, "pid, sts = os.waitpid(self.pid, flag)", tid=100),
                                                 WATCH, running=True)])


def test_exit_words():
    assert exit_words(None, signal.SIGKILL) == "killed by SIGKILL"
    assert exit_words(None, 200) == "killed by signal 200"
    assert exit_words(3, None) == "exited with status 3"
    assert exit_words(None, None) == "exit status unknown"


def test_a_zombie_and_an_exited_child_are_trouble():
    parent = waiting_parent()
    zombie = process(101, 100, "zombie", cpu_percent=None, exit_code=3)
    assert process_trouble(zombie, IDLE, parent, WATCH, is_root=False) == [
        "exited with status 3; zombie: its parent 100 has not reaped it"]
    killed = process(102, 100, "exited", cpu_percent=None, sig=signal.SIGKILL)
    assert process_trouble(killed, IDLE, parent, WATCH, is_root=False) == ["killed by SIGKILL during the watch"]
    reaped = process(103, 100, "exited", cpu_percent=None)
    assert process_trouble(reaped, IDLE, parent, WATCH, is_root=False) == [
        "exited during the watch (exit status unknown: its parent reaped it)"]


def test_an_idle_child_of_a_waiting_parent_is_trouble():
    parent = waiting_parent()
    assert parent.threads[0].stuck and parent.threads[0].wait_reason == "process join/wait"
    (line,) = process_trouble(process(101, 100), IDLE, parent, WATCH, is_root=False)
    assert line == ("0% CPU for the whole watch (2.0 s) while its parent 100 waits on it "
                    "(process join/wait at train.py:51)")


def test_a_child_is_not_trouble_when_busy_young_or_its_parent_does_not_wait():
    parent = waiting_parent()
    child = process(101, 100)
    assert process_trouble(child, ProcessFacts(True, 0.5), parent, WATCH, is_root=False) == [], "it used CPU"
    assert process_trouble(child, ProcessFacts(False, 0.0), parent, WATCH, is_root=False) == [], "born mid-watch"
    assert process_trouble(child, IDLE, parent, 0.0, is_root=False) == [], "one look judges nothing"
    assert process_trouble(child, IDLE, process(100, 1), WATCH, is_root=False) == [], "parent not waiting"
    assert process_trouble(child, IDLE, None, WATCH, is_root=False) == [], "parent not watched"
    assert process_trouble(child, IDLE, parent, WATCH, is_root=True) == [], "the root is never a child"


def test_judge_processes_finds_parents_among_the_reports():
    parent, child, stranger = waiting_parent(), process(101, 100), process(300, 42)
    reports = [parent, child, stranger]
    judge_processes(reports, {100: IDLE, 101: IDLE, 300: IDLE}, root=100, watch_s=WATCH)
    assert parent.trouble == [] and stranger.trouble == []
    assert len(child.trouble) == 1 and "its parent 100 waits on it" in child.trouble[0]


# -- JSON ------------------------------------------------------------------------------


def test_dump_result_json_shape():
    parent = waiting_parent()
    child = process(101, 100, cpu_percent=0.04)
    parent.threads[0].frames[0].locals = [{"name": "flag", "repr": "0", "arg": True}]
    result = DumpResult(100, 2.00049, 9, 1, [parent, child])
    out = json.loads(json.dumps(result.to_json()))
    assert out["pid"] == 100 and out["watch_s"] == 2.0 and out["dumps"] == 9 and out["blocking_dumps"] == 1
    assert out["stuck"] == [{"pid": 100, "tid": 100}]
    assert [p["pid"] for p in out["processes"]] == [100, 101]
    assert out["processes"][1]["cpu_percent"] == 0.0 and out["processes"][1]["threads"] == []
    thread = out["processes"][0]["threads"][0]
    assert thread["wait_frame"] == {"function": "<module>", "file": USER, "line": 51}
    assert thread["stuck"] is True and thread["wait_reason"] == "process join/wait"
    assert thread["frames"][0] == {"function": "Popen.poll", "file": "/x/multiprocessing/popen_fork.py",
                                   "line": 27, "native": False,
                                   "locals": [{"name": "flag", "repr": "0", "arg": True}]}
    assert "locals" not in thread["frames"][1], "locals only where py-spy was asked for them"
    assert result.stuck() == [(parent, parent.threads[0])]
    assert frame_json(None) is None


def test_thread_report_json_rounds_times():
    report = ThreadReport(7, "t", "idle", False, False, 1.23456, False, None, None, [], False, 0.123456)
    out = report.to_json()
    assert out["unchanged_s"] == 1.235 and out["cpu_s"] == 0.1235 and out["wait_frame"] is None


def test_the_verdicts_and_reports_read_nothing():
    """model.stuck and model.dump_report take facts; reading processes is collectors.dump's job."""
    import re
    from pathlib import Path

    for name in ("stuck.py", "dump_report.py"):
        source = Path(__file__).parent.parent.joinpath("model", name).read_text()
        imports = {m.group(1) for m in re.finditer(r"^(?:from|import) (\S+)", source, re.M)}
        assert imports <= {"__future__", "os", "signal", "dataclasses", "gradetop.model.dump_report",
                           "gradetop.model.waits"}, (name, imports)
        assert "open(" not in source, name


# -- a parent waiting on children that make progress -------------------------------------------------

POOL_WAIT = [FrameReport("Condition.wait", THREADING, 327), FrameReport("ApplyResult.wait", "/x/multiprocessing/pool.py", 765),
             FrameReport("MapResult.get", "/x/multiprocessing/pool.py", 768), FrameReport("Pool.map", "/x/multiprocessing/pool.py", 367),
             FrameReport("load_data", USER, 40)]


def test_a_parent_waiting_on_busy_children_is_waiting_not_stuck():
    parent = process(100, 1, threads=[judge_thread(facts(POOL_WAIT, "waiter.acquire()", tid=100), WATCH, running=True)])
    assert parent.threads[0].stuck and parent.threads[0].wait_reason == "pool result wait"  # one process alone
    busy = [process(101, 100), process(102, 100)]
    judge_processes([parent, *busy], {100: IDLE, 101: ProcessFacts(True, 1.9), 102: ProcessFacts(True, 1.8)},
                    root=100, watch_s=WATCH)
    thread = parent.threads[0]
    assert not thread.stuck and thread.waiting_on == "its 2 child processes, which used 3.7 CPU s in 2.0 s"
    assert thread.to_json()["waiting_on"] == thread.waiting_on


def test_a_parent_waiting_on_idle_children_stays_stuck_and_they_are_trouble():
    parent = process(100, 1, threads=[judge_thread(facts(POOL_WAIT, "waiter.acquire()", tid=100), WATCH, running=True)])
    child = process(101, 100)
    judge_processes([parent, child], {100: IDLE, 101: IDLE}, root=100, watch_s=WATCH)
    assert parent.threads[0].stuck and not parent.threads[0].waiting_on
    assert child.trouble and "waits on it (pool result wait" in child.trouble[0]


def test_busy_children_never_excuse_a_lock_wait():
    parent = process(100, 1, threads=[judge_thread(facts(tid=100), WATCH, running=True)])  # `with lock:`
    judge_processes([parent, process(101, 100)], {100: IDLE, 101: ProcessFacts(True, 1.9)}, root=100, watch_s=WATCH)
    assert parent.threads[0].stuck, "children computing do not release the parent's lock"
