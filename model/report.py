"""The summary of a profile: the `report --json` contract and its text form."""

from __future__ import annotations

import datetime as _dt

import numpy as np

from gradetop.model.alike import fold_alike
from gradetop.model.calltree import top_functions
from gradetop.model.gpu_report import add_phase_gpu, format_gpu, gpu_section
from gradetop.model.phase_costs import cost_phases
from gradetop.model.phase_summary import covered_s
from gradetop.model.phases import PhaseCost, all_phases
from gradetop.model.phases.auto import namer_of
from gradetop.model.process_totals import ProcessTotals, process_totals
from gradetop.model.profile import Profile
from gradetop.model.ranks import format_ranks, rank_summary
from gradetop.model.roles import process_roles
from gradetop.model.rules import Rule, parse_rules
from gradetop.model.stacks import short_path

REPORT_VERSION = 2
"""The shape of `report --json`; bumped when a field changes meaning (snapshots have their own).

2: automatic phases are named in the user's words (`import sklearn`, `worker: fit (SVC)`, bootstrap
frames skipped) and worker phases carry their process's role; processes[] and phases[] have a `role`;
phases[] have `breakdown` ({part: seconds}, {} unless training-like), `headline`, `detail` and
`helper_cpu_s`; `imports` lists import seconds per process and package; processes[] have
`started_s` and `ended_s` (from the recording's start; null where unknown or still running).
Version 1 readers keep working on the fields they knew (same names, same units)."""


def build_report(profile: Profile, include_idle: bool | None = None, limit: int | None = None,
                 rules: tuple[Rule, ...] | None = None) -> dict:
    """The JSON report.

    Function times are seconds summed over threads. Without idle, a sample
    counts for the seconds its thread was running or runnable (what py-spy
    calls active); with idle, for the whole wall time it stands for.
    """
    if include_idle is None:
        include_idle = bool(profile.meta.options.get("idle", False))
    if rules is None:
        rules = parse_rules({"phase": profile.meta.options["phase_rules"]}) if profile.meta.options.get("phase_rules") else ()
    with profile.lock:
        phases = all_phases(profile, rules)
        costs = cost_phases(profile, phases)
        tree = profile.tree(weight="w" if include_idle else "active")
        functions = top_functions(tree)
        if limit is not None:
            functions = functions[:limit]
        processes = sorted(profile.processes.values(), key=lambda p: (p.create_time or 0, p.pid))
        roles = process_roles(profile)
        totals = process_totals(profile)
        none = ProcessTotals(0.0, 0, -1, -1, 0, 0.0)
        meta = profile.meta
        report = {
            "version": REPORT_VERSION,
            "gradetop": meta.gradetop_version,
            "host": meta.host,
            "command": meta.command,
            "start_time": meta.start_time,
            "duration_s": round(profile.duration_s, 6),
            "samples": profile.timeline.samples,
            "rate_hz": meta.rate_hz,
            "achieved_rate_hz": round(profile.achieved_rate_hz, 3),
            "coverage": round(profile.coverage, 4),
            "idle_included": include_idle,
            "exit_code": meta.exit_code,
            "processes": [
                {
                    "pid": p.pid,
                    "host": p.host,
                    "host_pid": p.real_pid,
                    "rank": p.rank,
                    "local_rank": p.local_rank,
                    "world_size": p.world_size,
                    "ppid": p.ppid,
                    "cmdline": p.command,
                    "exit_code": p.exit_code,
                    "sampled": p.sampled,
                    "why_not_sampled": p.why_not_sampled or None,
                    "role": roles.get(p.pid, ""),
                    "cpu_s": round(totals.get(p.pid, none).cpu_s, 6),
                    "rss_bytes": totals.get(p.pid, none).rss,
                    "read_bytes": totals.get(p.pid, none).read_bytes,
                    "write_bytes": totals.get(p.pid, none).write_bytes,
                    "samples": totals.get(p.pid, none).samples,
                    "coverage": round(totals.get(p.pid, none).coverage, 4),
                    "quiet_s": round(p.quiet_s, 3),
                    "parked_s": round(p.parked_s, 3),
                    "started_s": round(p.create_time - meta.start_time, 3) if p.create_time else None,
                    "ended_s": None if p.end_time is None else round(p.end_time - meta.start_time, 3),
                }
                for p in processes
            ],
            "threads": [
                {"pid": t.pid, "tid": t.tid, "name": t.name} for t in sorted(profile.threads.values(), key=lambda t: (t.pid, t.tid))
            ],
            "functions": [
                {
                    "function": f.function,
                    "file": f.file,
                    "line": f.line,
                    "self_s": round(f.self_s, 6),
                    "total_s": round(f.total_s, 6),
                    "self_samples": f.self_n,
                    "total_samples": f.total_n,
                }
                for f in functions
            ],
            "phases": [phase_entry(c, meta.start_time) for c in costs],
            "imports": import_times(profile, roles),
            "notes": [{"pid": n.pid, "kind": n.kind, "message": n.message} for n in profile.notes],
            "ranks": rank_summary(profile, phases),
        }
        report.update(gpu_section(profile))
        add_phase_gpu(profile, costs, report["phases"])
    return report


