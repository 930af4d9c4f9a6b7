"""`gradetop export`: a snapshot (or an imported py-spy file) in another tool's format."""

from __future__ import annotations

import os
import sys

from gradetop.cli.errors import UserError, say
from gradetop.cli.report import load_or_fail
from gradetop.model.export import FORMATS, NEEDS_PHASES, render
from gradetop.model.export.selection import SelectionError, select


def add_arguments(parser) -> None:
    parser.add_argument("file", metavar="FILE", help="a snapshot, or a py-spy raw / speedscope file")
    parser.add_argument("-f", "--format", required=True, choices=sorted(FORMATS), metavar="FORMAT",
                        help=f"one of {', '.join(sorted(FORMATS))}")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="where to write ('-' for stdout; default FILE with the format's suffix)")
    parser.add_argument("--pid", type=int, metavar="P", help="only this process")
    parser.add_argument("--thread", metavar="T", help="only this thread (a tid or a thread name)")
    parser.add_argument("--from", dest="t_from", type=float, metavar="S", help="from S seconds after the run's start")
    parser.add_argument("--to", dest="t_to", type=float, metavar="S", help="up to S seconds after the run's start")
    parser.add_argument("--phase", metavar="NAME", help="only samples inside this phase (its name or path)")


def default_output(path: str, fmt: str) -> str:
    stem, ext = os.path.splitext(path)
    return (stem if ext in (".gtop", ".txt", ".json") else path) + FORMATS[fmt][1]


def run(args) -> int:
    profile = load_or_fail(args.file)
    try:
        selection = select(profile, pid=args.pid, thread=args.thread, t_from=args.t_from, t_to=args.t_to,
                           phase=args.phase, with_phases=args.format in NEEDS_PHASES)
    except SelectionError as exc:
        raise UserError(f"{args.file}: {exc}") from None
    if selection.samples == 0:
        total = profile.timeline.samples
        raise UserError(f"{args.file}: no samples in that selection (the file has {total} over "
                        f"{profile.duration_s:.1f} s)")
    data = render(args.format, profile, selection)
    out = args.output or default_output(args.file, args.format)
    if out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    if os.path.abspath(out) == os.path.abspath(args.file):
        raise UserError(f"{out} is the input file: name another with -o")
    try:
        with open(out, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    say(f"wrote {out} ({args.format}, {selection.samples} samples)")
    return 0
