"""`gradetop run`, `attach`, `open` and the live `demo`: the terminal UI on a source."""

from __future__ import annotations

import os
import sys

from gradetop.cli.errors import UserError, say
from gradetop.cli.record import add_sampling_arguments, phase_options, pid_number, stack_options
from gradetop.collectors.target import TargetError, shell_status


def add_run_arguments(parser) -> None:
    add_sampling_arguments(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="where 's' saves the snapshot")
    parser.add_argument("command", nargs="*", metavar="-- CMD ARGS", help="the command to run and watch")


def add_attach_arguments(parser) -> None:
    add_sampling_arguments(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="where 's' saves the snapshot")
    parser.add_argument("pid", nargs="?", type=pid_number, help="process to watch (none: pick from a list)")


def add_open_arguments(parser) -> None:
    parser.add_argument("file", metavar="FILE", help="a snapshot (or a py-spy raw / speedscope file) to browse")
    parser.add_argument("--diff", metavar="B", help="show a diff flame of FILE against B: red where B spent more time")


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def require_terminal(name: str) -> None:
    if not interactive():
        raise UserError(f"'gradetop {name}' needs a terminal; without one use 'gradetop record' and 'gradetop report'")


def run_app(source, save_path: str | None) -> None:
    from gradetop.tui.app import GradetopApp

    GradetopApp(source, save_path=save_path).run()


def run(args) -> int:
    if not args.command:
        raise UserError("nothing to run: put the command after --, as in gradetop run -- python train.py", code=2)
    require_terminal("run")
    from gradetop.tui.sources import LiveSource

    try:
        source = LiveSource.spawn(args.command, stack_options(args), extra_options=phase_options(args), idle=args.idle)
    except TargetError as exc:
        raise UserError(str(exc)) from None
    return after_live(source, args.output)


def after_live(source, save_path) -> int:
    try:
        run_app(source, save_path)
    finally:
        if not source.state().ended:
            # The UI went away without asking (a crash, a signal): never leave collectors behind.
            source.detach()
    if source.spawned and source.target.poll() is None:
        say(f"the workflow runs on as pid {source.target.pid}; its output goes to {source.target.log_path}")
        return 0
    if source.spawned:
        return shell_status(source.target.exit_code)
    return 0


def attach(args) -> int:
    require_terminal("attach")
    from gradetop.tui.sources import LiveSource

    pid = args.pid
    if pid is None:
        from gradetop.tui.picker import PickerApp

        pid = PickerApp().run()
        if pid is None:
            return 0
    try:
        source = LiveSource.attach(pid, stack_options(args), extra_options=phase_options(args), idle=args.idle)
    except TargetError as exc:
        raise UserError(str(exc)) from None
    return after_live(source, args.output)


def open_file(args) -> int:
    from gradetop.cli.report import load_or_fail

    require_terminal("open")
    profile = load_or_fail(args.file)
    if args.diff:
        return open_diff(profile, args.file, args.diff)
    from gradetop.tui.sources import FileSource

    run_app(FileSource(profile, args.file), None)
    return 0


def open_diff(profile, path: str, other: str) -> int:
    from gradetop.cli.report import load_or_fail
    from gradetop.model.diff import union_tree
    from gradetop.tui.diff_app import DiffApp

    other_profile = load_or_fail(other)
    DiffApp(union_tree(profile, other_profile), os.path.basename(path), os.path.basename(other)).run()
    return 0


def demo_live(args, command: list[str]) -> int:
    from gradetop.tui.sources import LiveSource

    try:
        source = LiveSource.spawn(command, stack_options(args), mode="demo", extra_options=phase_options(args), idle=args.idle)
    except TargetError as exc:
        raise UserError(str(exc)) from None
    return after_live(source, args.output)

