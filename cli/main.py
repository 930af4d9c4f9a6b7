"""The `gradetop` command: subcommands in the shape py-spy users know."""

from __future__ import annotations

import argparse
import os
import sys

from gradetop._version import __version__
from gradetop.cli import agent, demo, diff, dump, export, live, record, report
from gradetop.cli.errors import EXIT_USAGE, UserError, say


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr, pointing at --help."""

    def error(self, message: str):
        say(f"{message} (see '{self.prog} --help')")
        raise SystemExit(EXIT_USAGE)


SUBCOMMANDS = [
    ("record", "sample a workflow headless and write a snapshot", record.add_arguments, record.run),
    ("report", "summarise a snapshot (text or --json)", report.add_arguments, report.run),
    ("export", "write a snapshot as speedscope, collapsed stacks, Chrome trace or pprof", export.add_arguments, export.run),
    ("diff", "compare two runs: time per function and per phase, and the change", diff.add_arguments, diff.run),
    ("dump", "every thread's stack now, and which are stuck (as py-spy dump, watched)", dump.add_arguments, dump.run),
    ("demo", "watch the embedded demo workflow live (no GPU, no download)", demo.add_arguments, demo.run),
    ("run", "run a command and watch it live", live.add_run_arguments, live.run),
    ("attach", "watch a running process live (no PID: pick one)", live.add_attach_arguments, live.attach),
    ("agent", "follow a workflow on this node and stream it to viewers (attach/record --agent)", agent.add_arguments,
     agent.run),
    ("open", "browse a saved snapshot or py-spy file (--diff B: a diff flame)", live.add_open_arguments, live.open_file),
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="gradetop", description="A live monitor for ML workflows: stacks, phases, CPU, memory, IO.")
    parser.add_argument("--version", action="version", version=f"gradetop {__version__}")
    subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=Parser)
    for name, help_text, add_arguments, run in SUBCOMMANDS:
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    # Everything after "--" is the workflow's own command line, options included.
    if "--" in argv:
        cut = argv.index("--")
        args = parser.parse_args(argv[:cut])
        if hasattr(args, "command"):
            args.command = list(args.command or []) + argv[cut + 1 :]
        else:
            parser.error(f"'{args.subcommand}' takes no command after --")
    else:
        args = parser.parse_args(argv)
    if args.subcommand is None:
        parser.print_help()
        return EXIT_USAGE
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


if __name__ == "__main__":
    raise SystemExit(main())
