"""`gradetop agent`: a headless session on one node, streamed live to any number of viewers.

Viewers are `gradetop attach --agent HOST:PORT` (the UI) and `gradetop
record --agent HOST:PORT` (headless). The agent listens on 127.0.0.1 unless
told otherwise: reach it through an SSH tunnel. Any other address needs
--token-file, and viewers without the token are refused.
"""

from __future__ import annotations

import signal
import threading
import time

from gradetop.cli.errors import EXIT_PARTIAL, UserError, say
from gradetop.cli.record import (
    STOP_SIGNALS,
    add_sampling_arguments,
    check_writable,
    follow,
    phase_options,
    pid_number,
    positive_float,
    stack_options,
    tell_notices,
)
from gradetop.collectors.session import Session, SessionOptions, TargetError
from gradetop.collectors.stream import DEFAULT_PORT, is_loopback, parse_address, read_token
from gradetop.collectors.target import shell_status


def add_arguments(parser) -> None:
    parser.add_argument("--listen", metavar="ADDR", default=f"127.0.0.1:{DEFAULT_PORT}",
                        help=f"where viewers connect (default 127.0.0.1:{DEFAULT_PORT}; port 0: any free port). "
                             "Anything but loopback needs --token-file")
    parser.add_argument("--token-file", metavar="F", help="a file holding a shared secret viewers must prove")
    parser.add_argument("--metrics", metavar="ADDR", help="serve Prometheus metrics on ADDR (host:port) at /metrics")
    parser.add_argument("--pyroscope", metavar="URL", help="push pprof to a Pyroscope server (e.g. http://127.0.0.1:4040)")
    parser.add_argument("--pyroscope-every", type=positive_float, default=10.0, metavar="S",
                        help="seconds between pushes (default 10)")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="also record on this node, as 'record -o' does (default: stream only)")
    parser.add_argument("--duration", type=positive_float, metavar="S", help="stop after S seconds")
    parser.add_argument("--pid", type=pid_number, help="follow a running process (and its children)")
    add_sampling_arguments(parser)
    parser.add_argument("command", nargs="*", metavar="-- CMD ARGS", help="the command to run and follow")


def listen_address(text: str, token_file: str | None) -> tuple[str, int]:
    try:
        host, port = parse_address(text, default_port=DEFAULT_PORT, any_port=True)
    except ValueError as exc:
        raise UserError(f"--listen: {exc}", code=2) from None
    if not is_loopback(host) and not token_file:
        raise UserError(f"--listen {text} reaches beyond this machine: give --token-file F too "
                        "(or keep 127.0.0.1 and connect through an SSH tunnel)", code=2)
    return host, port


def run(args) -> int:
    from gradetop.collectors.agent import AgentServer

    if args.pid is not None and args.command:
        raise UserError("give either --pid or a command after --, not both", code=2)
    if args.pid is None and not args.command:
        raise UserError("nothing to follow: give --pid PID or a command after --", code=2)
    host, port = listen_address(args.listen, args.token_file)
    token = token_of(args)
    metrics_address = None
    if args.metrics:
        try:
            metrics_address = parse_address(args.metrics, default_port=9464, any_port=True)
        except ValueError as exc:
            raise UserError(f"--metrics: {exc}", code=2) from None
        if not is_loopback(metrics_address[0]) and not token:
            raise UserError(f"--metrics {args.metrics} reaches beyond this machine and /metrics has no token: "
                            "serve it on 127.0.0.1 (a local Prometheus or an SSH tunnel scrapes it)", code=2)
    if args.pyroscope:
        from gradetop.collectors.pyroscope import check_url

        try:
            check_url(args.pyroscope)
        except ValueError as exc:
            raise UserError(str(exc), code=2) from None
    if args.output:
        check_writable(args.output)
    try:
        server = AgentServer(host, port, token, notify=say)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    options = SessionOptions(stacks=stack_options(args), idle=args.idle, extra=phase_options(args), save=False)
    if args.command and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # Started in the background by a shell (`... &`, nohup, run --hosts): SIGINT comes ignored, and the
        # command would inherit that. Stopping it must be the Ctrl-C it expects (KeyboardInterrupt), not SIGTERM.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        session = Session.attach(args.pid, options) if args.pid is not None else \
            Session.spawn(args.command, options, mode="agent")
    except TargetError as exc:
        server._sock.close()
        raise UserError(str(exc)) from None
    return serve(session, server, args.duration, metrics_address, args.pyroscope, args.pyroscope_every, args.output)


def serve(session: Session, server, duration: float | None, metrics_address=None, pyroscope: str | None = None,
          pyroscope_every: float = 10.0, output: str | None = None) -> int:
    from gradetop.collectors.agent import Hub

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    deadline = None if duration is None else time.monotonic() + duration
    try:
        hub = Hub(session.profile, notify=say, output=output)
    except OSError as exc:
        say(f"cannot write {output} ({exc.strerror or exc}); streaming only")
        hub = Hub(session.profile, notify=say)
    metrics = pusher = None
    if pyroscope:
        from gradetop.collectors.pyroscope import PyroscopePusher

        pusher = PyroscopePusher(session.profile, pyroscope, pyroscope_every, notify=say)
        hub.listeners.append(pusher.take)
    try:
        session.start()
        hub.start()
        if pusher is not None:
            pusher.start()
        server.serve(hub)
        host, port = server.address
        say(f"agent on {host}:{port} following pid {session.target.pid}"
            + (" (token required)" if server.token else ""))
        if metrics_address is not None:
            from gradetop.collectors.metrics import MetricsServer

            try:
                metrics = MetricsServer(session.profile, *metrics_address).start()
            except OSError as exc:
                raise UserError(f"cannot serve metrics on {metrics_address[0]}:{metrics_address[1]}: "
                                f"{exc.strerror or exc}") from None
            say(f"metrics on http://{metrics.address[0]}:{metrics.address[1]}/metrics")
        follow(session, stop, deadline, lambda told: tell_notices(session.notices, told))
    finally:
        session.finish()
        hub.close()
        if pusher is not None:
            pusher.close()
        server.stop()
        server.join(timeout=2)
        if metrics is not None:
            metrics.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say(f"agent done: {session.profile.timeline.samples} samples, {hub.flushes} flushes, "
        f"{hub.bytes_encoded / 1e6:.1f} MB streamed" + (f"; recorded to {output}" if hub.output and
                                                          not hub.output_error else ""))
    if session.spawned:
        return shell_status(session.target.exit_code)
    return 0 if session.sampling else EXIT_PARTIAL


def token_of(args) -> bytes | None:
    """The shared secret of --token-file (None without one); a file that cannot be read is one line."""
    if not args.token_file:
        return None
    try:
        return read_token(args.token_file)
    except OSError as exc:
        raise UserError(f"cannot read --token-file {args.token_file}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
