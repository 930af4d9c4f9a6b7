"""Names a user would give a stretch of stack: the user's own functions, `import sklearn`, `fit (SVC)`.

Raw stacks name the runtime: `_run_code`, `_find_and_load`,
`BaseProcess._bootstrap`, `Queue.get`. Per trie node this module keeps a
*logical* stack of labels instead, read root first:

- process and thread entry points (runpy, multiprocessing spawn / fork /
  forkserver and pools, loky, concurrent.futures workers, the torch
  DataLoader worker loop, threading) are skipped, and a forked worker's
  inherited parent frames above its entry point are dropped: a worker's
  stack starts at its task;
- an import (`_find_and_load` ... the imported module's `<module>`)
  collapses into one label, `import <top-level package>`, and nothing
  below it counts: what an import runs is the import;
- the user's own frames (not stdlib, not site-packages, not frozen; or
  under `--user-code PATH`) each give a label;
- a run of library frames called from user code gives one label: the first
  frame a known library maps to a phase name (`fit (SVC)`, `backward`,
  `optimizer step`), else the run's entry frame (`Pool.map`).

Pure and cached per node. Must never look at time, threads or samples, nor
depend on textual or rich.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

import numpy as np

from gradetop.model.rules import module_of
from gradetop.model.stacks import ROOT, Frame, StackTable

_SITE = re.compile(r"/(?:site|dist)-packages/")
_STDLIB = re.compile(r"/lib/python3(?:\.\d+)?/")
_NATIVE = re.compile(r"\.so(\.\d+)*$|\.dylib$|\.dll$|\.pyd$")

IMPORT_FRAMES = frozenset({"_find_and_load", "_find_and_load_unlocked", "_gcd_import", "_handle_fromlist",
                           "import_module", "_load_unlocked", "_load", "exec_module", "_call_with_frames_removed",
                           "_load_backward_compatible", "module_from_spec"})
"""importlib's own frames (`<frozen importlib._bootstrap>`, importlib/__init__.py)."""

# Where a process or thread starts running its task: everything above is how it got there.
_ENTRIES: list[tuple[str, frozenset[str] | None]] = [
    ("multiprocessing/process.py", frozenset({"BaseProcess._bootstrap", "_bootstrap"})),
    ("multiprocessing/spawn.py", frozenset({"spawn_main"})),
    ("multiprocessing/forkserver.py", frozenset({"main"})),
    ("threading.py", frozenset({"Thread._bootstrap", "_bootstrap"})),
]
# Frames that only carry a task to its code (skipped, never a label).
_PLUMBING: list[tuple[str, frozenset[str] | None]] = [
    ("runpy.py", None), ("<frozen runpy>", None),
    ("multiprocessing/process.py", None), ("multiprocessing/spawn.py", None),
    ("multiprocessing/forkserver.py", None), ("multiprocessing/popen_fork.py", frozenset({"Popen._launch"})),
    ("multiprocessing/popen_forkserver.py", frozenset({"Popen._launch"})),
    ("multiprocessing/pool.py", frozenset({"worker", "mapstar", "starmapstar"})),
    ("multiprocessing/util.py", frozenset({"_run_finalizers", "_exit_function"})),
    ("concurrent/futures/process.py", frozenset({"_process_worker"})),
    ("concurrent/futures/thread.py", frozenset({"_worker", "_WorkItem.run"})),
    ("threading.py", frozenset({"Thread._bootstrap", "Thread._bootstrap_inner", "Thread.run", "_bootstrap",
                                "_bootstrap_inner", "run"})),
    ("joblib/externals/loky/*", None),
    ("joblib/_utils.py", None),
    ("joblib/parallel.py", frozenset({"BatchedCalls.__call__", "<listcomp>", "BatchedCalls.<listcomp>"})),
    ("joblib/_parallel_backends.py", frozenset({"SafeFunction.__call__", "__call__"})),
    ("torch/utils/data/_utils/worker.py", frozenset({"_worker_loop"})),
    ("torch/utils/data/_utils/fetch.py", None),
    ("gradetop/phases.py", None),
]
# A worker's first frames after its entry that wait for its next task.
_TASK_WAITS: list[tuple[str, frozenset[str] | None]] = [
    ("multiprocessing/queues.py", frozenset({"Queue.get", "SimpleQueue.get", "get"})),
    ("multiprocessing/connection.py", None),
    ("queue.py", frozenset({"Queue.get", "get"})),
]


@dataclass(frozen=True)
class Known:
    """A library function with a name users know: `{cls}` in the name is the frame's class."""

    name: str
    function: str
    file: str


