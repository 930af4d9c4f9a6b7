"""`gradetop run`, `attach`, `open` and the live `demo`: the terminal UI on a source."""

from __future__ import annotations

import os
import sys

from gradetop.cli.errors import UserError, say
from gradetop.cli.record import (
    add_agent_arguments,
    add_hosts_arguments,
    add_output_arguments,
    add_sampling_arguments,
    checked_options,
    keep,
    pid_number,
    remote_session,
    session_options,
)
from gradetop.collectors.launch import launch
from gradetop.collectors.target import TargetError, shell_status

# The session, the model and the UI load after a command has started (collectors.launch).


def add_run_arguments(parser) -> None:
    add_output_arguments(parser)
    add_sampling_arguments(parser)
    add_hosts_arguments(parser)
    parser.add_argument("command", nargs="*", metavar="-- CMD ARGS", help="the command to run and watch")


def add_attach_arguments(parser) -> None:
    add_output_arguments(parser)
    add_sampling_arguments(parser)
    parser.add_argument("pid", nargs="?", type=pid_number, help="process to watch (none: pick from a list)")
    add_agent_arguments(parser)


def add_open_arguments(parser) -> None:
    parser.add_argument("file", metavar="FILE", help="a snapshot (or a py-spy raw / speedscope file) to browse")
    parser.add_argument("--diff", metavar="B", help="show a diff flame of FILE against B: red where B spent more time")


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def require_terminal(name: str) -> None:
    if not interactive():
        raise UserError(f"'gradetop {name}' needs a terminal; without one use 'gradetop record' and 'gradetop report'")


def run_app(source) -> None:
    from gradetop.tui.app import GradetopApp

    GradetopApp(source).run()


def run(args) -> int:
    if not args.command:
        raise UserError("nothing to run: put the command after --, as in gradetop run -- python train.py", code=2)
    require_terminal("run")
    if args.hosts or args.hostfile:
        return run_hosts(args)
    return watch_command(args.command, args, "run")


def watch_command(command: list[str], args, mode: str) -> int:
    """Start `command` and watch it: it starts (its first py-spy window too) before the session and the UI load."""
    values = checked_options(args)
    try:
        launched = launch(command, values["stacks"], capture_output=True)
    except TargetError as exc:
        raise UserError(str(exc)) from None
    try:
        from gradetop.collectors.session import Session, SessionOptions

        return watch(lambda options: Session.spawn(command, options, mode=mode, capture_output=True,
                                                   launched=launched), args, SessionOptions(**values))
    except KeyboardInterrupt:
        # Ctrl-C before the UI took the keyboard (it loads for a few tenths of a second): the user stopped
        # the run, as under `record`. The workflow has a session of its own, so the terminal's SIGINT
        # never reached it: without this it ran on, unseen.
        if launched.target.poll() is None:
            say(f"stopping {' '.join(command)} (pid {launched.target.pid})")
            launched.target.stop(grace_s=3.0)
        raise


def watch(make_session, args, options=None) -> int:
    """Start a session under the UI; when the UI goes (by q, a signal, or a crash), end it and say what is left."""
    options = options or session_options(args)
    try:
        session = make_session(options)
    except TargetError as exc:
        raise UserError(str(exc)) from None
    watch_until_quit(session)
    if session.workflow_running:
        say(f"the workflow runs on as pid {session.target.pid}; its output goes to {session.log_path}")
        return 0
    if session.spawned:
        return shell_status(session.target.exit_code)
    return 0


def watch_until_quit(session) -> None:
    """The UI on `session`; when it goes (q, a signal, a crash), the session is ended and its notices and
    recording are told."""
    try:
        run_app(session)
    finally:
        if not session.state().ended:
            # The UI went away without asking (a crash, a signal): never leave collectors behind.
            session.detach()
        for line in session.notices:
            say(line)
        written = keep(session)
        if written:
            say(f"the recording is in {written}")


def run_hosts(args) -> int:
    """`run --hosts`: an agent per host over SSH, one view of them all; quitting stops them or leaves them."""
    from gradetop.cli.record import hosts_session

    session = hosts_session(args)
    watch_until_quit(session)
    if session.left_running:
        say(f"the job runs on under the agents on {', '.join(h.spec.text for h in session.hosts)}; "
            "to watch it again:")
        for line in session.reattach_help():
            say("  " + line)
        return 0
    return shell_status(session.target.exit_code)


def attach(args) -> int:
    if args.agent or args.hostfile:
        if args.pid is not None:
            raise UserError("give either agents (--agent/--hostfile) or a pid, not both", code=2)
        session = remote_session(args)
        try:
            require_terminal("attach")
        except UserError:
            session.finish()
            raise
        return watch(lambda options: session, args)
    require_terminal("attach")
    pid = args.pid
    if pid is None:
        from gradetop.collectors.processes import python_processes
        from gradetop.tui.picker import PickerApp

        pid = PickerApp(python_processes).run()
        if pid is None:
            return 0
    from gradetop.collectors.session import Session

    return watch(lambda options: Session.attach(pid, options), args)


def open_file(args) -> int:
    from gradetop.cli.report import load_or_fail
    from gradetop.model.source import FileSource

    require_terminal("open")
    profile = load_or_fail(args.file)
    if args.diff:
        return open_diff(profile, args.file, args.diff)
    run_app(FileSource(profile, args.file))
    return 0


def open_diff(profile, path: str, other: str) -> int:
    from gradetop.cli.report import load_or_fail
    from gradetop.model.diff import union_tree
    from gradetop.tui.diff_app import DiffApp

    other_profile = load_or_fail(other)
    DiffApp(union_tree(profile, other_profile), os.path.basename(path), os.path.basename(other)).run()
    return 0


def demo_live(args, command: list[str]) -> int:
    return watch_command(command, args, "demo")
