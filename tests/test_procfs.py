"""The /proc readers on this very process: what they read, and None (never an exception) where nothing is."""

from __future__ import annotations

import os
import threading

from conftest import free_pid
from gradetop.collectors.procfs import schedstat_ns, source_line, thread_cpu_s, zombie_exit


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