KNOWN: tuple[Known, ...] = (
    Known("exit (joining threads)", "_shutdown", "*threading.py"),
    # PyTorch
    Known("waiting for DataLoader", "*DataLoaderIter.__next__", "*/torch/utils/data/dataloader.py"),
    Known("backward", "*backward", "*/torch/_tensor.py"),
    Known("backward", "backward", "*/torch/autograd/__init__.py"),
    Known("optimizer step", "*.step", "*/torch/optim/*"),
    Known("optimizer step", "*", "*/torch/optim/optimizer.py"),
    Known("zero_grad", "*zero_grad", "*/torch/*"),
    Known("forward", "Module._call_impl", "*/torch/nn/modules/module.py"),
    Known("forward", "Module._wrapped_call_impl", "*/torch/nn/modules/module.py"),
    Known("checkpoint", "save", "*/torch/serialization.py"),
    Known("load checkpoint", "load", "*/torch/serialization.py"),
    # Lightning, Hugging Face
    Known("train", "Trainer.fit", "*lightning*/trainer/trainer.py"),
    Known("evaluate", "Trainer.validate", "*lightning*/trainer/trainer.py"),
    Known("train", "Trainer.train", "*/transformers/trainer.py"),
    Known("evaluate", "Trainer.evaluate", "*/transformers/trainer.py"),
    Known("predict", "Trainer.predict", "*/transformers/trainer.py"),
    # scikit-learn
    Known("fit ({cls})", "*.fit", "*/sklearn/*"),
    Known("fit ({cls})", "*.partial_fit", "*/sklearn/*"),
    Known("transform ({cls})", "*.fit_transform", "*/sklearn/*"),
    Known("transform ({cls})", "*.transform", "*/sklearn/*"),
    Known("predict ({cls})", "*.predict*", "*/sklearn/*"),
    Known("score ({cls})", "*.score", "*/sklearn/*"),
    # numpy / pandas IO
    Known("read data ({fn})", "read_*", "*/pandas/io/*"),
    Known("read data (np.{fn})", "load", "*/numpy/lib/*npyio*"),
    Known("read data (np.{fn})", "loadtxt", "*/numpy/*"),
    Known("read data (np.{fn})", "genfromtxt", "*/numpy/*"),
    Known("read data (np.load)", "NpzFile.__getitem__", "*/numpy/*"),
    Known("write data ({fn})", "to_*", "*/pandas/*"),
    Known("write data (np.{fn})", "save*", "*/numpy/lib/*npyio*"),
)


def _match(frame: Frame, table: list[tuple[str, frozenset[str] | None]]) -> bool:
    path = frame.file.replace("\\", "/")
    for suffix, names in table:
        if "*" in suffix:
            hit = fnmatch.fnmatchcase(path, "*/" + suffix) or fnmatch.fnmatchcase(path, suffix)
        else:
            hit = path == suffix or path.endswith("/" + suffix)
        if hit and (names is None or frame.function in names or frame.function.rsplit(".", 1)[-1] in names):
            return True
    return False


def is_import(frame: Frame) -> bool:
    return frame.function in IMPORT_FRAMES and (frame.file.startswith("<frozen importlib")
                                               or frame.file.endswith("importlib/__init__.py")
                                               or frame.file.endswith("importlib/_bootstrap.py")
                                               or frame.file.endswith("importlib/_bootstrap_external.py"))


class UserCode:
    """Which files are the user's own: not the standard library, site-packages or frozen modules, or
    (when given, `--user-code PATH`) only those under the given folders."""

    def __init__(self, paths: tuple[str, ...] | list[str] = ()) -> None:
        self.paths = tuple(p.rstrip("/") + "/" for p in paths if p)
        self._cache: dict[str, bool] = {}

    def __call__(self, file: str) -> bool:
        hit = self._cache.get(file)
        if hit is None:
            hit = self._cache[file] = self._decide(file)
        return hit

    def _decide(self, file: str) -> bool:
        if not file or file.startswith("<") or _NATIVE.search(file):
            return False  # frozen modules, `python -c`, shared libraries (--native frames)
        if self.paths:
            return any(file.startswith(p) for p in self.paths)
        if _SITE.search(file) or _STDLIB.search(file):
            return False
        return True


def top_package(file: str) -> str:
    """`sklearn` for .../site-packages/sklearn/svm/_base.py; the module itself for a user's file."""
    if file.startswith("<frozen "):
        return file[len("<frozen "):].rstrip(">").split(".")[0]
    return module_of(file).split(".")[0] or file


def known_label(frame: Frame) -> str | None:
    """The name users know a library frame by, or None."""
    for k in KNOWN:
        if fnmatch.fnmatchcase(frame.function, k.function) and fnmatch.fnmatchcase(frame.file, k.file):
            parts = frame.function.rsplit(".", 1)
            cls = parts[0] if len(parts) == 2 else ""
            return k.name.format(cls=cls or "?", fn=parts[-1])
    return None


