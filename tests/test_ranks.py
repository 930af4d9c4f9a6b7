"""Ranks side by side: seconds per phase per rank, and the verdict on which rank the others wait for."""

from __future__ import annotations

from gradetop.model.processes import ProcessInfo
from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.ranks import format_ranks, rank_summary
from gradetop.model.records import PhaseMark
from gradetop.model.report import build_report, format_report


def job(compute_s: dict[int, float], steps: int = 4) -> Profile:
    """Ranks 0..n-1 (pid 100 + rank), each step `compute` then `allreduce` until the slowest is done."""
    p = Profile(ProfileMeta(host="h", start_time=0.0, end_time=100.0))
    step_s = max(compute_s.values()) + 0.1
    for rank, c in compute_s.items():
        pid = 100 + rank
        p.processes[pid] = ProcessInfo(pid, 1, ["python", "train.py"], host=f"node{rank}", rank=rank)
        for k in range(steps):
            t = 1.0 + k * step_s
            p.ingest(PhaseMark(t, pid, pid, "B", "compute"))
            p.ingest(PhaseMark(t + c, pid, pid, "E", "compute"))
            p.ingest(PhaseMark(t + c, pid, pid, "B", "allreduce"))
            p.ingest(PhaseMark(t + step_s, pid, pid, "E", "allreduce"))
    return p


def test_the_slow_rank_is_named_and_the_waiting_ranks_are_not_blamed():
    report = build_report(job({0: 0.5, 1: 1.0, 2: 0.5}))
    summary = report["ranks"]
    assert [r["rank"] for r in summary["ranks"]] == [0, 1, 2]
    assert summary["ranks"][1]["hosts"] == ["node1"]
    first, second = summary["skew"][:2]
    assert (first["phase"], first["slowest_rank"], first["skewed"]) == ("compute", 1, True)
    assert first["ratio"] == 2.0 and "the other ranks wait for it" in first["verdict"]
    assert second["phase"] == "allreduce" and second["collective"] and "waits there" in second["verdict"]
    assert second["fastest_rank"] == 1  # the slow rank waits least in the collective
    text = format_report(report)
    assert "Ranks" in text and "rank 1 spent 4.0 s in compute, 2.0x as long as rank 0" in text


def test_balanced_ranks_and_single_rank_jobs():
    summary = rank_summary(job({0: 0.5, 1: 0.52}), build_report_phases(job({0: 0.5, 1: 0.52})))
    assert not any(e["skewed"] for e in summary["skew"])
    assert "balanced" in summary["skew"][0]["verdict"]
    assert build_report(job({0: 0.5}))["ranks"] is None
    assert format_ranks(None) == []


def build_report_phases(profile):
    from gradetop.model.phases import all_phases

    return all_phases(profile)


def test_the_live_view_says_which_rank_the_others_wait_for():
    """The UI's per-rank view: lanes by rank (model.views) and the skew verdict under the process tree."""
    import asyncio

    from gradetop.model.source import FileSource
    from gradetop.tui.app import GradetopApp
    from gradetop.tui.processes import ProcessTable

    async def scenario() -> str:
        app = GradetopApp(FileSource(job({0: 0.5, 1: 1.0, 2: 0.5}), "job.gtop"), refresh_s=3600)
        async with app.run_test(size=(160, 48)) as pilot:
            for _ in range(200):
                if app.picture is not None:
                    break
                await pilot.pause(0.05)
            return str(app.query_one(ProcessTable).border_subtitle)

    assert asyncio.run(scenario()).startswith("rank 1 spent 4.0 s in compute, 2.0x as long as rank 0")
