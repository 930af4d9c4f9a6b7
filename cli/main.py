"""The `gradetop` command: subcommands in the shape py-spy users know."""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading

import importlib

from gradetop._version import __version__
from gradetop.cli.errors import EXIT_USAGE, UserError, say
from gradetop.collectors.own_env import one_blas_thread
from gradetop.model.allocator import return_freed_memory


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr, pointing at --help."""

    def error(self, message: str):
        say(f"{message} (see '{self.prog} --help')")
        raise SystemExit(EXIT_USAGE)


SUBCOMMANDS = [
    ("record", "sample a workflow headless and write a snapshot", "record", "add_arguments", "run"),
    ("report", "summarise a snapshot (text or --json)", "report", "add_arguments", "run"),
    ("export", "write a snapshot as speedscope, collapsed stacks, Chrome trace or pprof", "export", "add_arguments",
     "run"),
    ("diff", "compare two runs: time per function and per phase, and the change", "diff", "add_arguments", "run"),
    ("dump", "every thread's stack now, and which are stuck (as py-spy dump, watched)", "dump", "add_arguments", "run"),
    ("demo", "watch the embedded demo workflow live (no GPU, no download)", "demo", "add_arguments", "run"),
    ("run", "run a command and watch it live", "live", "add_run_arguments", "run"),
    ("attach", "watch a running process live (no PID: pick one)", "live", "add_attach_arguments", "attach"),
    ("agent", "follow a workflow on this node and stream it to viewers (attach/record --agent)", "agent",
     "add_arguments", "run"),
    ("open", "browse a saved snapshot or py-spy file (--diff B: a diff flame)", "live", "add_open_arguments",
     "open_file"),
]
"""(name, help, module in gradetop.cli, its add-arguments function, its run function). A module is imported
only for the subcommand given: `gradetop --help` then loads neither numpy nor the collectors (0.6 s -> 0.1 s)."""


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv`, only the subcommand named there gets its arguments (and its module imported)."""
    parser = Parser(prog="gradetop", description="A live monitor for ML workflows: stacks, phases, CPU, memory, IO.")
    parser.add_argument("--version", action="version", version=f"gradetop {__version__}")
    subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=Parser)
    parser.subcommands = {}
    wanted = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    for name, help_text, module, add_name, run_name in SUBCOMMANDS:
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if wanted is None or name == wanted:
            cli = importlib.import_module(f"gradetop.cli.{module}")
            getattr(cli, add_name)(sub)
            sub.set_defaults(run=getattr(cli, run_name))
        parser.subcommands[name] = sub
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The arguments; an unknown one is reported by its subcommand's parser, which points at its own --help."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        owner = parser.subcommands.get(getattr(args, "subcommand", None) or "", parser)
        owner.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def readable_output() -> None:
    """Never fail on a character the terminal's encoding lacks (LC_ALL=C): write an escape instead."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if (stream.encoding or "").lower().replace("-", "").replace("_", "") != "utf8":
                stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass  # not a text stream we can reconfigure (a test's StringIO): leave it


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    readable_output()
    parser = build_parser(argv[: argv.index("--")] if "--" in argv else argv)
    # Everything after "--" is the workflow's own command line, options included.
    if "--" in argv:
        cut = argv.index("--")
        args = parse(parser, argv[:cut])
        if hasattr(args, "command"):
            args.command = list(args.command or []) + argv[cut + 1 :]
        else:
            parser.error(f"'{args.subcommand}' takes no command after --")
    else:
        args = parse(parser, argv)
    if args.subcommand is None:
        parser.print_help()
        return EXIT_USAGE
    return_freed_memory()  # hours of numpy columns: RSS stays the data's size
    try:
        return args.run(args)
    except UserError as exc:
        say(str(exc))
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, as other Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:  # the last line of defence: one line, never a traceback
        if os.environ.get("GRADETOP_DEBUG"):
            raise
        say(f"internal error: {type(exc).__name__}: {exc} (set GRADETOP_DEBUG=1 to see where)")
        return 1


def entry() -> None:
    """The `gradetop` command: `main`, then out without the interpreter's teardown.

    Tearing down numpy, msgpack and the rest took 23 ms at every exit, and a
    workflow run under `gradetop record` or `run` waits for it (issue 12: wall time
    against py-spy alone). As at a normal exit, threads that are not daemons are
    waited for and exit handlers run.
    """
    one_blas_thread()
    code = main()
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader gone (| head), a stream closed: nothing more to say
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
