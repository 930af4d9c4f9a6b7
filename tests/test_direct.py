"""Reading CPython's interpreter from outside (collectors.cpython, collectors.direct), on real processes.

The truth each test checks against is the target's own: the stack it reports of itself
(sys._current_frames), CPython's own line table decoder (co_lines), its own thread names.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from gradetop.collectors.cpython import Interpreter, Unsupported, line_of
from gradetop.collectors.direct import DirectReader, Ticker
from gradetop.collectors.pyspy import StackIds
from tests.conftest import gradetop

needs_ptrace = pytest.mark.usefixtures("ptrace")
READ = ("3.11", "3.12", "3.13")
"""The versions gradetop reads directly (collectors.cpython.LAYOUTS)."""
readable_here = pytest.mark.skipif(f"{sys.version_info[0]}.{sys.version_info[1]}" not in READ,
                                   reason=f"the tests' Python is the target: gradetop reads {', '.join(READ)} only")


def pythons() -> dict[str, str]:
    """An interpreter of each version in READ that this machine has (the tests' own, on PATH, pyenv's)."""
    found = {f"{sys.version_info[0]}.{sys.version_info[1]}": sys.executable}
    for version in READ:
        candidates = [shutil.which(f"python{version}"),
                      *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))]
        for exe in filter(None, candidates):
            if version in found:
                break
            try:  # (a pyenv shim on PATH may run another version, or none)
                said = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                      capture_output=True, text=True, timeout=30).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                continue
            if said == version:
                found[version] = exe
    return found


PYTHONS = pythons()
each_python = pytest.mark.parametrize("python", [
    pytest.param(PYTHONS.get(version), id=version,
                 marks=pytest.mark.skipif(version not in PYTHONS, reason=f"no Python {version} on this machine"))
    for version in READ])

# A target that tells its own stacks (as CPython sees them) on a line, then holds still.
TELLER = textwrap.dedent("""
    import json, sys, threading, time, traceback
    sys.setrecursionlimit(5000)

    class Napper:
        def nap(self, ready):
            ready.set()
            time.sleep(60)

    def deep(n, ready):
        if n == 0:
            for _ in through_a_generator(ready):
                pass
        else:
            deep(n - 1, ready)

    def through_a_generator(ready):
        # A generator's frame (it lives in the generator, not on the thread's frame stack), and a call from
        # C into Python (map): 3.12 and later put a frame of their own under the frames it runs.
        yield from map(lambda r: Napper().nap(r), [ready])

    ready = threading.Event()
    threading.Thread(target=deep, args=(DEPTH, ready), name="nap thread ☕", daemon=True).start()
    ready.wait()
    time.sleep(0.2)
    frames = sys._current_frames()
    told = {}
    for thread in threading.enumerate():
        if thread is threading.current_thread():
            continue
        told[thread.native_id] = [(f.f_code.co_qualname, f.f_code.co_filename, f.f_lineno)
                                  for f, _ in traceback.walk_stack(frames[thread.ident])]
    print(json.dumps(told), flush=True)
    time.sleep(60)
""")


@contextlib.contextmanager
def ended_after(*procs: subprocess.Popen):
    """The processes, killed and reaped when the block ends."""
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
            if proc.stdout:
                proc.stdout.close()


def start_teller(depth: int, python: str = sys.executable) -> tuple[subprocess.Popen, dict[int, list]]:
    proc = subprocess.Popen([python, "-c", TELLER.replace("DEPTH", str(depth))], stdout=subprocess.PIPE, text=True)
    told = {int(tid): [tuple(f) for f in frames] for tid, frames in json.loads(proc.stdout.readline()).items()}
    return proc, told


def stacks_read(interpreter: Interpreter) -> dict[int, list[tuple[str, str, int]]]:
    interpreter.new_round()
    return {tid: [interpreter.describe(f) for f in interpreter.stack(state)] for tid, state in interpreter.threads()}


@needs_ptrace
@each_python
@pytest.mark.parametrize("depth", [3, 1000])
def test_the_stack_read_from_outside_is_the_one_the_process_tells(python, depth):
    proc, told = start_teller(depth, python)
    try:
        read = stacks_read(Interpreter.open(proc.pid))
        (tid, frames), = told.items()
        assert read[tid] == frames
        assert frames[0][0] == "Napper.nap" and len(frames) >= depth
    finally:
        proc.kill()
        proc.wait()


# In the Python under test: each code object's line table, first line, and the lines CPython gives its
# instructions (co_lines), for functions of every shape: a method, a generator, a coroutine, a long one.
LINES = textwrap.dedent("""
    import asyncio, json, subprocess, textwrap
    codes = [json.JSONEncoder.encode.__code__, textwrap.dedent.__code__, subprocess.Popen.__init__.__code__,
             asyncio.sleep.__code__, json.encoder._make_iterencode.__code__]
    codes += [c for c in json.encoder._make_iterencode.__code__.co_consts if hasattr(c, "co_lines")]
    print(json.dumps([(c.co_name, c.co_linetable.hex(), c.co_firstlineno, list(c.co_lines())) for c in codes]))