def phase_entry(c: PhaseCost, t0: float) -> dict:
    p = c.phase
    return {
        "name": p.name, "path": p.path, "type": p.kind, "pid": p.pid, "tid": p.tid, "source": p.source,
        "depth": p.depth,
        "start_s": round(p.start - t0, 6), "end_s": round(p.end - t0, 6), "duration_s": round(p.duration, 6),
        "cpu_s": round(c.cpu_s, 6), "thread_cpu_s": round(c.thread_cpu_s, 6),
        "active_s": round(c.active_s, 6), "waiting_s": round(c.waiting_s, 6), "stalled_s": round(c.stalled_s, 6),
        "children_cpu_s": round(c.children_cpu_s, 6), "peak_rss_bytes": c.peak_rss,
        "read_bytes": c.read_bytes, "write_bytes": c.write_bytes,
        "verdict": c.verdict, "verdict_kind": c.verdict_kind,
        "role": c.extra.get("role", ""), "helper_cpu_s": round(float(c.extra.get("helper_cpu_s", 0.0)), 6),
        "breakdown": {k: round(v, 6) for k, v in (c.extra.get("breakdown") or {}).items()},
        "headline": c.extra.get("headline", ""), "what_if": c.extra.get("what_if", ""),
        "detail": c.extra.get("detail", c.verdict),
    }


def import_times(profile: Profile, roles: dict[int, str]) -> list[dict]:
    """Wall seconds each process spent importing each top-level package (samples under an import)."""
    tl = profile.timeline
    if len(tl) == 0:
        return []
    namer = namer_of(profile)
    out: dict[tuple[int, str], float] = {}
    nodes, inverse = np.unique(tl.stack, return_inverse=True)
    package = []
    for node in nodes:
        labels = namer.labels(int(node))
        last = next((x for x in reversed(labels) if x.startswith("import ")), "") if namer.is_import(int(node)) else ""
        package.append(last[len("import "):])
    w, pid = tl.w, tl.pid
    for i, name in enumerate(package):
        if not name:
            continue
        rows = inverse == i
        for p in np.unique(pid[rows]):
            key = (int(p), name)
            out[key] = out.get(key, 0.0) + float(w[rows & (pid == p)].sum())
    return [{"pid": p, "role": roles.get(p, ""), "package": name, "seconds": round(s, 6)}
            for (p, name), s in sorted(out.items(), key=lambda kv: -kv[1]) if s >= 0.05]


def format_report(report: dict, top: int = 20) -> str:
    """The report as a reader wants it in a terminal (80 columns)."""
    started = _dt.datetime.fromtimestamp(report["start_time"]).strftime("%Y-%m-%d %H:%M:%S")
    lines = [
        _clip(f"gradetop report: {' '.join(report['command']) or '(attached)'}", WIDTH),
        f"  host {report['host']}, started {started}, duration {report['duration_s']:.1f} s",
        f"  {report['samples']} samples at {report['achieved_rate_hz']:.0f} Hz (asked {report['rate_hz']:g} Hz),"
        f" {report['coverage'] * 100:.1f}% of wall time sampled",
    ]
    quiet = [p for p in report["processes"] if p.get("quiet_s")]
    if quiet:
        seconds = sum(p["quiet_s"] for p in quiet)
        parked = sum(p.get("parked_s", 0.0) for p in quiet)
        lines.append(f"  {len(quiet)} child process{'es' * (len(quiet) > 1)} hardly ran: {seconds:.1f} s sampled at a"
                     " lower rate" + (f", {parked:.1f} s of it parked (not read)" if parked else ""))
    if report.get("exit_code") is not None:
        lines.append(f"  exit code {report['exit_code']}")
    lines.append("")
    lines.append("Processes")
    hosts = {p.get("host") for p in report["processes"]}
    # Ended processes of one host, role, command and outcome: one line past a few (model.alike).
    alike_kind = lambda p: (p.get("host"), p.get("role"), p["cmdline"], p["sampled"], p["why_not_sampled"],
                            p["exit_code"], p.get("rank"))
    ended = lambda p: p.get("ended_s") is not None and p.get("started_s") is not None
    for alike in fold_alike(report["processes"], alike_kind, ended):
        p = alike[0]
        state = "sampled" if p["sampled"] else f"not sampled: {p['why_not_sampled'] or 'no stacks seen'}"
        code = "" if p["exit_code"] is None else f", exit {p['exit_code']}"
        role = p.get("role") or ""
        # Many hosts (a view of agents): the host and the pid its users see; ranks where the job has them.
        where = f"{p.get('host') or '?'}:{p.get('host_pid', p['pid'])}" if len(hosts) > 1 else f"{p['pid']:>7}"
        if p.get("rank") is not None and role != f"rank {p['rank']}":
            role = f"{role}, rank {p['rank']}" if role else f"rank {p['rank']}"
        if len(alike) > 1:
            where = f"x{len(alike)}".rjust(len(where))  # ASCII: a report reads the same in any locale
            state += f", up to {_at_once(alike)} alive, {_median_life(alike):.1f} s each"
        lines.append(_clip(f"  {where}  {role:<17} {_clip(p['cmdline'], 34):<34}  {state}{code}", WIDTH))
    kind = "wall seconds, idle included" if report["idle_included"] else "active seconds"
    lines.append("")
    lines.append(f"Top functions ({kind}, summed over threads)")
    lines.append(f"  {'total s':>8} {'own s':>8}  function")
    for f in report["functions"][:top]:
        where = f"{short_path(f['file'])}:{f['line']}"
        lines.append(f"  {f['total_s']:>8.2f} {f['self_s']:>8.2f}  {_clip(f['function'], 36)} ({_clip(where, 24)})")
    if not report["functions"]:
        lines.append("  (no stack samples)")
    lines += format_phases(report)
    lines += format_gpu(report, WIDTH)
    lines += format_imports(report)
    lines += format_ranks(report.get("ranks"), WIDTH)
    for n in report["notes"]:
        if n["kind"] != "sampling":
            lines.append(_clip(f"note: pid {n['pid']}: {n['message']}", WIDTH))
    return "\n".join(lines)


