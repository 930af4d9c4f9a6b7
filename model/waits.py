"""Is a thread waiting, on what, and is it stuck? Pure rules over one stack: no I/O.

A stack is root-first `(function, file, line)` tuples as py-spy reports
them, native frames included when it was asked for them. Three kinds of
evidence, tried in this order:

1. Python frames of the standard library's waits at the top of the stack
   (`Condition.wait` under `Queue.get`, `_wait_for_tstate_lock` under
   `Thread.join`, `Popen.wait`, selectors, c10d collectives...). The
   outermost of a run of them names the wait: `queue.get`, not the
   `Condition.wait` it is made of.
2. Native frames above the top Python frame (`--native`):
   `lock_PyThread_acquire_lock`, `time_sleep`, `epoll_wait`...
3. The source line of the top Python frame. A wait implemented in C
   leaves no frame of its own: a thread blocked in `with lock:` or in
   `time.sleep(5)` shows only the caller's line (shared/design/PYSPY.md).

A wait alone is not a problem: a worker idle on its queue is healthy. A
thread is *stuck* only when its whole stack did not change during the
watch, its top is a wait, it did not run (`is_stuck`), and nothing it
waits on moved: a parent waiting on its children (a multiprocessing pool,
DataLoader workers, joblib/loky, concurrent.futures) while they use CPU is
waiting, not stuck (`children_move`). The collector
measures those three facts; this module only judges them, so that the
headless `dump` and the live UI say the same thing.

Must never import textual or rich, nor read files or processes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Frame = tuple[str, str, int]
"""(function, file, line), as py-spy names them; line 0 for native frames."""

REASONS = (
    "lock acquire", "condition wait", "thread join", "queue.get", "queue.put", "queue join",
    "process join/wait", "pool result wait", "future result", "connection recv", "select/poll",
    "socket recv", "read", "sleep", "wait", "torch.distributed collective", "DataLoader wait",
)
"""Every reason `wait_reason` can give: a stable vocabulary the UI and the phase verdicts match on."""

CHILD_WAITS = frozenset({
    "process join/wait", "pool result wait", "future result", "DataLoader wait", "queue.get", "connection recv",
    "select/poll", "condition wait", "wait",
})
"""Waits that a child process can end (a result, a batch, its exit): with busy children they are progress."""
CHILDREN_MOVING = 0.05
"""Descendants using more than this share of one core over the wait make progress for whoever waits on them."""
CHILDREN_FLOOR_S = 0.002

CHAIN_DEPTH = 8
"""How many frames below the top a run of library wait frames may reach."""

# (path suffix, method names) -> reason. Names are matched on the last part of
# py-spy's qualified name ("Condition.wait" -> "wait"), files on their ending
# so that any install prefix (venv, pyenv, conda) matches.
_LIBRARY_WAITS: list[tuple[str, frozenset[str] | None, str]] = [
    ("threading.py", frozenset({"_wait_for_tstate_lock", "join"}), "thread join"),
    ("threading.py", frozenset({"wait", "wait_for", "_wait"}), "condition wait"),
    ("threading.py", frozenset({"acquire", "__enter__"}), "lock acquire"),
    ("queue.py", frozenset({"get"}), "queue.get"),
    ("queue.py", frozenset({"put"}), "queue.put"),
    ("queue.py", frozenset({"join"}), "queue join"),
    ("multiprocessing/queues.py", frozenset({"get"}), "queue.get"),
    ("multiprocessing/queues.py", frozenset({"put"}), "queue.put"),
    ("multiprocessing/queues.py", frozenset({"join"}), "queue join"),
    ("multiprocessing/connection.py",
     frozenset({"recv", "recv_bytes", "recv_bytes_into", "_recv_bytes", "_recv", "accept"}), "connection recv"),
    ("multiprocessing/connection.py", frozenset({"poll", "_poll", "wait", "select"}), "select/poll"),
    ("multiprocessing/popen_fork.py", frozenset({"poll", "wait"}), "process join/wait"),
    ("multiprocessing/popen_spawn_posix.py", frozenset({"poll", "wait"}), "process join/wait"),
    ("multiprocessing/popen_forkserver.py", frozenset({"poll", "wait"}), "process join/wait"),
    ("multiprocessing/process.py", frozenset({"join"}), "process join/wait"),
    ("multiprocessing/pool.py", frozenset({"get", "wait", "next", "map", "starmap", "apply"}), "pool result wait"),
    ("multiprocessing/pool.py", frozenset({"join"}), "process join/wait"),
    ("multiprocessing/synchronize.py", frozenset({"acquire", "__enter__"}), "lock acquire"),
    ("multiprocessing/synchronize.py", frozenset({"wait", "wait_for"}), "condition wait"),
    ("subprocess.py", frozenset({"wait", "_wait", "_try_wait", "communicate", "_communicate", "call", "run"}),
     "process join/wait"),
    ("selectors.py", frozenset({"select"}), "select/poll"),
    ("socket.py", frozenset({"accept", "readinto", "recv_into", "create_connection"}), "socket recv"),
    ("ssl.py", frozenset({"read", "recv", "recv_into", "do_handshake"}), "socket recv"),
    ("concurrent/futures/_base.py",
     frozenset({"result", "exception", "wait", "as_completed", "result_iterator", "_result_or_cancel"}), "future result"),
    ("concurrent/futures/thread.py", frozenset({"shutdown"}), "thread join"),
    ("concurrent/futures/process.py", frozenset({"shutdown"}), "process join/wait"),
    ("torch/distributed/distributed_c10d.py", None, "torch.distributed collective"),
    ("torch/distributed/c10d_logger.py", None, "torch.distributed collective"),
    ("torch/distributed/_functional_collectives.py", None, "torch.distributed collective"),
    ("torch/utils/data/dataloader.py", frozenset({"_try_get_data", "_get_data"}), "DataLoader wait"),
]

# Native function names (py-spy --native) -> reason. Substrings, tried in order.
_NATIVE_WAITS: list[tuple[tuple[str, ...], str]] = [
    (("take_gil", "drop_gil"), ""),  # waiting for the GIL is contention, not a wait on something
    (("acquire_lock", "rlock_acquire", "acquire_timed", "semlock_acquire"), "lock acquire"),
    (("_queue_SimpleQueue_get",), "queue.get"),
    (("time_sleep", "pysleep", "nanosleep"), "sleep"),
    (("os_waitpid", "os_wait", "waitpid", "wait4"), "process join/wait"),
    (("select_select", "select_poll", "select_epoll", "epoll_wait", "poll_poll", "__poll", "ppoll", "pselect"),
     "select/poll"),
    (("sock_recv", "sock_accept", "__libc_recv", "recvfrom", "recvmsg"), "socket recv"),
    (("c10d", "ProcessGroup", "nccl", "gloo"), "torch.distributed collective"),
]

# The top Python line when the wait itself is C: first match wins.
_LINE_WAITS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\.acquire\("), "lock acquire"),
    (re.compile(r"\bsleep\("), "sleep"),
    (re.compile(r"\b(waitpid|wait3|wait4|waitid)\(|\bos\.wait\("), "process join/wait"),
    (re.compile(r"\bselect\(|\.poll\(|\bepoll\b|\.control\("), "select/poll"),
    (re.compile(r"\.(recv|recv_into|recvfrom|recvfrom_into|recvmsg|accept)\("), "socket recv"),
    (re.compile(r"\.get\("), "queue.get"),
    (re.compile(r"\.join\("), "thread join"),
    (re.compile(r"\.wait\("), "wait"),
    (re.compile(r"\.read(line|lines|into)?\(|\binput\("), "read"),
]
_WITH = re.compile(r"^\s*(async\s+)?with\s+(?P<target>.+?)\s*:")
_LOCKISH = re.compile(r"lock|mutex|sem|cond|cv\b|_cv|guard|latch|barrier", re.IGNORECASE)
_NATIVE_FILE = re.compile(r"\.so(\.\d+)*$|\.dylib$|\.dll$|\.pyd$")


@dataclass(frozen=True)
class Wait:
    """What a thread waits for, and the frame it waits in (the caller of the waiting library code)."""

    reason: str
    frame: Frame


@dataclass(frozen=True)
class Verdict:
    """One thread judged over a watch: stuck or not, and on what."""

    stuck: bool
    wait_reason: str | None
    wait_frame: Frame | None
    unchanged_s: float
    waiting_on_children: bool = False
    """Its wait is one children end, and they used CPU meanwhile: waiting on workers that make progress."""


def is_native(frame: Frame) -> bool:
    """A C/C++ frame py-spy --native added: from a shared library, never with a line."""
    _function, file, line = frame
    return bool(_NATIVE_FILE.search(file)) or (line <= 0 and not file.endswith(".py"))


def find_wait(frames: list[Frame], source_line: str | None = None, active: bool | None = None) -> Wait | None:
    """The wait at the top of a root-first stack, or None when the top is not a wait.

    `source_line` is the text of the top Python frame's line; `active` is
    whether the thread runs (None when unknown): the source line is read
    only for a thread that does not run, and a bare `with x:` line counts as
    a lock wait only when it is known not to.
    """
    # The Python frames at the top, as many as step 1 may read (a stack is 20-40 frames deep, and
    # this runs for every new stack the model meets).
    python = []
    for i in range(len(frames) - 1, -1, -1):
        if not is_native(frames[i]):
            python.append(i)
            if len(python) > CHAIN_DEPTH:
                break
    python.reverse()
    if not python:
        native = _native_wait(frames, -1, None)
        return native if native and native.reason else None
    top = python[-1]

    # 1. A run of library wait frames at the top: its outermost names the wait.
    reason, outermost = None, None
    for depth, i in enumerate(reversed(python)):
        if depth >= CHAIN_DEPTH:
            break
        found = _library_wait(frames[i])
        if found is None:
            break
        reason, outermost = found, i
    if reason is not None:
        below = python.index(outermost)
        caller = frames[python[below - 1]] if below > 0 else frames[outermost]
        return Wait(reason, caller)

    # 2. Native frames above the top Python frame say what the C call does.
    native = _native_wait(frames, top, frames[top])
    if native is not None:
        return native if native.reason else None

    # 3. The top Python line calls a C function that waits.
    reason = _line_wait(source_line, active)
    return Wait(reason, frames[top]) if reason else None


def wait_reason(frames: list[Frame], source_line: str | None = None, active: bool | None = None) -> str | None:
    """A short human reason ("lock acquire", "queue.get", "sleep"...) or None: see `find_wait`."""
    found = find_wait(frames, source_line, active)
    return found.reason if found else None


def is_stuck(unchanged_whole_watch: bool, reason: str | None, active: bool) -> bool:
    """Stuck: the stack did not move during the whole watch, its top is a wait, and the thread never ran."""
    return unchanged_whole_watch and reason is not None and not active


def children_move(reason: str | None, children_cpu_s: float | None, span_s: float) -> bool:
    """The wait is one children end (`CHILD_WAITS`) and they used CPU over `span_s`: they make progress."""
    if reason not in CHILD_WAITS or children_cpu_s is None or span_s <= 0:
        return False
    return children_cpu_s > max(CHILDREN_FLOOR_S, CHILDREN_MOVING * span_s)


def judge(
    frames: list[Frame],
    source_line: str | None,
    active: bool,
    unchanged_s: float,
    watch_s: float,
    children_cpu_s: float | None = None,
) -> Verdict:
    """The verdict on a thread whose current stack is `frames`, unchanged for `unchanged_s` of a `watch_s` watch.

    `active` means the thread ran at all during the watch (py-spy saw it
    active, or the kernel counted it CPU time). A watch of 0 s (one dump)
    can never find a thread stuck: one look cannot tell stuck from waiting.
    `children_cpu_s` is what the process's descendants used over the watch
    (None: unknown): busy children make a parent's wait on them progress.
    """
    found = find_wait(frames, source_line, active)
    whole = watch_s > 0 and unchanged_s >= watch_s - 1e-6
    reason = found.reason if found else None
    on_children = children_move(reason, children_cpu_s, watch_s)
    stuck = is_stuck(whole, reason, active) and not on_children
    return Verdict(stuck, reason, found.frame if found else None, unchanged_s, on_children)


def _library_wait(frame: Frame) -> str | None:
    function, file, _line = frame
    path = file.replace("\\", "/")
    method = function.rsplit(".", 1)[-1]
    for suffix, names, reason in _LIBRARY_WAITS:
        if (path == suffix or path.endswith("/" + suffix)) and (names is None or method in names):
            return reason
    return None


def _native_wait(frames: list[Frame], top: int, at: Frame | None) -> Wait | None:
    """The native frames above index `top` (leaf side); Wait with reason '' for a GIL wait."""
    for function, file, line in reversed(frames[top + 1 :][-CHAIN_DEPTH * 2 :]):
        for needles, reason in _NATIVE_WAITS:
            if any(needle in function for needle in needles):
                return Wait(reason, at or (function, file, line))
    return None


def _line_wait(source_line: str | None, active: bool | None) -> str | None:
    # The weakest evidence: a running thread on a `.get(` line is running it, not waiting in it.
    if not source_line or active:
        return None
    code = source_line.split("#", 1)[0].strip()
    if not code:
        return None
    with_statement = _WITH.match(code)
    if with_statement:
        # A `with` whose __enter__ blocks in C (a Lock, an RLock) shows no frame of its own.
        if _LOCKISH.search(with_statement.group("target")) or active is False:
            return "lock acquire"
        return None
    for pattern, reason in _LINE_WAITS:
        if pattern.search(code):
            return reason
    return None
