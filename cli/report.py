"""`gradetop report`: the summary of a snapshot, as text or JSON."""

from __future__ import annotations

import json
import os
import sys
from argparse import ArgumentTypeError

from gradetop.cli.errors import UserError, say
from gradetop.cli.progress import progress_bar
from gradetop.cli.record import add_user_code_argument
from gradetop.model.report import build_report, format_report
from gradetop.model.rules import RulesError, load_rules
from gradetop.model.imports import load_any
from gradetop.model.snapshot import SnapshotError


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ArgumentTypeError(f"not a whole number: {text}") from None
    if value < 0:
        raise ArgumentTypeError(f"must be 0 or more: {text}")
    return value


count.__name__ = "count"


def add_arguments(parser) -> None:
    parser.add_argument("file", metavar="FILE",
                        help="a snapshot written by gradetop record / run / demo, or a py-spy raw / speedscope file")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--top", type=count, default=20, metavar="N", help="functions listed in the text report (default 20)")
    parser.add_argument("--phases", metavar="RULES.toml", help="phase rules to apply (default: those recorded with the file)")
    add_user_code_argument(parser)
    idle = parser.add_mutually_exclusive_group()
    idle.add_argument("--idle", dest="idle", action="store_true", default=None, help="count idle samples in function times")
    idle.add_argument("--no-idle", dest="idle", action="store_false", help="count only active samples")


def load_or_fail(path: str):
    """A snapshot, or a py-spy raw / speedscope file read into a Profile. Damage it survived is a warning line
    each; a file it cannot read is one line and exit 1."""
    try:
        with progress_bar(f"reading {os.path.basename(path)}") as progress:
            profile = load_any(path, progress=progress)
    except SnapshotError as exc:
        raise UserError(str(exc)) from None
    for warning in profile.warnings:
        say(f"warning: {warning}")
    return profile


def run(args) -> int:
    profile = load_or_fail(args.file)
    rules = None
    if args.phases:
        try:
            rules = load_rules(args.phases)
        except RulesError as exc:
            raise UserError(str(exc)) from None
    if args.user_code:
        profile.meta.options["user_code"] = [os.path.abspath(p) for p in args.user_code]
    report = build_report(profile, include_idle=args.idle, rules=rules)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_report(report, top=args.top))
    return 0
