"""Errors a user sees: one line on stderr and an exit status, never a traceback."""

from __future__ import annotations

import sys

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
"""Recorded, but without stacks (not Python, ptrace denied): the snapshot holds resources only."""


class UserError(Exception):
    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def say(message: str) -> None:
    """A status or error line for the user, on stderr so that stdout stays data."""
    print(f"gradetop: {message}", file=sys.stderr, flush=True)
