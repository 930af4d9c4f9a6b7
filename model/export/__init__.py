"""Exports of a Profile into the formats other tools read: speedscope, collapsed stacks, Chrome trace, pprof.

Each format is one module with one pure function `(profile, selection) ->
bytes`; `selection.select` turns the user's options into the timeline rows
they all read. Nothing here writes files or knows about the command line.
"""

from __future__ import annotations

from importlib import import_module

NEEDS_PHASES = frozenset({"chrometrace", "pprof"})
"""Formats that draw or label phases; finding phases costs a pass over every thread, so the others skip it."""

FORMATS = {
    # name: (module, default file suffix)
    "speedscope": ("speedscope", ".speedscope.json"),
    "collapsed": ("collapsed", ".collapsed.txt"),
    "chrometrace": ("chrometrace", ".trace.json"),
    "pprof": ("pprof", ".pb.gz"),
}


def render(name: str, profile, selection) -> bytes:
    """The export of `selection` in format `name`, as the bytes of the file.

    Modules load on demand: pprof pulls in protobuf, which the other formats never need.
    """
    module = import_module(f"{__name__}.{FORMATS[name][0]}")
    return module.render(profile, selection)
