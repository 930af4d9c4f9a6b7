"""`gradetop record`: sample a workflow headless and write a snapshot."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time

from gradetop.cli.errors import EXIT_PARTIAL, UserError, say
from gradetop.collectors.markers import new_phase_folder, remove_phase_folder
from gradetop.collectors.monitor import Monitor
from gradetop.collectors.stacks import StackOptions
from gradetop.collectors.target import Target, TargetError, shell_status
from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import ProcessEnded
from gradetop.model.snapshot import save
from gradetop.model.rules import RulesError, load_rules, rules_to_data
from gradetop.phases import ENV


def add_arguments(parser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE", help="snapshot to write (default gradetop-<pid>-<time>.gtop)")
    add_sampling_arguments(parser)
    parser.add_argument("--duration", type=positive_float, metavar="S", help="stop after S seconds (default: until the workflow ends)")
    parser.add_argument("--pid", type=pid_number, help="record a running process (and its children) instead of a command")
    parser.add_argument("command", nargs="*", metavar="-- CMD ARGS", help="the command to run and record")


def add_sampling_arguments(parser) -> None:
    parser.add_argument("--rate", type=positive_float, default=100.0, metavar="HZ", help="stack samples per second (default 100)")
    parser.add_argument("--idle", action="store_true", help="count idle threads' samples in function times (as py-spy --idle)")
    parser.add_argument("--native", action="store_true", help="include native (C/C++/Cython) frames; slower")
    parser.add_argument("--blocking", action="store_true", help="pause the target for each sample (py-spy's default; off here: it slows many-threaded jobs)")
    parser.add_argument("--no-subprocesses", dest="subprocesses", action="store_false", help="sample only the main process, not its children")
    parser.add_argument("--phases", metavar="RULES.toml", help="your own rules mapping frames to phases (see README)")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text}") from None
    if not value > 0:
        raise ValueError(f"must be positive: {text}")
    return value


def pid_number(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise ValueError(f"not a process id: {text}") from None
    if value <= 0:
        raise ValueError(f"not a process id: {text}")
    return value


positive_float.__name__ = "number"
pid_number.__name__ = "pid"


def phase_options(args) -> dict:
    """The user's phase rules, checked now (a bad file fails before anything runs) and kept in the snapshot."""
    if not getattr(args, "phases", None):
        return {}
    try:
        return {"phase_rules": rules_to_data(load_rules(args.phases))}
    except RulesError as exc:
        raise UserError(str(exc)) from None


def stack_options(args) -> StackOptions:
    return StackOptions(rate_hz=args.rate, subprocesses=args.subprocesses, native=args.native, blocking=args.blocking)


def check_writable(path: str) -> None:
    """Fail before sampling, not after, when the snapshot could not be written."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UserError(f"cannot write {path}: it is a directory")
    if not os.path.isdir(directory):
        raise UserError(f"cannot write {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UserError(f"cannot write {path}: permission denied")


def default_output(pid: int) -> str:
    return f"gradetop-{pid}-{time.strftime('%Y%m%d-%H%M%S')}.gtop"


def run(args) -> int:
    if args.pid is not None and args.command:
        raise UserError("give either --pid or a command after --, not both", code=2)
    if args.pid is None and not args.command:
        raise UserError("nothing to record: give --pid PID or a command after --", code=2)
    if args.output:
        check_writable(args.output)
    else:
        check_writable(os.path.join(os.getcwd(), "gradetop-probe.gtop"))
    phases = phase_options(args)
    folder = None if args.pid is not None else new_phase_folder()
    try:
        target = Target.attach(args.pid) if args.pid is not None else Target.spawn(args.command, env={ENV: folder})
    except TargetError as exc:
        if folder:
            remove_phase_folder(folder)
        raise UserError(str(exc)) from None
    meta = ProfileMeta(
        rate_hz=args.rate,
        command=target.command,
        target_pid=target.pid,
        mode="record" if target.spawned else "attach",
        options={"idle": args.idle, "native": args.native, "blocking": args.blocking, **phases},
    )
    profile = Profile(meta)
    output = args.output or default_output(target.pid)
    return record(profile, target, stack_options(args), output, args.duration, folder)


def record(profile: Profile, target: Target, options: StackOptions, output: str, duration: float | None,
           phase_folder: str | None = None) -> int:
    """Sample until the target ends, `duration` passes or SIGINT/SIGTERM; then always write the snapshot."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    monitor = Monitor(profile, target.pid, options, phase_folder=phase_folder).start()
    deadline = None if duration is None else time.monotonic() + duration
    reported = False
    try:
        while not stop.wait(0.1):
            if not reported and monitor.failure():
                say(monitor.failure() + "; recording CPU and memory only")
                reported = True
            if target.spawned and target.poll() is not None:
                break
            if not target.spawned and monitor.target_gone:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
        if target.spawned and target.poll() is None:
            # Interrupted or out of time: the workflow we started stops with us, as under py-spy record.
            say(f"stopping {' '.join(target.command)} (pid {target.pid})")
            target.stop(grace_s=3.0)
    finally:
        monitor.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if phase_folder:
            remove_phase_folder(phase_folder)
    if target.spawned:
        profile.ingest(ProcessEnded(target.pid, time.time(), target.exit_code))
        profile.meta.exit_code = target.exit_code
    profile.meta.end_time = time.time()
    failure = None if monitor.sampling else (monitor.failure() or "no Python stacks were seen")
    if failure and not reported:
        say(failure + "; recorded CPU and memory only")
    written = write_snapshot(profile, output)
    say(f"wrote {written}: {profile.timeline.samples} samples over {profile.duration_s:.1f} s")
    if target.spawned:
        return shell_status(target.exit_code)
    return EXIT_PARTIAL if failure else 0


def write_snapshot(profile: Profile, output: str) -> str:
    """Save, and if the chosen place fails now (disk full, folder gone), save in the temp folder instead."""
    try:
        save(profile, output)
        return output
    except OSError as exc:
        fallback = os.path.join(tempfile.gettempdir(), os.path.basename(output) or "gradetop.gtop")
        save(profile, fallback)
        say(f"cannot write {output} ({exc.strerror or exc}); saved to {fallback} instead")
        return fallback
