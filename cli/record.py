"""`gradetop record`: sample a workflow headless and write a snapshot."""

from __future__ import annotations

from argparse import ArgumentTypeError

import os
import signal
import threading
import time

from gradetop.cli.errors import EXIT_ERROR, EXIT_PARTIAL, UserError, say
from gradetop.cli.progress import progress_bar
from gradetop.collectors.launch import launch
from gradetop.collectors.target import TargetError, shell_status
from gradetop.collectors.window import StackOptions

# The session, the model and numpy load in `run`, after the command has started (collectors.launch).


def add_arguments(parser) -> None:
    add_output_arguments(parser)
    add_sampling_arguments(parser)
    parser.add_argument("--duration", type=positive_float, metavar="S", help="stop after S seconds (default: until the workflow ends)")
    parser.add_argument("--pid", type=pid_number, help="record a running process (and its children) instead of a command")
    add_agent_arguments(parser)
    add_hosts_arguments(parser, hostfile=False)
    parser.add_argument("command", nargs="*", metavar="-- CMD ARGS", help="the command to run and record")


def add_hosts_arguments(parser, hostfile: bool = True) -> None:
    parser.add_argument("--hosts", action="append", metavar="HOST[,HOST...]",
                        help="run the command on these hosts over SSH, each under a 'gradetop agent' "
                             "([user@]host[:sshport]; with a command, --hostfile lists them too)")
    if hostfile:
        parser.add_argument("--hostfile", metavar="FILE", help="hosts to run on, one [user@]host[:sshport] a line")
    parser.add_argument("--remote-gradetop", metavar="PATH", default="gradetop",
                        help="gradetop on the hosts (default: 'gradetop' on the remote PATH)")
    parser.add_argument("--agent-port", type=port_number, metavar="PORT", default=7077,
                        help="the agents listen on 127.0.0.1:PORT+k on host k (default 7077)")


def add_agent_arguments(parser) -> None:
    parser.add_argument("--agent", action="append", metavar="HOST:PORT",
                        help="record from a running 'gradetop agent' instead (repeat for more nodes)")
    parser.add_argument("--hostfile", metavar="FILE", help="agents to record from, one host[:port] a line")
    parser.add_argument("--token-file", metavar="F", help="the agents' shared secret")


def add_output_arguments(parser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="the recording, written as it runs (default gradetop-<pid>-<time>.gtop here)")
    parser.add_argument("--no-save", dest="save", action="store_false", help="keep the recording in memory only")


def add_sampling_arguments(parser) -> None:
    parser.add_argument("--rate", type=rate_hz, default=100.0, metavar="HZ", help="stack samples per second (default 100)")
    parser.add_argument("--idle", action="store_true", help="count idle threads' samples in function times (as py-spy --idle)")
    parser.add_argument("--native", action="store_true", help="include native (C/C++/Cython) frames; slower")
    parser.add_argument("--blocking", action="store_true", help="pause the target for each sample (py-spy's default; off here: it slows many-threaded jobs)")
    parser.add_argument("--no-subprocesses", dest="subprocesses", action="store_false", help="sample only the main process, not its children")
    parser.add_argument("--sampler", choices=("auto", "py-spy"), default="auto",
                        help="auto (default): read CPython 3.11, 3.12 and 3.13 interpreters directly, "
                             "py-spy for others; py-spy: py-spy for every process")
    parser.add_argument("--phases", metavar="RULES.toml", help="your own rules mapping frames to phases (see README)")
    add_user_code_argument(parser)


def add_user_code_argument(parser) -> None:
    parser.add_argument("--user-code", action="append", metavar="PATH", default=None,
                        help="your own code lives under PATH (repeatable): it names automatic phases; "
                             "default: every file outside the standard library and site-packages")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ArgumentTypeError(f"not a number: {text}") from None
    if not (value > 0 and value != float("inf")):
        raise ArgumentTypeError(f"must be a positive number: {text}")
    return value


