"""Where a training loop's time went: waiting for input, forward, backward, optimizer, evaluation,
checkpointing, logging, imports, and the Python in between.

Each sample of the phase's thread is put in one part by its stack, the
outermost matching frame deciding (an evaluation pass inside the epoch is
evaluation, not forward); seconds are the phase's wall time in proportion
to its samples. Pure: must never read files, nor import textual or rich.
"""

from __future__ import annotations

import fnmatch

import numpy as np

from gradetop.model.phases.naming import UserCode, is_import
from gradetop.model.stacks import Frame, StackTable

INPUT = "waiting for input"
FORWARD = "forward"
BACKWARD = "backward"
OPTIMIZER = "optimizer"
EVALUATION = "evaluation"
CHECKPOINT = "checkpointing"
LOGGING = "logging"
IMPORTS = "imports"
OVERHEAD = "Python overhead"
PARTS = (INPUT, FORWARD, BACKWARD, OPTIMIZER, EVALUATION, CHECKPOINT, LOGGING, IMPORTS, OVERHEAD)

TRAINING_SHARE = 0.3
"""A phase is training-like when input, forward, backward and optimizer hold this share of it, with some
backward or optimizer in it (a pure inference pass has neither)."""

_LIBRARY: list[tuple[str, str, str]] = [
    (INPUT, "*DataLoaderIter.__next__", "*/torch/utils/data/dataloader.py"),
    (INPUT, "*DataLoaderIter.__init__", "*/torch/utils/data/dataloader.py"),
    (INPUT, "DataLoader.__iter__", "*/torch/utils/data/dataloader.py"),
    (EVALUATION, "Trainer.validate", "*lightning*"),
    (EVALUATION, "_EvaluationLoop.run", "*lightning*"),
    (EVALUATION, "Trainer.evaluate", "*/transformers/trainer.py"),
    (CHECKPOINT, "save", "*/torch/serialization.py"),
    (CHECKPOINT, "*save_checkpoint*", "*"),
    (BACKWARD, "*backward", "*/torch/_tensor.py"),
    (BACKWARD, "backward", "*/torch/autograd/__init__.py"),
    (BACKWARD, "grad", "*/torch/autograd/__init__.py"),
    (OPTIMIZER, "*", "*/torch/optim/*"),
    (FORWARD, "Module._call_impl", "*/torch/nn/modules/module.py"),
    (FORWARD, "Module._wrapped_call_impl", "*/torch/nn/modules/module.py"),
    (LOGGING, "*", "*/logging/__init__.py"),
    (LOGGING, "*", "*/wandb/*"),
    (LOGGING, "*", "*/tensorboard/*"),
    (LOGGING, "*", "*/mlflow/*"),
    (LOGGING, "*", "*/tqdm/*"),
]
_USER: list[tuple[str, str]] = [
    (EVALUATION, "*eval*"), (EVALUATION, "*valid*"), (CHECKPOINT, "*checkpoint*"), (LOGGING, "*log_*"),
    (LOGGING, "log"), (FORWARD, "forward"), (BACKWARD, "backward"), (OPTIMIZER, "step"),
]


def part_of_frame(frame: Frame, user: UserCode) -> str | None:
    if is_import(frame):
        return IMPORTS
    if user(frame.file):
        name = frame.function.rsplit(".", 1)[-1].lower()
        for part, pattern in _USER:
            if fnmatch.fnmatchcase(name, pattern):
                return part
        return None
    for part, function, file in _LIBRARY:
        if fnmatch.fnmatchcase(frame.function, function) and fnmatch.fnmatchcase(frame.file, file):
            return part
    return None


class Parts:
    """Per trie node, the part its samples count in (cached)."""

    def __init__(self, stacks: StackTable, user: UserCode | None = None) -> None:
        self.stacks = stacks
        self.user = user or UserCode()
        self._of_node: dict[int, int] = {}

    def of(self, node: int, skip_outer: int = 0) -> int:
        key = node * 64 + min(skip_outer, 63)
        hit = self._of_node.get(key)
        if hit is None:
            hit = PARTS.index(OVERHEAD)
            frames = self.stacks.frames_of(node)[skip_outer:]
            if any(is_import(f) for f in frames):
                hit = PARTS.index(IMPORTS)  # a lazy import inside an optimizer's __init__ is an import
            else:
                for frame in frames:
                    part = part_of_frame(frame, self.user)
                    if part is not None:
                        hit = PARTS.index(part)
                        break
            self._of_node[key] = hit
        return hit

    def breakdown(self, nodes: np.ndarray, weights: np.ndarray, seconds: float, skip_outer: int = 0) -> dict[str, float]:
        """{part: seconds} of `seconds`, split as the samples' weights are; parts with none left out."""
        total = float(weights.sum())
        if len(nodes) == 0 or total <= 0:
            return {}
        unique, inverse = np.unique(nodes, return_inverse=True)
        codes = np.array([self.of(int(n), skip_outer) for n in unique], dtype=np.int64)[inverse]
        sums = np.bincount(codes, weights=weights, minlength=len(PARTS))
        return {PARTS[i]: float(sums[i] / total * seconds) for i in range(len(PARTS)) if sums[i] > 0}


def training_like(parts: dict[str, float]) -> bool:
    total = sum(parts.values())
    if total <= 0:
        return False
    core = sum(parts.get(p, 0.0) for p in (INPUT, FORWARD, BACKWARD, OPTIMIZER))
    learns = parts.get(BACKWARD, 0.0) + parts.get(OPTIMIZER, 0.0) > 0
    return core >= TRAINING_SHARE * total and (learns or (parts.get(INPUT, 0.0) > 0 and parts.get(FORWARD, 0.0) > 0))


def headline(name: str, parts: dict[str, float], input_words: str = "waiting for input") -> str:
    """'train_epoch: 31% waiting for DataLoader workers, 44% forward+backward, 9% optimizer' (of the phase)."""
    total = sum(parts.values())
    if total <= 0:
        return ""
    share = {k: v / total for k, v in parts.items()}
    words = [f"{share.get(INPUT, 0.0):.0%} {input_words}",
             f"{share.get(FORWARD, 0.0) + share.get(BACKWARD, 0.0):.0%} forward+backward",
             f"{share.get(OPTIMIZER, 0.0):.0%} optimizer"]
    for part in (EVALUATION, CHECKPOINT, LOGGING, IMPORTS, OVERHEAD):
        if share.get(part, 0.0) >= 0.05:
            words.append(f"{share[part]:.0%} {part}")
    return f"{name}: " + ", ".join(words)


def what_if(name: str, parts: dict[str, float], duration: float) -> str:
    """What removing the largest avoidable part would buy, in the phase's own seconds."""
    wait = parts.get(INPUT, 0.0)
    if duration <= 0 or wait < 0.1 * duration:
        return ""
    left = duration - wait
    return f"if input were free, {name} would take ~{left:.{1 if left >= 1 else 2}f} s instead of {duration:.1f} s"
