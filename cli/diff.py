"""`gradetop diff A B`: where the time of run B went compared with run A, per function and per phase."""

from __future__ import annotations

import json
import sys

from gradetop.cli.report import load_or_fail
from gradetop.model.diff import diff, format_diff


def add_arguments(parser) -> None:
    parser.add_argument("a", metavar="A", help="the run to compare against (snapshot, py-spy raw or speedscope)")
    parser.add_argument("b", metavar="B", help="the run compared")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument("--per-second", action="store_true", help="divide each run's seconds by its duration")
    parser.add_argument("--top", type=int, default=20, metavar="N", help="rows listed in the text form (default 20)")
    parser.add_argument("--idle", action="store_true", help="compare wall time, idle included (default: active time)")


def run(args) -> int:
    a, b = load_or_fail(args.a), load_or_fail(args.b)
    result = diff(a, b, per_second=args.per_second, include_idle=args.idle)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_diff(result, top=args.top))
    return 0
