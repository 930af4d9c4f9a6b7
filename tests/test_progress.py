"""The progress bar: drawn on a terminal for work past a second, never otherwise."""

from __future__ import annotations

import io

from gradetop.cli import progress as progress_module
from gradetop.cli.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quick_work_draws_nothing():
    out = Terminal()
    with progress_bar("reading x", out) as update:
        update(0.5)
        update(1.0)
    assert out.getvalue() == ""


def test_slow_work_draws_a_bar_and_clears_it(monkeypatch):
    monkeypatch.setattr(progress_module, "DELAY_S", 0.0)
    out = Terminal()
    with progress_bar("reading x", out) as update:
        update(0.5)
    text = out.getvalue()
    assert "gradetop: reading x [" in text and " 50%" in text
    assert text.endswith("\r\x1b[K")


def test_not_a_terminal_draws_nothing(monkeypatch):
    monkeypatch.setattr(progress_module, "DELAY_S", 0.0)
    out = io.StringIO()
    with progress_bar("reading x", out) as update:
        update(0.5)
    assert out.getvalue() == ""