def pid_number(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise ArgumentTypeError(f"not a process id: {text}") from None
    if value <= 0:
        raise ArgumentTypeError(f"not a process id: {text}")
    return value


MAX_RATE_HZ = 1000.0
"""py-spy reads a process's memory for every sample: past ~1 kHz it cannot keep up, and says nothing."""


def rate_hz(text: str) -> float:
    value = positive_float(text)
    if not 1.0 <= value <= MAX_RATE_HZ:
        raise ArgumentTypeError(f"must be between 1 and {MAX_RATE_HZ:g} samples per second: {text}")
    return value


positive_float.__name__ = "number"
rate_hz.__name__ = "rate"
pid_number.__name__ = "pid"


def phase_options(args) -> dict:
    """The user's phase rules (checked now: a bad file fails before anything runs), where their code lives,
    and the machine's CPUs (what CPU-starved verdicts weigh against), kept in the snapshot."""
    options: dict = {"cpus": os.cpu_count() or 1}
    if getattr(args, "user_code", None):
        options["user_code"] = [os.path.abspath(p) for p in args.user_code]
    if not getattr(args, "phases", None):
        return options
    # Here, not above: `record -- CMD` starts CMD before it loads more than it must (collectors.launch).
    from gradetop.model.rules import RulesError, load_rules, rules_to_data

    try:
        return {**options, "phase_rules": rules_to_data(load_rules(args.phases))}
    except RulesError as exc:
        raise UserError(str(exc)) from None


def stack_options(args) -> StackOptions:
    return StackOptions(rate_hz=args.rate, subprocesses=args.subprocesses, native=args.native, blocking=args.blocking,
                        sampler=args.sampler)


def session_options(args):
    """What every monitoring command shares: sampling, idle, phase rules, where the recording goes."""
    from gradetop.collectors.session import SessionOptions

    return SessionOptions(**checked_options(args))


def checked_options(args) -> dict:
    """The SessionOptions fields, checked: a bad output path or rules file fails here, before anything runs.
    Loads no session: `run` starts the command in between (collectors.launch)."""
    output = getattr(args, "output", None)
    save = getattr(args, "save", True)
    if save:
        check_writable(output or os.path.join(os.getcwd(), "gradetop-probe.gtop"))
    return {"stacks": stack_options(args), "idle": args.idle, "extra": phase_options(args), "output": output,
            "save": save}


def check_writable(path: str) -> None:
    """Fail before sampling, not after, when the snapshot could not be written."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UserError(f"cannot write {path}: it is a directory")
    if not os.path.isdir(directory):
        raise UserError(f"cannot write {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        why = "read-only file system" if read_only(directory) else "permission denied"
        raise UserError(f"cannot write {path}: {why}")


def read_only(directory: str) -> bool:
    """The file system holding `directory` is mounted read-only (access() says no for that too)."""
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def port_number(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ArgumentTypeError(f"not a port: {text}")
    return int(text)


port_number.__name__ = "port"


def hosts_mode(args) -> bool:
    """--hosts, or a --hostfile beside a command: start agents over SSH (a --hostfile alone names agents)."""
    return bool(getattr(args, "hosts", None)) or bool(args.hostfile and getattr(args, "command", None))


def hosts_session(args):
    """Agents started over SSH on every host, each with the command under it; the unreachable ones are one
    line each (all unreachable: one line and an error)."""
    from gradetop.collectors.hosts import HostsError, launch, parse_hosts
    from gradetop.collectors.remote import AgentError, RemoteOptions

    if getattr(args, "agent", None) or getattr(args, "pid", None) is not None:
        raise UserError("give either --hosts (with a command) or agents/--pid, not both", code=2)
    if not args.command:
        raise UserError("nothing to run on the hosts: put the command after --", code=2)
    output = getattr(args, "output", None)
    save_it = getattr(args, "save", True)
    if save_it and output:
        check_writable(output)
    phase_options(args)  # a bad rules file fails here, before anything starts anywhere
    agent_args = ["--rate", f"{args.rate:g}"]
    agent_args += [flag for flag, on in (("--idle", args.idle), ("--native", args.native),
                                         ("--blocking", args.blocking),
                                         ("--no-subprocesses", not args.subprocesses)) if on]
    agent_args += ["--sampler", args.sampler]
    for path in getattr(args, "user_code", None) or []:
        agent_args += ["--user-code", os.path.abspath(path)]
    if getattr(args, "phases", None):
        agent_args += ["--phases", os.path.abspath(args.phases)]
    try:
        specs = parse_hosts(args.hosts, args.hostfile)
        session = launch(specs, args.command, gradetop=args.remote_gradetop, agent_port=args.agent_port,
                         agent_args=agent_args, options=RemoteOptions(output=output, save=save_it), notify=say)
    except HostsError as exc:
        raise UserError(str(exc)) from None
    try:
        return session.open()
    except AgentError as exc:
        session.stop_agents(timeout=10)
        session.finish()
        raise UserError(str(exc)) from None


def run(args) -> int:
    if hosts_mode(args):
        return record(hosts_session(args), args.duration)
    if args.agent or args.hostfile:
        if args.pid is not None or args.command:
            raise UserError("give either agents (--agent/--hostfile) or a workflow (--pid or a command), not both",
                            code=2)
        return record(remote_session(args), args.duration)
    if args.pid is not None and args.command:
        raise UserError("give either --pid or a command after --, not both", code=2)
    if args.pid is None and not args.command:
        raise UserError("nothing to record: give --pid PID or a command after --", code=2)
    values = checked_options(args)
    try:
        # The command and its first py-spy window start before the session loads (about 0.1 s sooner).
        launched = launch(args.command, values["stacks"]) if args.pid is None else None
        from gradetop.collectors.session import Session, SessionOptions

        options = SessionOptions(**values)
        session = Session.attach(args.pid, options) if launched is None else \
            Session.spawn(args.command, options, launched=launched)
    except TargetError as exc:
        raise UserError(str(exc)) from None
    return record(session, args.duration)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def record(session, duration: float | None, announce: bool = True) -> int:
    """Sample until the target ends, `duration` passes or a signal comes; the recording is on disk all along."""
    stop = threading.Event()
    # Held until the last line is said: a second Ctrl-C or SIGTERM while the file is written (or just
    # after) must not end gradetop before it says where the recording is.
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        return _record(session, duration, announce, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _record(session, duration: float | None, announce: bool, stop: threading.Event) -> int:
    deadline = None if duration is None else time.monotonic() + duration
    reported: str | None = None
    """The sampler's failure, once said (the session makes a notice of it too: it is not said twice)."""
    told = 0
    try:
        session.start()
        session.when_ended(stop.set)  # `follow` ends then, not at its next tenth of a second
        if announce and session.writing_to:
            say(f"recording to {session.writing_to}")

        def tell(told: int) -> int:
            nonlocal reported
            told = tell_notices(session.notices, told, reported)
            if not reported and session.failure():
                reported = session.failure()
                if reported not in session.notices[:told]:
                    say(reported + "; recording CPU and memory only")
            return told

        told = follow(session, stop, deadline, tell)
    finally:
        with progress_bar("writing the recording") as progress:
            session.finish(progress)
    profile = session.profile
    failure = None if session.sampling else (session.failure() or "no Python stacks were seen")
    tell_notices(session.notices, told, reported or failure)
    if failure and not reported:
        say(failure + "; recorded CPU and memory only")
    written = keep(session)
    if written:
        say(f"wrote {written}: {profile.timeline.samples} samples over {profile.duration_s:.1f} s")
    elif session.path is not None:
        return EXIT_ERROR
    if session.spawned:
        return shell_status(session.target.exit_code)
    return EXIT_PARTIAL if failure else 0


def follow(session, stop: threading.Event, deadline: float | None, tell) -> int:
    """Until the workflow ends, `deadline` (monotonic) passes or `stop` is set, `tell(told)` the notices
    ten times a second; returns how many were told. A workflow we started that still runs then (interrupted,
    out of time) stops with us, as under py-spy record."""
    told = 0
    while not stop.wait(0.1):
        told = tell(told)
        if session.poll() or (deadline is not None and time.monotonic() >= deadline):
            break
    if session.workflow_running:
        say(f"stopping {' '.join(session.target.command)} (pid {session.target.pid})")
        session.target.stop(grace_s=3.0)
    return told


def tell_notices(notices: list[str], told: int, said: str | None = None) -> int:
    """Say the notices after the first `told` (but `said`, already told); returns how many are told now."""
    for line in notices[told:]:
        if line != said:
            say(line)
    return len(notices)


def keep(session) -> str | None:
    """Where the finished recording is. If streaming it failed, save it from memory: in its place, else in a
    new file in the temp folder (never over an existing one). None when nothing could be written."""
    from gradetop.collectors.session import fallback_path
    from gradetop.model.snapshot import save

    if session.path is None:
        return None
    if session.writer is not None and session.writer.error is None:
        return session.path
    for candidate in (session.path, None):
        try:
            candidate = candidate or fallback_path(session.path)
            save(session.profile, candidate)
        except OSError as exc:
            say(f"cannot write {candidate} ({exc.strerror or exc})")
            continue
        return candidate
    if session.saved_path():
        say(f"{session.path} holds the recording up to where writing failed")
        return session.path
    return None


def remote_session(args):
    """A session on running agents, connected now: a bad address, port, hostfile or token is one line."""
    from gradetop.collectors.remote import AgentError, RemoteOptions, RemoteSession, read_hostfile
    from gradetop.cli.agent import token_of
    from gradetop.collectors.stream import parse_address

    addresses = list(args.agent or [])
    for address in addresses:
        try:
            parse_address(address)
        except ValueError as exc:
            raise UserError(f"--agent {address}: {exc}", code=2) from None
    if args.hostfile:
        try:
            addresses += read_hostfile(args.hostfile)
        except OSError as exc:
            raise UserError(f"cannot read --hostfile {args.hostfile}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise UserError(str(exc)) from None
    token = token_of(args)
    output = getattr(args, "output", None)
    save = getattr(args, "save", True)
    if save and output:
        check_writable(output)
    try:
        return RemoteSession(addresses, token, RemoteOptions(output=output, save=save)).open()
    except (AgentError, ValueError) as exc:
        raise UserError(str(exc)) from None
