"""`gradetop demo`: the embedded demo workflow, monitored."""

from __future__ import annotations

import os
import sys
import tempfile

from gradetop.cli import record as record_cmd
from gradetop.cli.errors import UserError, say
from gradetop.cli.live import demo_live, interactive
from gradetop.collectors.markers import new_phase_folder
from gradetop.collectors.target import Target, TargetError
from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.report import build_report, format_report
from gradetop.model.snapshot import load
from gradetop.phases import ENV


def add_arguments(parser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE", help="also keep the snapshot here")
    parser.add_argument("--scale", type=record_cmd.positive_float, default=1.0, metavar="X",
                        help="work multiplier of the demo (1: about 20-40 s; 0.1: a few seconds)")
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="data-loading processes (default 2)")
    parser.add_argument("--headless", action="store_true",
                        help="record and print a report instead of the live UI (the default without a terminal)")
    record_cmd.add_sampling_arguments(parser)


def demo_command(args) -> list[str]:
    return [sys.executable, "-m", "gradetop.demo", "--scale", str(args.scale), "--workers", str(args.workers)]


def run(args) -> int:
    command = demo_command(args)
    if interactive() and not args.headless:
        return demo_live(args, command)

    output = args.output or os.path.join(tempfile.gettempdir(), f"gradetop-demo-{os.getpid()}.gtop")
    record_cmd.check_writable(output)
    phases = record_cmd.phase_options(args)
    folder = new_phase_folder()
    try:
        target = Target.spawn(command, env={ENV: folder})
    except TargetError as exc:
        raise UserError(str(exc)) from None
    say(f"running the demo workflow (pid {target.pid}); Ctrl-C stops it")
    profile = Profile(ProfileMeta(rate_hz=args.rate, command=command, target_pid=target.pid, mode="demo",
                                  options={"idle": args.idle, "native": args.native, **phases}))
    code = record_cmd.record(profile, target, record_cmd.stack_options(args), output, None, folder)
    print(format_report(build_report(load(output))))
    return code