""")


@each_python
def test_line_numbers_agree_with_cpythons_own_decoder(python):
    codes = json.loads(subprocess.run([python, "-c", LINES], capture_output=True, text=True, check=True).stdout)
    for name, table, first, lines in codes:
        for start, end, line in lines:
            for offset in range(start, end, 2):
                if line is not None:  # (an instruction with no line keeps the last one: the nearest there is)
                    assert line_of(bytes.fromhex(table), first, offset) == line, (name, offset)


@needs_ptrace
def test_what_is_not_python_is_left_to_py_spy():
    with ended_after(subprocess.Popen(["sleep", "30"])) as (proc,):
        time.sleep(0.1)
        with pytest.raises(Unsupported):
            Interpreter.open(proc.pid)


@needs_ptrace
@each_python
def test_a_waiting_thread_keeps_its_stack_at_every_tick_without_a_walk(python):
    proc, told = start_teller(3, python)
    try:
        batches = []
        reader = DirectReader(Interpreter.open(proc.pid), StackIds(), batches.append)
        t0 = time.time()
        reader.first_tick(t0)
        walks = 0
        stack = reader.interpreter.stack

        def counted(*args):
            nonlocal walks
            walks += 1
            return stack(*args)

        reader.interpreter.stack = counted
        for k in range(1, 21):
            reader.tick(t0 + k * 0.01)
        reader.flush()
        (batch,) = batches
        (tid,) = told
        (samples,) = [ts for ts in batch.threads if ts.tid == tid]
        assert len(samples.times) == 20 and batch.ticks == 20
        assert np.isclose(samples.weights.sum(), 0.2, atol=1e-6)
        stack = batch.stacks[samples.stack_of[0] - batch.first_stack]
        assert [batch.frames[f - batch.first_frame][0] for f in stack][-1] == "Napper.nap"
        assert walks <= 2  # asleep: its schedstat line did not move
        assert samples.ran.sum() <= 2, "and its samples say it did not run: idle, whatever the counter's spread"
    finally:
        proc.kill()
        proc.wait()


@needs_ptrace
@each_python
def test_the_ticker_hands_on_a_window_and_the_last_samples_when_the_process_ends(python):
    code = "import time\ndef work():\n    t = time.time()\n    while time.time() - t < 1.0: pass\nwork()\n"
    batches = ticked_until_exit(code, python)
    assert len(batches) >= 2
    names = [f[0] for b in batches for f in b.frames]
    assert "work" in names
    ticks = sum(b.ticks for b in batches)
    assert 40 <= ticks <= 110  # 100 Hz, with jitter, over the rest of a 1 s job
    assert batches[-1].t_end <= time.time()


def ticked_until_exit(code: str, python: str = sys.executable, within_s: float = 10.0) -> list:
    """The batches a ticker hands on of `python -c code`, read from its start until it exits."""
    proc = subprocess.Popen([python, "-c", code])
    try:
        for _ in range(100):
            try:
                interpreter = Interpreter.open(proc.pid)
                break
            except Exception:  # not started yet
                time.sleep(0.02)
        batches = []
        reader = DirectReader(interpreter, StackIds(), batches.append)
        reader.first_tick(time.time())
        Ticker(100, 0.25).add(reader)
        assert reader.done.wait(within_s)
        return batches
    finally:
        proc.kill()
        proc.wait()


@needs_ptrace
@each_python
def test_record_reads_directly_and_names_threads(tmp_path, python):
    out = tmp_path / "t.gtop"
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent("""
        import threading, time
        def spin(seconds):
            t = time.time()
            while time.time() - t < seconds:
                pass
        worker = threading.Thread(target=spin, args=(1.5,), name="spinner")
        worker.start()
        spin(1.5)
        worker.join()
    """))
    run = gradetop("record", "-o", str(out), "--", python, str(script))
    assert run.returncode == 0, run.stderr
    report = json.loads(gradetop("report", str(out), "--json").stdout)
    assert any("by reading its interpreter" in note["message"] for note in report["notes"])
    assert {"MainThread", "spinner"} <= {t["name"] for t in report["threads"]}
    spin = sum(f["self_samples"] for f in report["functions"] if f["function"] == "spin")
    assert 200 < spin < 340  # two threads in it 1.5 s each, at 100 Hz
    assert report["coverage"] > 0.95


@needs_ptrace
@readable_here
def test_a_process_that_execs_python_again_is_read_in_its_new_program():
    after = "import time\\ndef after_exec():\\n    t = time.time()\\n    while time.time() - t < 1.5: pass\\nafter_exec()"
    code = (f"import os, sys, time\ndef before_exec():\n    time.sleep(0.5)\nbefore_exec()\n"
            f"os.execv(sys.executable, [sys.executable, '-c', \"{after}\"])")
    batches = ticked_until_exit(code)
    names = {f[0] for b in batches for f in b.frames}
    assert {"before_exec", "after_exec"} <= names
    assert sum(ts.weights.sum() for b in batches for ts in b.threads) > 1.2  # the new program's 1.5 s, most of it


@needs_ptrace
@readable_here
def test_a_layout_that_does_not_read_the_interpreter_leaves_it_to_py_spy(monkeypatch):
    """A build whose objects are laid out otherwise (a debug build's are larger) must not be read as empty
    stacks: opening it says Unsupported, and py-spy samples it."""
    from dataclasses import replace

    import gradetop.collectors.cpython as cpython

    with ended_after(start_teller(3)[0]) as (proc,):
        Interpreter.open(proc.pid)  # the true layout reads it
        monkeypatch.setitem(cpython.LAYOUTS, (3, 11), replace(cpython.LAYOUTS[(3, 11)], frame_code=40))
        with pytest.raises(Unsupported):
            Interpreter.open(proc.pid)


@needs_ptrace
@readable_here
def test_a_reader_that_fails_is_taken_off_and_the_others_go_on():
    (one, _), (two, _) = start_teller(3), start_teller(3)
    try:
        good, bad = [], []
        readers = [DirectReader(Interpreter.open(p.pid), StackIds(), out.append) for p, out in ((one, good), (two, bad))]
        for reader in readers:
            reader.first_tick(time.time())

        def broken(now, first):
            raise RuntimeError("a layout surprise")

        readers[1]._read = broken
        ticker = Ticker(100, 0.1)
        for reader in readers:
            ticker.add(reader)
        assert readers[1].done.wait(5) and "a layout surprise" in readers[1].failure
        time.sleep(0.5)
        assert not readers[0].done.is_set() and len(good) >= 3
        ticker.remove(readers[0])
    finally:
        for proc in (one, two):
            proc.kill()
            proc.wait()


def open_fds() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


@needs_ptrace
@readable_here
def test_memory_reads_say_what_went_wrong_and_leave_no_file_open():
    """An unmapped address is a failed read; a process that exited (a zombie, then reaped) is gone; an
    interpreter no longer read lets go of its file, so that hours of short-lived workers open none for good."""
    from gradetop.collectors.procmem import ProcessGone, ReadFailed

    before = open_fds()
    for _ in range(3):
        with ended_after(start_teller(3)[0]) as (proc,):
            reader = DirectReader(Interpreter.open(proc.pid), StackIds(), lambda batch: None)
            reader.first_tick(time.time())
            reader.close()
            while reader.names._busy:  # its thread names are asked of py-spy, through pipes
                time.sleep(0.01)
    assert open_fds() == before

    proc, _ = start_teller(3)
    interpreter = Interpreter.open(proc.pid)
    memory = interpreter._memory
    assert len(memory.read(interpreter._runtime, 64)) == 64
    with pytest.raises(ReadFailed):
        memory.read(4096, 8)
    proc.kill()
    while Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        time.sleep(0.01)
    with pytest.raises(ProcessGone):  # a zombie: exited, not yet reaped
        memory.read(interpreter._runtime, 64)
    proc.wait()
    proc.stdout.close()
    with pytest.raises(ProcessGone):
        memory.read(interpreter._runtime, 64)
    interpreter.close()
    assert open_fds() == before


@needs_ptrace
@readable_here
def test_symbols_lie_where_the_process_itself_finds_them():
    """The ELF tables read from the file give the addresses the dynamic linker gave the process."""
    from gradetop.collectors.cpython import SYMBOLS
    from gradetop.collectors.elf import mapped_files, symbol_addresses

    tell = ("import ctypes, json, time; print(json.dumps({n: ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, n))"
            f" for n in {SYMBOLS!r}}}), flush=True); time.sleep(60)")
    with ended_after(subprocess.Popen([sys.executable, "-c", tell], stdout=subprocess.PIPE, text=True)) as (proc,):
        told = json.loads(proc.stdout.readline())
        files = mapped_files(proc.pid)
        found = {}
        for path in sorted(files, key=lambda path: "libpython3" not in path):  # where the interpreter is first
            with contextlib.suppress(OSError, ValueError):  # a locale file, say, is no ELF file
                found = {**symbol_addresses(proc.pid, path, files[path], SYMBOLS), **found}
        assert {name: found.get(name) for name in SYMBOLS} == told


@needs_ptrace
@readable_here
def test_a_reader_taken_off_after_its_process_ended_keeps_its_last_stacks_until_the_exit():
    """A session stops its samplers when its workflow exits, maybe before the ticker has seen it go: the
    last samples then stand until the exit the kernel gave, as when the ticker sees it."""
    from gradetop.collectors.exits import EXITS

    proc, _ = start_teller(3)
    EXITS.watch(proc.pid)
    batches = []
    reader = DirectReader(Interpreter.open(proc.pid), StackIds(), batches.append)
    reader.first_tick(time.time())
    ticker = Ticker(100, 60.0)  # one window for the whole test: its last batch is the one
    ticker.add(reader)
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    ticker.remove(reader)
    exited = EXITS.exited_at(proc.pid, wait_s=1.0)
    assert exited is not None and batches
    assert batches[-1].t_end == pytest.approx(exited, abs=1e-6)