@dataclass(frozen=True)
class _State:
    labels: tuple[str, ...]
    mode: str
    """'start' (just entered), 'user', 'lib' (a library run, named by its entry), 'known' (a library run
    named by a known frame), 'importing' (in importlib, module not known yet), 'import' (closed)."""
    importing_from: str = ""
    """For an import: the frames it was reached through ('task' when unpickling a received task)."""


class Namer:
    """Logical stacks (labels, root first) of trie nodes; labels are interned to ids for numpy work."""

    def __init__(self, stacks: StackTable, user_code: UserCode | None = None) -> None:
        self.stacks = stacks
        self.user = user_code or UserCode()
        self._states: dict[int, _State] = {ROOT: _State((), "start")}
        self.names: list[str] = []
        self._ids: dict[str, int] = {}
        self._frame_kind: dict[int, str] = {}

    # ---- one node --------------------------------------------------------------------------------

    def labels(self, node: int) -> tuple[str, ...]:
        return self._state(node).labels

    def import_context(self, node: int) -> str:
        """'task' when the node is an import reached while unpickling a task a worker received."""
        state = self._state(node)
        return state.importing_from if state.mode in ("import", "importing") else ""

    def is_import(self, node: int) -> bool:
        return self._state(node).mode in ("import", "importing")

    def _state(self, node: int) -> _State:
        state = self._states.get(node)
        if state is not None:
            return state
        parent = self.stacks.parent.view()
        frame_col = self.stacks.frame.view()
        chain = []
        while node not in self._states:
            chain.append(node)
            node = int(parent[node])
        state = self._states[node]
        for n in reversed(chain):
            state = self._step(state, int(frame_col[n]))
            self._states[n] = state
        return state

    def _kind(self, fid: int) -> str:
        kind = self._frame_kind.get(fid)
        if kind is None:
            frame = self.stacks.frames.frames[fid]
            if _match(frame, _ENTRIES):
                kind = "entry"
            elif is_import(frame):
                kind = "import"
            elif _match(frame, _PLUMBING):
                kind = "plumbing"
            elif self.user(frame.file):
                kind = "user"
            else:
                kind = "lib"
            self._frame_kind[fid] = kind
        return kind

    def _step(self, s: _State, fid: int) -> _State:
        frame = self.stacks.frames.frames[fid]
        kind = self._kind(fid)
        if kind == "entry":
            return _State((), "start")
        if s.mode == "import":
            return s
        if kind == "import":
            if s.mode == "importing":
                return s
            # An import reached from a library run replaces that run's label: the library call was
            # an import (a lazy one inside torch, or unpickling a task that names sklearn).
            keep = s.labels[:-1] if s.mode in ("lib", "known") else s.labels
            via = "task" if s.mode in ("lib", "known", "start") and s.importing_from == "task" else ""
            return _State(keep + ("import",), "importing", via)
        if s.mode == "importing":
            if frame.function == "<module>":
                return _State(s.labels[:-1] + (f"import {top_package(frame.file)}",), "import", s.importing_from)
            return s
        if kind == "plumbing" or frame.function == "<module>":
            return s  # a module's top level (run as a script or with -m): its calls name the phases
        if kind == "user":
            if frame.function == "<module>":
                return _State(s.labels, "user")  # a script's top level: its calls name the phases
            return _State(s.labels + (frame.function,), "user")
        # A library frame.
        known = known_label(frame)
        task = s.importing_from
        if s.mode == "start" and _match(frame, _TASK_WAITS):
            return _State(s.labels + ("waiting for work",), "lib", "task")
        if s.mode in ("user", "start"):
            return _State(s.labels + (known or frame.function,), "known" if known else "lib", task)
        if s.mode == "lib" and known:
            return _State(s.labels[:-1] + (known,), "known", task)
        return s

    # ---- many nodes --------------------------------------------------------------------------------

    def label_id(self, name: str) -> int:
        i = self._ids.get(name)
        if i is None:
            i = self._ids[name] = len(self.names)
            self.names.append(name)
        return i

    def labels_at(self, nodes: np.ndarray, level: int) -> np.ndarray:
        """Per node, the id of its logical label at `level` (0 = outermost); -1 where its stack is shallower."""
        unique, inverse = np.unique(nodes, return_inverse=True)
        out = np.full(len(unique), -1, dtype=np.int64)
        for i, node in enumerate(unique):
            labels = self.labels(int(node))
            if len(labels) > level:
                out[i] = self.label_id(labels[level])
        return out[inverse]

    def depth(self, nodes: np.ndarray) -> int:
        """The deepest logical stack among `nodes`."""
        return max((len(self.labels(int(n))) for n in np.unique(nodes)), default=0)
