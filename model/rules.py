"""Rules that map stack frames to phases: built in for the libraries ML people use, and the user's own.

A rule names a phase and lists patterns; a pattern matches a frame when all
of its given globs match (function, file, module). A user's TOML file:

    [[phase]]
    name = "load"
    function = "load_*"          # any of function / file / module, globs

    [[phase]]
    name = "train"
    module = "mylib.training*"

User rules come before the built-in ones, so they win on the same frame.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from dataclasses import dataclass

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


class RulesError(Exception):
    """A rules file that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class Pattern:
    function: str | None = None
    file: str | None = None
    module: str | None = None

    def matches(self, function: str, file: str, module: str) -> bool:
        return (
            (self.function is None or fnmatch.fnmatchcase(function, self.function))
            and (self.file is None or fnmatch.fnmatchcase(file, self.file))
            and (self.module is None or fnmatch.fnmatchcase(module, self.module))
        )


@dataclass(frozen=True)
class Rule:
    name: str
    patterns: tuple[Pattern, ...]


def _rule(name: str, *patterns: dict) -> Rule:
    return Rule(name, tuple(Pattern(**p) for p in patterns))


BUILTIN_RULES: tuple[Rule, ...] = (
    # PyTorch
    _rule("data loading",
          {"function": "*DataLoaderIter.__next__"}, {"function": "*DataLoaderIter._next_data"},
          {"function": "_worker_loop", "file": "*/torch/utils/data/_utils/worker.py"}),
    # Functions, not whole files: the module-level code of those files runs while torch is imported,
    # and an optimizer's __init__ may import half of torch lazily (that is an import, not a step).
    _rule("backward", {"function": "*backward", "file": "*/torch/_tensor.py"},
          {"function": "backward", "file": "*/torch/autograd/__init__.py"},
          {"function": "grad", "file": "*/torch/autograd/__init__.py"}),
    _rule("optimizer step", {"function": "*.step", "file": "*/torch/optim/*"},
          {"function": "*wrapper", "file": "*/torch/optim/optimizer.py"},
          {"function": "_use_grad*", "file": "*/torch/optim/optimizer.py"}),
    _rule("forward", {"function": "Module._call_impl", "file": "*/torch/nn/modules/module.py"}),
    _rule("checkpoint", {"function": "save", "file": "*/torch/serialization.py"},
          {"function": "*save_checkpoint*"}, {"function": "Trainer._save_checkpoint"}),
    # PyTorch Lightning
    _rule("train", {"function": "Trainer.fit", "file": "*lightning*/trainer/trainer.py"},
          {"function": "Trainer.train", "file": "*/transformers/trainer.py"}),
    _rule("evaluate", {"function": "Trainer.validate", "file": "*lightning*/trainer/trainer.py"},
          {"function": "_EvaluationLoop.run", "file": "*lightning*"},
          {"function": "Trainer.evaluate", "file": "*/transformers/trainer.py"}),
    _rule("predict", {"function": "Trainer.predict", "file": "*lightning*/trainer/trainer.py"},
          {"function": "Trainer.predict", "file": "*/transformers/trainer.py"}),
    # scikit-learn
    _rule("fit", {"function": "*.fit", "file": "*/sklearn/*"}, {"function": "*.partial_fit", "file": "*/sklearn/*"}),
    _rule("predict", {"function": "*.predict*", "file": "*/sklearn/*"}),
    _rule("transform", {"function": "*.transform", "file": "*/sklearn/*"},
          {"function": "*.fit_transform", "file": "*/sklearn/*"}),
    # numpy / pandas readers
    _rule("read data", {"function": "read_*", "file": "*/pandas/io/*"},
          {"function": "load", "file": "*/numpy/lib/*npyio*"}, {"function": "loadtxt", "file": "*/numpy/*"},
          {"function": "genfromtxt", "file": "*/numpy/*"}, {"function": "NpzFile.__getitem__", "file": "*/numpy/*"}),
    _rule("write data", {"function": "to_*", "file": "*/pandas/*"}, {"function": "save*", "file": "*/numpy/lib/*npyio*"},
          {"function": "_savez", "file": "*/numpy/*"}),
)

_SITE = re.compile(r".*/(?:site|dist)-packages/")


def module_of(file: str) -> str:
    """A dotted module name from a file path, as well as a path can tell."""
    path = _SITE.sub("", file)
    if path == file:
        path = re.sub(r".*/lib/python3\.\d+/", "", path)
        path = path.rsplit("/", 1)[-1] if path == file else path
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def load_rules(path: str) -> tuple[Rule, ...]:
    """Rules from a TOML file (see the module docstring)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise RulesError(f"phase rules file {path}: no such file") from None
    except OSError as exc:
        raise RulesError(f"phase rules file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"phase rules file {path} is not valid TOML: {exc}") from None
    return parse_rules(data, path)


def parse_rules(data: dict, where: str = "rules") -> tuple[Rule, ...]:
    entries = data.get("phase")
    if not isinstance(entries, list) or not entries:
        raise RulesError(f"{where}: expected [[phase]] tables with a name and function / file / module globs")
    by_name: dict[str, list[Pattern]] = {}
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise RulesError(f"{where}: phase {i} has no name")
        fields = {k: entry.get(k) for k in ("function", "file", "module")}
        unknown = set(entry) - {"name", "function", "file", "module"}
        if unknown:
            raise RulesError(f"{where}: phase '{entry['name']}' has unknown keys: {', '.join(sorted(unknown))}")
        if not any(fields.values()):
            raise RulesError(f"{where}: phase '{entry['name']}' needs a function, file or module pattern")
        for key, value in fields.items():
            if value is not None and not isinstance(value, str):
                raise RulesError(f"{where}: phase '{entry['name']}': {key} must be a string glob")
        by_name.setdefault(entry["name"], []).append(Pattern(**fields))
    return tuple(Rule(name, tuple(patterns)) for name, patterns in by_name.items())


def rules_to_data(rules: tuple[Rule, ...]) -> list[dict]:
    """Rules as the [[phase]] entries they were read from (kept in snapshots)."""
    return [
        {"name": rule.name, **{k: v for k, v in vars(p).items() if v is not None}}
        for rule in rules for p in rule.patterns
    ]


def rule_of_frames(frames, rules: tuple[Rule, ...]) -> list[int]:
    """For each frame (model Frame), the index of the first rule it matches, or -1."""
    out = []
    for frame in frames:
        module = module_of(frame.file)
        hit = -1
        for i, rule in enumerate(rules):
            if any(p.matches(frame.function, frame.file, module) for p in rule.patterns):
                hit = i
                break
        out.append(hit)
    return out
