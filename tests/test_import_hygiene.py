"""The model and collectors never pull in the TUI stack (textual, rich): headless use stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("textual", "rich")

PROBE = r"""
import importlib, json, pkgutil, sys
import gradetop.collectors, gradetop.model
names = []
for package in (gradetop.model, gradetop.collectors):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
        names.append(info.name)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print(json.dumps({"modules": names, "heavy": heavy}))
"""


def _probe(prelude: str = "") -> dict:
    code = f"HEAVY = {HEAVY!r}\n{prelude}\n{PROBE}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_model_and_collectors_do_not_import_textual_or_rich():
    result = _probe()
    modules = set(result["modules"])
    # Discovery really found the modules (guards against a probe that imports nothing).
    for name in ("gradetop.model.profile", "gradetop.model.snapshot", "gradetop.model.report",
                 "gradetop.model.timeline", "gradetop.collectors.monitor", "gradetop.collectors.pyspy"):
        assert name in modules
    assert result["heavy"] == [], f"model/collectors imported {result['heavy']}"


@pytest.mark.parametrize("package", ["gradetop.model", "gradetop.collectors"])
def test_no_module_imports_them(package):
    """Per package, in a fresh interpreter, name the module (if any) whose import brought them in."""
    import importlib
    import pkgutil

    pkg = importlib.import_module(package)
    names = [info.name for info in pkgutil.walk_packages(pkg.__path__, package + ".")]
    assert names
    code = (
        "import importlib, sys, json\n"
        f"bad = {{}}\n"
        f"for name in {names!r}:\n"
        "    before = set(sys.modules)\n"
        "    importlib.import_module(name)\n"
        f"    heavy = sorted(m for m in set(sys.modules) - before if m.split('.')[0] in {HEAVY!r})\n"
        "    if heavy:\n"
        "        bad[name] = heavy\n"
        "print(json.dumps(bad))\n"
    )
    # A heavy import is credited to the first module that triggers it: enough to name a culprit.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {}


def test_probe_detects_a_heavy_import():
    """The check itself works: importing rich first is reported."""
    pytest.importorskip("rich")
    assert "rich" in _probe("import rich")["heavy"]


def test_phases_do_not_import_the_pictures():
    """Pictures are drawn from phases, never the other way round (issue 13)."""
    code = ("import json, sys, gradetop.model.phases\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('gradetop.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "gradetop.model.phases.auto" in loaded
    assert not loaded & {"gradetop.model.views", "gradetop.model.pictures", "gradetop.model.lanes"}, loaded


@pytest.mark.parametrize("command", ["record", "run"])
def test_a_command_starts_before_numpy_psutil_or_the_model_load(command):
    """`gradetop record -- CMD` and `run -- CMD` start CMD (and py-spy on it) with what `launch` needs loaded,
    no more: numpy, psutil and the model cost ~0.1 s that every run would wait for (collectors.launch)."""
    module = {"record": "gradetop.cli.record", "run": "gradetop.cli.live"}[command]
    code = (f"import sys, {module}, gradetop.collectors.launch\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'psutil', 'textual')\n"
            "             or m.startswith(('gradetop.model.profile', 'gradetop.collectors.session'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"{module} loads {out.stdout.strip()} before the command starts"
