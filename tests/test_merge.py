"""Many agents in one model: chunks of hand-built profiles merged, remapped, re-joined, saved.

No network and no py-spy: what travels is exactly what `encode` writes, read
back by the same framing a socket reader uses (model.chunkfile).
"""

from __future__ import annotations

import numpy as np
import pytest

from export_helpers import small_profile
from gradetop.collectors.resources import ranks_of
from gradetop.collectors.stream import Clock, check_proof, clock_offset, parse_address, proof
from gradetop.model.chunkfile import read_chunks
from gradetop.model.journal import Journal
from gradetop.model.merge import PID_STRIDE, Merger
from gradetop.model.records import PhaseMark, StackBatch, ThreadSamples
from gradetop.model.report import build_report, format_report
from gradetop.model.snapshot import encode, load, save, take_chunks, whole_journal


def wire(chunks: list[dict]) -> list[dict]:
    """Chunk bodies as a viewer receives them: encoded, framed, checked, decoded."""
    data = b"".join(encode(c) for c in chunks)
    return [c.body for c in read_chunks(data, start=0)]


def whole(profile) -> list[dict]:
    with profile.lock:
        return wire(take_chunks(profile, whole_journal(profile)))


def feed_all(feed, bodies) -> None:
    with feed.profile.lock:
        for body in bodies:
            feed.apply(body)


def ranked(rank: int, host: str):
    p = small_profile()
    p.meta.host = host
    for info in p.processes.values():
        info.host = host
        info.rank = rank
    return p


def test_two_agents_with_the_same_pids_stay_apart_and_add_up():
    a, b = ranked(0, "node-a"), ranked(1, "node-b")
    merger = Merger()
    fa, fb = merger.add("a:1"), merger.add("b:1")
    fa.begin("sa", 0.0, 0.0)
    fb.begin("sb", 2.5, 0.001)  # b's clock is 2.5 s behind the viewer's
    feed_all(fa, whole(a))
    feed_all(fb, whole(b))
    m = merger.profile
    assert fa.warnings == [] and fb.warnings == []
    assert set(m.processes) == {100, 200, 100 + PID_STRIDE, 200 + PID_STRIDE}
    other = m.processes[100 + PID_STRIDE]
    assert (other.host, other.host_pid, other.rank, other.ppid) == ("node-b", 100, 1, other.ppid)
    assert m.processes[200 + PID_STRIDE].ppid == 100 + PID_STRIDE
    assert m.timeline.samples == a.timeline.samples + b.timeline.samples
    # One trie: the same stack on two hosts is one node, its time the sum.
    assert len(m.stacks) == len(a.stacks) and len(m.frames) == len(a.frames)
    assert m.tree().total_s[0] == pytest.approx(a.tree().total_s[0] + b.tree().total_s[0])
    # b's samples moved onto the viewer's clock.
    tb = m.timeline.t[m.timeline.pid >= PID_STRIDE]
    assert tb.min() == pytest.approx(a.timeline.t.min() + 2.5)
    assert m.meta.host == "node-a,node-b"
    assert [x["clock_offset_s"] for x in m.meta.options["agents"]] == [0.0, 2.5]
    # Marker phases of both hosts, each on its own process.
    assert {(mk.pid, mk.name) for mk in m.marks} == {(100, "train"), (100 + PID_STRIDE, "train")}
    report = build_report(m)
    assert {(p["host"], p["host_pid"], p["rank"]) for p in report["processes"]} == {
        ("node-a", 100, 0), ("node-a", 200, 0), ("node-b", 100, 1), ("node-b", 200, 1)}
    text = format_report(report)
    assert "node-b:100  rank 1" in text
    # The timeline: a lane per rank's processes, in rank order, each named by host:pid.
    from gradetop.model.lanes import phase_lanes
    from gradetop.model.phases import all_phases
    from gradetop.model.views import timeline_data

    labels = [lane.label for lane in timeline_data(m, 20).lanes]
    assert labels == ["r0 node-a:100 python 100.py", "r0 node-a:200 python 200.py",
                      "r1 node-b:100 python 100.py", "r1 node-b:200 python 200.py"]
    t0, t1 = m.timeline.span()
    assert [lane.label for lane in phase_lanes(all_phases(m), t0, t1 + 1, 20, sources=("marker",))] == \
        ["100 phases", "100 phases"]


