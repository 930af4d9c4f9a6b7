"""Subcommands whose issues have not landed yet: present in --help, honest when called."""

from __future__ import annotations

from gradetop.cli.errors import UserError


def not_yet(name: str):
    def run(args) -> int:
        raise UserError(f"'gradetop {name}' is not available yet; use 'gradetop record' and 'gradetop report'", code=2)

    return run
