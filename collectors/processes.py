"""This machine's Python processes, for the picker of `gradetop attach` with no PID; and gradetop's own,
which are never a target."""

from __future__ import annotations

import os

import psutil


def python_processes() -> list[dict]:
    """Python processes other than gradetop itself, busiest first."""
    me = os.getpid()
    found = []
    for proc in psutil.process_iter(["pid", "name", "cmdline", "num_threads", "memory_info", "exe"]):
        info = proc.info
        if info["pid"] == me:
            continue
        cmdline = info["cmdline"] or []
        exe = os.path.basename(info["exe"] or "")
        if not (exe.startswith("python") or (info["name"] or "").startswith("python")):
            continue
        if any("gradetop" in part and "demo" not in part for part in cmdline[1:3]):
            continue
        try:
            cpu = proc.cpu_percent(interval=None)
        except psutil.Error:
            cpu = 0.0
        found.append({
            "pid": info["pid"],
            "command": " ".join(cmdline) or info["name"],
            "cpu": cpu,
            "rss": info["memory_info"].rss if info["memory_info"] else 0,
            "threads": info["num_threads"] or 0,
        })
    return sorted(found, key=lambda p: (-p["cpu"], -p["rss"]))


def without_gradetop_pids(pids: list[int]) -> list[int]:
    """`pids` less gradetop and every process below it (its py-spy helpers).

    They are among a target's descendants only when the target is an ancestor of gradetop
    (`record --pid $$` from a shell, `--pid 1`): sampling them would watch gradetop watching.
    """
    me = os.getpid()
    if me not in pids:
        return pids
    try:
        mine = {me, *(p.pid for p in psutil.Process(me).children(recursive=True))}
    except psutil.Error:
        mine = {me}
    return [p for p in pids if p not in mine]


def without_gradetop(procs: list[psutil.Process]) -> list[psutil.Process]:
    """`without_gradetop_pids`, for psutil processes."""
    keep = set(without_gradetop_pids([p.pid for p in procs]))
    return [p for p in procs if p.pid in keep]