WIDTH = 100
"""No line of the text report is longer: it must read in a terminal, not wrap."""

START_TICK_S = 0.01
"""A process's start is known to a clock tick (the kernel counts it in them), and a tick early at most."""


def _at_once(processes: list[dict]) -> int:
    """The most of `processes` that lived at one time (one started within a tick of another's end, as a
    round of workers starts when the last ends, did not overlap it)."""
    edges = sorted([(p["started_s"], 1) for p in processes]
                   + [(p["ended_s"] - START_TICK_S, -1) for p in processes])
    alive = most = 0
    for _, step in edges:  # at a tie an end comes first
        alive += step
        most = max(most, alive)
    return most


def _median_life(processes: list[dict]) -> float:
    """How long the middle one of `processes` lived."""
    lives = sorted(p["ended_s"] - p["started_s"] for p in processes)
    return lives[len(lives) // 2]


def format_phases(report: dict) -> list[str]:
    """The phases table: one line per phase type, in the order they first ran."""
    if not report["phases"]:
        return []
    groups: dict[tuple, list[dict]] = {}
    for p in report["phases"]:
        groups.setdefault((p["type"], p["source"]), []).append(p)
    wall = report["duration_s"] or 1.0
    lines = ["", "Phases (source: marker / rule / auto; n instances; total s summed over them, in `procs` processes;",
             "        `of run`: share of the run's wall time when at least one instance ran)",
             f"  {'phase':<40} {'source':<6} {'n':>4} {'procs':>5} {'total s':>8} {'mean s':>7} {'of run':>6}"]
    for (kind, source), members in sorted(groups.items(), key=lambda kv: min(p["start_s"] for p in kv[1])):
        total = sum(p["duration_s"] for p in members)
        longest = max(members, key=lambda p: p["duration_s"])
        indent = "  " * min(p["depth"] for p in members)
        share = min(1.0, covered_s([(p["start_s"], p["end_s"]) for p in members]) / wall)
        procs = len({p["pid"] for p in members})
        lines.append(f"  {_clip(indent + kind, 40):<40} {source:<6} {len(members):>4} {procs:>5} {total:>8.2f} "
                     f"{total / len(members):>7.2f} {100 * share:>5.0f}%")
        for text, mark, most in ((longest["verdict"], "↳", 3), (longest.get("headline", ""), "≡", 2),
                                 (longest.get("what_if", ""), "⇒", 1)):
            for i, piece in enumerate(_wrap(text, WIDTH - 6 - len(indent), most) if text else []):
                lines.append(f"  {indent}  {mark if i == 0 else ' '} {piece}")
    return lines


def format_imports(report: dict) -> list[str]:
    """Seconds each process spent importing, per package (a worker's start-up is often mostly this)."""
    rows = [i for i in report.get("imports", []) if i["seconds"] >= 0.2]
    if not rows:
        return []
    lines = ["", "Imports (wall seconds per process; workers import again what the main process did)"]
    for i in rows[:12]:
        lines.append(_clip(f"  {i['seconds']:>7.2f} s  import {i['package']:<20} pid {i['pid']} ({i['role'] or '?'})",
                           WIDTH))
    return lines


def _wrap(text: str, width: int, lines: int = 3) -> list[str]:
    """At most `lines` lines of `width`, cut at spaces; the last one clipped."""
    out: list[str] = []
    words = text.split(" ")
    current = ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            out.append(current)
            current = word
            if len(out) == lines:
                break
        else:
            current = f"{current} {word}" if current else word
    if len(out) < lines and current:
        out.append(current)
    elif len(out) == lines and current:
        out[-1] = _clip(out[-1] + " " + current, width)
    return [_clip(line, width) for line in out]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
