"""Faults on real processes: gradetop keeps running (or exits with one clear line and a non-zero code),
never shows a traceback, and keeps every sample it took. The last part holds what the fault probe found
(issue 12), each with the test that failed before its fix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import gradetop, one_line, spawn_sleeper
from gradetop.model.snapshot import load

SPIN = textwrap.dedent("""
    import time
    def spin(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
""")


def script(tmp_path, body: str, name: str = "job.py"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SPIN + textwrap.dedent(body), encoding="utf-8")
    return path


def record(tmp_path, *command: str, extra: tuple[str, ...] = (), env=None, timeout: float = 120):
    out = tmp_path / "out.gtop"
    result = gradetop("record", "-o", str(out), *extra, "--", *command, timeout=timeout, env=env)
    assert "Traceback" not in result.stderr and "Stack backtrace" not in result.stderr, result.stderr
    return result, out


def report_of(out) -> dict:
    result = gradetop("report", str(out), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def functions(out) -> dict[str, float]:
    return {f["function"]: f["total_s"] for f in report_of(out)["functions"]}


# ---- the target ends badly ---------------------------------------------------------------

@pytest.mark.attach
@pytest.mark.parametrize("ending, code", [
    ("raise SystemExit(0)", 0),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 128 + signal.SIGKILL),
    ("import ctypes; ctypes.string_at(0)", 128 + signal.SIGSEGV),
])
def test_target_ending_mid_window_keeps_its_samples(tmp_path, ptrace, ending, code):
    # Long enough that py-spy's first attach, retried while the interpreter is young, lands well inside it
    # on a loaded machine.
    job = script(tmp_path, f"""
        spin(1.5)
        {ending}
    """)
    result, out = record(tmp_path, sys.executable, str(job))
    assert result.returncode == code, result.stderr
    assert 0.8 <= functions(out).get("spin", 0.0) <= 1.9


@pytest.mark.attach
def test_python_grandchild_is_sampled(tmp_path, ptrace):
    job = script(tmp_path, """
        import multiprocessing as mp
        def grandchild_work():
            spin(1.0)
        def child():
            p = mp.get_context("spawn").Process(target=grandchild_work)
            p.start(); p.join()
        if __name__ == "__main__":
            p = mp.get_context("spawn").Process(target=child)
            p.start(); p.join()
    """)
    result, out = record(tmp_path, sys.executable, str(job))
    assert result.returncode == 0, result.stderr
    assert 0.6 <= functions(out).get("grandchild_work", 0.0) <= 1.3


@pytest.mark.attach
def test_children_dying_as_their_windows_start(tmp_path, ptrace):
    job = script(tmp_path, """
        import subprocess, sys
        for _ in range(15):
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.04)"]).wait()
        spin(0.5)
    """)
    result, out = record(tmp_path, sys.executable, str(job))
    assert result.returncode == 0, result.stderr
    assert functions(out).get("spin", 0.0) > 0.3


@pytest.mark.attach
def test_a_target_that_is_not_python(tmp_path, ptrace):
    result, out = record(tmp_path, "sleep", "1.5")
    assert result.returncode in (0, 3) and "not a Python process" in result.stderr, result.stderr
    assert len(load(out).process_series) >= 5


# ---- hard shapes -------------------------------------------------------------------------

@pytest.mark.attach
def test_1000_deep_recursion(tmp_path, ptrace):
    job = script(tmp_path, """
        import sys
        sys.setrecursionlimit(5000)
        def deep(n):
            return spin(1.5) if n == 0 else deep(n - 1)
        deep(1000)
    """)
    result, out = record(tmp_path, sys.executable, str(job))
    assert result.returncode == 0, result.stderr
    assert functions(out).get("deep", 0.0) >= 0.6
    started = time.perf_counter()
    assert gradetop("report", str(out)).returncode == 0
    assert time.perf_counter() - started < 20


@pytest.mark.attach
def test_64_busy_threads(tmp_path, ptrace):
    job = script(tmp_path, """
        import threading
        threads = [threading.Thread(target=spin, args=(1.5,), name=f"busy-{i}") for i in range(64)]
        for t in threads: t.start()
        for t in threads: t.join()
    """)
    result, out = record(tmp_path, sys.executable, str(job))
    assert result.returncode == 0, result.stderr
    names = {t["name"] for t in report_of(out)["threads"]}
    assert len([n for n in names if n.startswith("busy-")]) >= 60, names


@pytest.mark.attach
def test_50000_distinct_functions_fit_the_memory_goal(tmp_path, ptrace):
    job = script(tmp_path, """
        source = "\\n".join(f"def f{i}():\\n    spin(0.0001)\\n" for i in range(50_000))
        exec(compile(source, "generated.py", "exec"))
        for i in range(50_000):
            globals()[f"f{i}"]()
    """)
    result, out = record(tmp_path, sys.executable, str(job), timeout=240)
    assert result.returncode == 0, result.stderr
    profile = load(out)
    assert len(profile.frames) > 300  # ~5 s at 100 Hz: every sample a different function
    assert os.path.getsize(out) < 50e6 and profile.nbytes < 50e6


# ---- odd inputs --------------------------------------------------------------------------

@pytest.mark.attach
def test_odd_names_paths_and_a_long_command_line(tmp_path, ptrace):
    """Finding 7 too: a terminal that cannot show the names gets escapes, never an internal error."""
    job = script(tmp_path / "dir with spaces é", """
        import sys, threading
        def naïve_函数():
            spin(0.8)
        t = threading.Thread(target=naïve_函数, name="worker 🚀")
        t.start(); t.join()
    """, name="naïve 脚本.py")
    result, out = record(tmp_path, sys.executable, str(job), "x" * 10_000)
    assert result.returncode == 0, result.stderr
    rep = report_of(out)
    assert "naïve_函数" in {f["function"] for f in rep["functions"]}
    assert "worker 🚀" in {t["name"] for t in rep["threads"]}
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"}
    env.pop("PYTHONIOENCODING", None)
    for args in (("report", str(out)), ("report", str(out), "--json")):
        text = subprocess.run([sys.executable, "-m", "gradetop", *args], capture_output=True, timeout=60,
                              env=env, stdin=subprocess.DEVNULL)
        assert text.returncode == 0 and b"internal error" not in text.stderr, text.stderr
    assert b"na\\xefve_\\u51fd\\u6570" in subprocess.run(
        [sys.executable, "-m", "gradetop", "report", str(out)], capture_output=True, timeout=60, env=env,
        stdin=subprocess.DEVNULL).stdout


@pytest.mark.parametrize("args", [
    ["record", "--rate", "0", "--", "true"], ["record", "--rate", "-5", "--", "true"],
    ["record", "--rate", "100000", "--", "true"], ["record", "--duration", "-1", "--", "true"],
    ["report", "--top", "-3", "x.gtop"], ["report", "--top", "many", "x.gtop"],
])
def test_out_of_range_numbers_are_one_line(args, tmp_path):
    result = gradetop(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    one_line(result)


@pytest.mark.parametrize("args, helped", [
    (["report", "--no-such-flag", "x.gtop"], "gradetop report --help"),
    (["record", "--bogus", "--", "true"], "gradetop record --help"),
    (["dump", "--pid", "1", "--bogus"], "gradetop dump --help"),
    (["--bogus"], "gradetop --help"),
])
def test_an_unknown_flag_points_to_the_subcommands_help(args, helped, tmp_path):
    result = gradetop(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert f"'{helped}'" in one_line(result)


# ---- found by the fault probe (issue 12) -------------------------------------------------

@pytest.mark.attach
def test_pid_of_an_ancestor_never_samples_gradetop_itself(tmp_path, ptrace):
    out = tmp_path / "ancestor.gtop"
    cmd = f"{sys.executable} -m gradetop record --pid $$ --duration 2 -o '{out}'; true"
    result = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert "Traceback" not in result.stderr
    rep = report_of(out)
    # Only the shell: not gradetop (its child), nor the py-spy helpers gradetop runs.
    assert [p["cmdline"].split()[0] for p in rep["processes"]] == ["bash"], rep["processes"]
    dumped = subprocess.run(["bash", "-c", f"{sys.executable} -m gradetop dump --pid $$ --json; true"],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert "Traceback" not in dumped.stderr
    pids = [p["pid"] for p in json.loads(dumped.stdout)["processes"]] if dumped.stdout.strip() else []
    assert len(pids) <= 1, dumped.stdout[:2000]


def test_pid_of_a_zombie_says_zombie(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import os, time
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        print(pid, flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        zombie = int(parent.stdout.readline())
        time.sleep(0.2)
        result = gradetop("record", "--pid", str(zombie), "-o", str(tmp_path / "z.gtop"))
        assert result.returncode != 0
        line = one_line(result)
        assert "zombie" in line and str(parent.pid) in line, line
    finally:
        parent.kill()
        parent.wait()


def test_a_read_only_file_system_is_called_that(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only file system here (needs root and mount rights)")
    try:
        result = gradetop("record", "-o", str(ro / "x.gtop"), "--", "true")
        assert result.returncode != 0
        line = one_line(result)
        assert "read-only file system" in line and "permission" not in line, line
    finally:
        subprocess.run(["umount", str(ro)])


@pytest.mark.attach
def test_short_lived_non_python_children_are_explained(tmp_path, ptrace):
    job = script(tmp_path, """
        import subprocess
        spin(0.3)
        for _ in range(5):
            subprocess.run(["sh", "-c", "sleep 0.05"])
        subprocess.run(["sleep", "1.2"])
        spin(0.3)
    """)
    result, out = record(tmp_path, sys.executable, str(job))
    assert result.returncode == 0, result.stderr
    rep = report_of(out)
    long_sleep = [p for p in rep["processes"] if p["cmdline"] == "sleep 1.2"]
    assert long_sleep and "not a Python process" in long_sleep[0]["why_not_sampled"], rep["processes"]
    short = [p for p in rep["processes"] if p["cmdline"].startswith(("sleep 0.05", "sh -c"))]
    assert all(p["why_not_sampled"] for p in short), short
    notes = [n.message for n in load(out).notes if n.kind in ("gone", "not-python")]
    # What it was and how long it lived, never a bare 'has exited'.
    assert notes and all("(sh" in n or "(sleep" in n or "(unknown" in n for n in notes), notes
    assert all(("exited before py-spy could read its stacks" in n or "not a Python process" in n)
               and " s" in n for n in notes if "exited" in n), notes


@pytest.mark.skipif(not os.path.exists("/usr/bin/setpriv"), reason="needs setpriv (util-linux) to drop privileges")
def test_attach_without_ptrace_puts_the_fix_on_the_screen(tmp_path):
    """The live session tells the UI (a notice: a toast) the whole one-line fix, not just 'NO STACKS'."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start the target as another user")
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip("needs /usr/bin/python3 for a target that runs as nobody")
    proc, pid = spawn_sleeper(python=python, prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    probe = textwrap.dedent(f"""
        import time
        from gradetop.collectors.session import Session, SessionOptions
        session = Session.attach({pid}, SessionOptions(save=False)).start()
        deadline = time.time() + 20
        while not session.notices and time.time() < deadline:
            session.poll()
            time.sleep(0.1)
        print(session.notices)
        session.detach()
    """)
    try:
        # Root without CAP_SYS_PTRACE may not read another user's process.
        result = subprocess.run(["setpriv", "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace",
                                 sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL, cwd=tmp_path)
        assert "CAP_SYS_PTRACE" in result.stdout and "ptrace_scope" in result.stdout, result.stdout + result.stderr
    finally:
        proc.kill()
        proc.wait()


def test_a_1000_deep_trie_answers_every_level_fast():
    """ancestor_at walked one level per numpy pass, and callers ask for every level: open of a
    1000-deep recursion took seconds per picture."""
    from gradetop.model.stacks import StackTable, ancestor_at, functions_at

    stacks = StackTable()
    deep = [stacks.frames.intern("main", "/app/x.py", 1)] + [stacks.frames.intern("deep", "/app/x.py", 2)] * 1500
    leaves = np.array([stacks.intern(deep[:n]) for n in (1, 10, 700, 1501)] + [0], dtype=np.int32)
    depth = stacks.depth.view()
    # Against the plain walk up the parents.
    for wanted in (0, 1, 5, 9, 10, 11, 699, 700, 1000, 1501, 2000):
        expected = []
        for node in leaves:
            node = int(node)
            while depth[node] > wanted:
                node = int(stacks.parent.view()[node])
            expected.append(node)
        assert ancestor_at(stacks, leaves, wanted).tolist() == expected
    nodes = np.repeat(leaves, 200)
    started = time.perf_counter()
    for level in range(1, 1502):
        functions_at(stacks, nodes, level)
    assert time.perf_counter() - started < 3.0


def test_a_saved_files_pictures_are_computed_once(tmp_path):
    """A FileSource never changes: a second picture of one request reuses the panels, and a new request
    recomputes only what depends on it."""
    from pathlib import Path

    from gradetop.model.source import FileSource
    from gradetop.model.views import ViewFilter
    from gradetop.tui.refresher import PictureRequest, Refresher

    demo = Path(__file__).parent / "data" / "demo.gtop"
    refresher = Refresher(FileSource(load(demo), str(demo)), lambda picture: None)
    first = refresher.picture(PictureRequest(ViewFilter(), 40))
    again = refresher.picture(PictureRequest(ViewFilter(), 40))
    assert again.view is first.view and again.timeline is first.timeline and again.threads is first.threads
    assert again.gpu is first.gpu
    other = refresher.picture(PictureRequest(ViewFilter(include_idle=False), 40))
    assert other.view is not first.view and other.timeline is first.timeline and other.threads is first.threads