def test_deltas_after_the_whole_and_a_rejoin_adds_nothing_twice():
    a = ranked(0, "node-a")
    a.journal = Journal(frames_written=len(a.frames), nodes_written=len(a.stacks))
    merger = Merger()
    feed = merger.add("a:1")
    feed.begin("s1", 0.0, 0.0)
    feed_all(feed, whole(a) + [{"kind": "synced"}])
    before = merger.profile.timeline.samples
    # New work on the agent: a new function on a new thread, and a phase mark.
    times = 1011.0 + 0.1 * np.arange(10)
    a.ingest(StackBatch(100, 1011.0, 1012.0, 10, [("main", "/app/train.py", 1), ("gamma", "/app/g.py", 3)],
                        [ThreadSamples(100, 102, "late", times, np.full(10, 0.1, np.float32), [(0, 1)] * 10)]))
    a.ingest(PhaseMark(1011.0, 100, 102, "B", "eval"))
    with a.lock:
        pending = a.journal.take()
        delta = take_chunks(a, pending)
        a.journal.frames_written, a.journal.nodes_written = pending.frames_written, pending.nodes_written
    feed_all(feed, wire(delta))
    m = merger.profile
    assert feed.warnings == []
    assert m.timeline.samples == before + 10 == a.timeline.samples
    assert any(f.function == "gamma" for f in m.frames.frames)
    # The agent went away and came back (same session): it sends everything again.
    feed.begin("s1", 0.0, 0.0)
    feed_all(feed, whole(a) + [{"kind": "synced"}])
    assert m.timeline.samples == a.timeline.samples
    assert len(m.marks) == len(a.marks)
    assert m.tree().total_s[0] == pytest.approx(a.tree().total_s[0])


def test_a_merged_profile_saves_every_host_in_one_file(tmp_path):
    merger = Merger()
    for i, host in enumerate(("n0", "n1", "n2")):
        feed = merger.add(f"{host}:7077")
        feed.begin(host, 0.0, 0.0)
        feed_all(feed, whole(ranked(i, host)))
    path = tmp_path / "many.gtop"
    save(merger.profile, path)
    back = load(path)
    assert back.warnings == []
    assert {(p.host, p.real_pid, p.rank) for p in back.processes.values() if p.real_pid == 100} == {
        ("n0", 100, 0), ("n1", 100, 1), ("n2", 100, 2)}
    assert back.timeline.samples == 3 * small_profile().timeline.samples


def test_damaged_ids_are_a_warning_not_a_crash():
    merger = Merger()
    feed = merger.add("a:1")
    bodies = whole(small_profile())
    samples = next(b for b in bodies if b["kind"] == "samples")
    feed_all(feed, [b for b in bodies if b["kind"] not in ("stacks", "samples")])
    feed_all(feed, [samples])  # stacks it never got
    assert feed.warnings and "unknown stack" in feed.warnings[0]
    assert merger.profile.timeline.samples == 0


def test_clock_offset_takes_the_shortest_round_trip():
    # Agent clock 10 s behind; one slow ping would skew a plain average.
    pings = [(100.0, 90.05, 100.1), (101.0, 91.4, 101.9), (102.0, 92.002, 102.004)]
    clock = clock_offset(pings)
    assert isinstance(clock, Clock)
    assert clock.offset == pytest.approx(10.0, abs=1e-9)
    assert clock.residual == pytest.approx(0.002)


def test_addresses_tokens_and_ranks():
    assert parse_address("node1:9000") == ("node1", 9000)
    assert parse_address("node1") == ("node1", 7077)
    assert parse_address("[::1]:7") == ("::1", 7)
    for bad in ("node:x", "node:70000", "", "a:0"):
        with pytest.raises(ValueError):
            parse_address(bad)
    assert parse_address("127.0.0.1:0", any_port=True) == ("127.0.0.1", 0)
    nonce = b"n" * 16
    assert check_proof(b"secret-token", nonce, proof(b"secret-token", nonce))
    assert not check_proof(b"secret-token", nonce, proof(b"other-token!", nonce))
    assert not check_proof(b"secret-token", nonce, b"")
    assert check_proof(None, nonce, b"")
    assert ranks_of({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "8"}) == (3, 1, 8)
    assert ranks_of({"SLURM_PROCID": "5", "SLURM_NTASKS": "6"}) == (5, None, 6)
    assert ranks_of({"RANK": "x"}) == (None, None, None)
