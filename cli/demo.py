"""`gradetop demo`: the embedded demo workflow, monitored."""

from __future__ import annotations

import sys

from gradetop.cli import record as record_cmd
from gradetop.cli.errors import UserError, say
from gradetop.cli.live import demo_live, interactive
from gradetop.collectors.session import Session, TargetError
from gradetop.model.report import build_report, format_report


def add_arguments(parser) -> None:
    parser.add_argument("--scale", type=record_cmd.positive_float, default=1.0, metavar="X",
                        help="work multiplier of the demo (1: about 20-40 s; 0.1: a few seconds)")
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="data-loading processes (default 2)")
    parser.add_argument("--headless", action="store_true",
                        help="record and print a report instead of the live UI (the default without a terminal)")
    record_cmd.add_output_arguments(parser)
    record_cmd.add_sampling_arguments(parser)


def demo_command(args) -> list[str]:
    return [sys.executable, "-m", "gradetop.demo", "--scale", str(args.scale), "--workers", str(args.workers)]


def run(args) -> int:
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1: {args.workers}", code=2)
    command = demo_command(args)
    if interactive() and not args.headless:
        return demo_live(args, command)
    options = record_cmd.session_options(args)
    try:
        session = Session.spawn(command, options, mode="demo")
    except TargetError as exc:
        raise UserError(str(exc)) from None
    say(f"running the demo workflow (pid {session.target.pid}); Ctrl-C stops it")
    code = record_cmd.record(session, None)
    print(format_report(build_report(session.profile)))
    return code
