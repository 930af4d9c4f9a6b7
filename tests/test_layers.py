"""The layers, enforced: each imports only those below it.

    cli        wires everything
    tui        draws; reads the model, reaches a running session only through model.source.Source
    collectors produce records; import the model
    model      imports nothing of gradetop above it (nor textual, rich, psutil, pynvml, subprocess)
    gradetop   the public API (phase markers, version): never textual

Checked on the source (every import statement, also those inside functions),
so that a new violation fails here with its file and line, as an
import-linter contract would.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"model": "gradetop.model", "collectors": "gradetop.collectors", "tui": "gradetop.tui", "cli": "gradetop.cli"}

FORBIDDEN = {
    "model": ("gradetop.collectors", "gradetop.tui", "gradetop.cli", "textual", "rich", "psutil", "pynvml",
              "subprocess"),
    "collectors": ("gradetop.tui", "gradetop.cli", "textual", "rich"),
    "tui": ("gradetop.collectors", "gradetop.cli", "psutil", "pynvml", "subprocess"),
    "gradetop": ("gradetop.collectors", "gradetop.tui", "gradetop.cli", "textual", "rich"),
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from gradetop import cli` names a layer too
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def violations(layer: str) -> list[str]:
    folder = ROOT / layer
    bad = []
    for path in sorted(folder.rglob("*.py")):
        if path.name == "__main__.py":
            continue  # `python -m gradetop` is an entry point: it wires, as cli does
        for line, name in imports_of(path):
            for forbidden in FORBIDDEN[layer]:
                if name == forbidden or name.startswith(forbidden + "."):
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return bad


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_what_lies_below(layer):
    assert (ROOT / layer).is_dir()
    assert violations(layer) == []


def test_the_check_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from gradetop.collectors.session import Session\n")
    assert imports_of(bad) == [(2, "gradetop.collectors.session"), (2, "gradetop.collectors.session.Session")]


def test_public_api_never_pulls_in_textual():
    code = "import sys, gradetop; print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
