"""`gradetop dump`: every thread's stack now, and which threads are stuck, in the shape of `py-spy dump`.

The verdicts come first: a user who ran this on a hung job wants the
answer on the first line, the evidence below.
"""

from __future__ import annotations

from argparse import ArgumentTypeError

import json
import os
import sys

from gradetop.cli.errors import UserError
from gradetop.cli.record import pid_number
from gradetop.collectors.dump import DumpError, DumpOptions, DumpResult, ProcessReport, ThreadReport, dump


def add_arguments(parser) -> None:
    parser.add_argument("--pid", type=pid_number, required=True, help="the process to dump (and its children)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--native", action="store_true",
                        help="include native (C/C++/Cython) frames; pauses the target once, for the last dump")
    parser.add_argument("--locals", action="store_true", help="show each frame's local variables (last dump)")
    parser.add_argument("--watch", type=watch_seconds, default=2.0, metavar="S",
                        help="dump repeatedly for S seconds to tell stuck threads from busy ones "
                             "(default 2; 0: one dump, no stuck verdict)")
    parser.add_argument("--no-subprocesses", dest="subprocesses", action="store_false",
                        help="dump only this process, not its children")


def watch_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ArgumentTypeError(f"not a number: {text}") from None
    if not 0 <= value <= 3600:
        raise ArgumentTypeError(f"must be between 0 and 3600 seconds: {text}")
    return value


watch_seconds.__name__ = "seconds"


def run(args) -> int:
    options = DumpOptions(watch_s=args.watch, subprocesses=args.subprocesses, native=args.native, locals=args.locals)
    try:
        result = dump(args.pid, options)
    except DumpError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(result, locals_=args.locals))
    sys.stdout.flush()
    return 0


def render_text(result: DumpResult, locals_: bool = False) -> str:
    lines = verdict_lines(result)
    for process in result.processes:
        lines.append("")
        lines.extend(process_lines(process, locals_))
    return "\n".join(lines) + "\n"


def verdict_lines(result: DumpResult) -> list[str]:
    lines = []
    for _process, thread in result.stuck():
        where = f" at {_where(thread.wait_frame)}" if thread.wait_frame else ""
        lines.append(f"STUCK: thread {thread.tid} '{thread.name}' waiting in {thread.wait_reason}{where} "
                     f"(unchanged {thread.unchanged_s:.1f} s)")
    for process, trouble in result.trouble():
        lines.append(f"TROUBLE: process {process.pid} ({_short_command(process.cmdline)}): {trouble}")
    if not lines:
        if result.dumps <= 1 or result.watch_s <= 0:
            lines.append("One dump (--watch 0): no stuck verdict; waits are marked below.")
        else:
            lines.append(f"No stuck thread: none sat in a wait, unchanged and idle, for the whole "
                         f"{result.watch_s:.1f} s watch ({result.dumps} dumps).")
    return lines


def process_lines(process: ProcessReport, locals_: bool) -> list[str]:
    state = "" if process.status == "running" else f" [{process.status}]"
    lines = [f"Process {process.pid}: {process.cmdline}{state}"]
    if process.error:
        lines.append(f"    (no stacks: {process.error})")
    if process.note:
        lines.append(f"    ({process.note})")
    for thread in process.threads:
        lines.extend(thread_lines(thread, locals_))
    return lines


def thread_lines(thread: ThreadReport, locals_: bool) -> list[str]:
    gil = ", holds GIL" if thread.state == "running" and thread.owns_gil else ""
    verdict = ""
    if thread.stuck:
        verdict = f"  STUCK in {thread.wait_reason}"
    elif thread.wait_reason:
        verdict = f"  waiting in {thread.wait_reason}"
        if thread.waiting_on:
            verdict += f" on {thread.waiting_on} (not stuck)"
    lines = [f"Thread {thread.tid} ({thread.state}{gil}, unchanged {thread.unchanged_s:.1f} s): "
             f"\"{thread.name}\"{verdict}"]
    for frame in thread.frames:
        where = f"{frame.short_file}:{frame.line}" if frame.line else frame.short_file
        lines.append(f"    {frame.function} ({where})")
        if locals_ and frame.locals:
            arguments = [v for v in frame.locals if v["arg"]]
            others = [v for v in frame.locals if not v["arg"]]
            for title, values in (("Arguments", arguments), ("Locals", others)):
                if values:
                    lines.append(f"        {title}:")
                    lines.extend(f"            {v['name']}: {v['repr']}" for v in values)
    return lines


def _where(frame) -> str:
    return f"{os.path.basename(frame[1])}:{frame[2]}"


def _short_command(cmdline: str, width: int = 60) -> str:
    return cmdline if len(cmdline) <= width else cmdline[: width - 3] + "..."
