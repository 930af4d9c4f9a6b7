"""The /proc readers on this very process and on children: what they read, and None (never an exception) where
nothing is; the files they keep open, and let go of."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import psutil

from conftest import free_pid
from gradetop.collectors.open_files import OpenFiles
from gradetop.collectors.procfs import host_busy_s, process_stat, schedstat_ns, source_line, task_ids as procfs_tids
from gradetop.collectors.procfs import thread_cpu_s, zombie_exit
from gradetop.collectors.resources import ResourceSampler
from gradetop.model.records import ProcessEnded, ResourceBatch


def test_schedstat_and_thread_cpu_of_this_thread():
    pid, tid = os.getpid(), threading.get_native_id()
    ns = schedstat_ns(pid, tid)
    cpu = thread_cpu_s(pid, tid)
    assert cpu is not None and cpu > 0
    if ns is not None:  # kernels without CONFIG_SCHEDSTATS fall back to stat's ticks
        assert ns[0] > 0 and ns[1] >= 0


def test_readers_of_a_missing_process_say_nothing():
    pid = free_pid()
    assert schedstat_ns(pid, pid) is None
    assert thread_cpu_s(pid, pid) is None
    assert zombie_exit(pid) == (None, None)


def test_source_line_through_the_target_root_then_as_is():
    here = os.path.abspath(__file__)
    assert source_line(os.getpid(), here, 1).startswith('"""The /proc readers')
    assert source_line(free_pid(), here, 1).startswith('"""The /proc readers'), "falls back to the path as is"
    assert source_line(os.getpid(), os.path.relpath(here), 1).startswith('"""The'), "relative: from its cwd"
    assert source_line(os.getpid(), here, 10_000) is None
    assert source_line(os.getpid(), "", 1) is None and source_line(os.getpid(), here, 0) is None


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_open_files_read_a_file_afresh_each_time_and_let_go_of_an_ended_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        fds = _open_fds()
        files = OpenFiles()
        first = process_stat(child.pid, files)
        assert first is not None and first.ppid == os.getpid() and len(files) == 1
        work = sum(range(3_000_000))  # our own CPU moves between two reads of one open file
        assert work and process_stat(os.getpid(), files).cpu_s >= 0 and len(files) == 2
        assert host_busy_s(files) is not None and len(files) == 3
        child.kill()
        child.wait()
        # Reaped: its file reads nothing, whatever process the kernel gives its pid to next.
        assert process_stat(child.pid, files) is None and len(files) == 2
        files.keep_only(set())
        assert len(files) == 1, "the machine's /proc/stat stays"
        files.close()
        assert _open_fds() == fds and len(files) == 0
    finally:
        child.kill()
        child.wait()


def test_open_files_past_their_limit_are_read_and_closed_as_before():
    fds = _open_fds()
    files = OpenFiles(limit=1)
    assert process_stat(os.getpid(), files) is not None
    for _ in range(3):
        assert schedstat_ns(os.getpid(), threading.get_native_id(), files) == schedstat_ns(
            os.getpid(), threading.get_native_id()) or schedstat_ns(os.getpid(), threading.get_native_id()) is None
    assert len(files) == 1 and _open_fds() == fds + 1
    del files
    assert _open_fds() == fds, "dropped unclosed, its files close"


def test_host_busy_seconds_are_psutils():
    ours, theirs = host_busy_s(), psutil.cpu_times()
    expected = sum(theirs) - theirs.idle - theirs.iowait
    assert ours is not None and abs(ours - expected) < 0.5


def test_the_resource_sampler_follows_threads_that_come_and_go(tmp_path):
    """Its thread lists are kept between readings: a thread that ended and one that began in its place (the
    same number of threads) are both seen."""
    script = tmp_path / "threads.py"
    script.write_text(
        "import sys, threading, time\n"
        "def spin(stop):\n"
        "    while not stop.is_set(): sum(range(1000))\n"
        "stop = threading.Event(); first = threading.Thread(target=spin, args=(stop,)); first.start()\n"
        "sys.stdin.readline(); stop.set(); first.join()\n"
        "stop2 = threading.Event(); threading.Thread(target=spin, args=(stop2,)).start()\n"
        "print(threading.get_native_id() and 'second', flush=True); sys.stdin.readline(); stop2.set()\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    records = []
    sampler = ResourceSampler(proc.pid, records.append)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(procfs_tids(proc.pid)) < 2:
            time.sleep(0.01)
        first = set(procfs_tids(proc.pid))
        sampler.sample_once()
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "second\n"
        second = set(procfs_tids(proc.pid))
        assert len(second) == len(first) and second != first
        time.sleep(0.05)  # the new thread runs: the process's CPU moves, its threads are read again
        sampler.sample_once()
    finally:
        proc.stdin.write("\n")
        proc.stdin.close()
        proc.wait(10)
        sampler.sample_once()
    readings = [r for batch in records if isinstance(batch, ResourceBatch) for r in batch.processes]
    assert set(readings[0].thread_times) == first
    assert set(readings[1].thread_times) == second
    assert any(isinstance(r, ProcessEnded) and r.pid == proc.pid for r in records)
    assert len(sampler._files) <= 1, "only the machine's /proc/stat stays open once the process is gone"
