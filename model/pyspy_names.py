"""How py-spy names processes, threads and frames in its text formats, both ways.

`py-spy record -f raw -s -t` writes a stack as
`process 42:"python train.py";thread (42): MainThread;main (train.py:9);...`,
and its speedscope profiles are named `Process 42 Thread 43 "name"`. gradetop
writes the same (collapsed, speedscope exports) so that every tool that reads
py-spy's files reads ours, and reads them back (model.imports).
"""

from __future__ import annotations

import re

from gradetop.model.stacks import Frame

PROFILE_NAME = re.compile(r'^(?:Process (\d+) )?Thread (\d+)(?: "(.*)")?$')
THREAD_FRAME = re.compile(r"^thread \((\d+|0x[0-9a-fA-F]+)\)(?:: (.*))?$")
PROCESS_FRAME = re.compile(r'^process (\d+):"(.*)"$')
FRAME_LABEL = re.compile(r"^(.*) \(([^()]*):(\d+)\)$")


def process_frame(pid: int, command: str) -> str:
    return f'process {pid}:"{command}"'


def thread_frame(tid: int, name: str = "") -> str:
    return f"thread ({tid}): {name}" if name else f"thread ({tid})"


def profile_name(pid: int, tid: int, name: str = "") -> str:
    return f'Process {pid} Thread {tid} "{name}"'


def frame_label(frame: Frame) -> str:
    """`function (file:line)`, as py-spy's raw format writes a frame (with the short path a reader knows)."""
    return frame.label


def parse_frame_label(text: str) -> tuple[str, str, int]:
    """(function, file, line) of a raw-format frame; a frame without a place keeps its whole text as the name."""
    m = FRAME_LABEL.match(text)
    if m:
        return m.group(1), m.group(2), int(m.group(3))
    return text, "", 0
