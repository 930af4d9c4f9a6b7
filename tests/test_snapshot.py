"""Snapshot save/load round trips, and every bad file is one SnapshotError line."""

from __future__ import annotations

import json
import os
import random

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import (
    OutputLine,
    ProcessEnded,
    ProcessReading,
    ResourceBatch,
    SamplerNote,
    StackBatch,
    ThreadSamples,
)
from gradetop.model.chunkfile import MAGIC, pack_chunk
from gradetop.model.snapshot import FORMAT, VERSION, SnapshotError, SnapshotWriter, load, save
from model_helpers import metas, profile_from, records

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow])


def assert_same_profile(a: Profile, b: Profile) -> None:
    meta_a, meta_b = a.meta.to_dict(), b.meta.to_dict()
    if meta_a["end_time"] is None:
        # A file is a closed record: one saved open ends at the last thing it holds.
        assert meta_b["end_time"] is not None
        meta_a.pop("end_time"), meta_b.pop("end_time")
    assert meta_a == meta_b
    assert a.frames.frames == b.frames.frames
    assert a.frames.functions == b.frames.functions
    assert np.array_equal(a.frames.function_of.view(), b.frames.function_of.view())
    for name in ("parent", "frame", "depth", "recursive"):
        x, y = getattr(a.stacks, name).view(), getattr(b.stacks, name).view()
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    for series_name in ("timeline", "process_series", "thread_series"):
        x, y = getattr(a, series_name).rows(), getattr(b, series_name).rows()
        assert list(x) == list(y)
        for col in x:
            assert x[col].dtype == y[col].dtype, (series_name, col)
            assert np.array_equal(x[col], y[col]), (series_name, col)
    assert a.processes == b.processes
    assert list(a.processes) == list(b.processes)
    assert a.threads == b.threads
    assert a.notes == b.notes
    assert list(a.output) == list(b.output)
    assert a.output.maxlen == b.output.maxlen
    # Derived views agree too.
    ta, tb = a.tree(), b.tree()
    assert np.array_equal(ta.total_s, tb.total_s) and np.array_equal(ta.total_n, tb.total_n)


def rich_profile() -> Profile:
    """One of everything, by hand."""
    p = Profile(ProfileMeta(host="box", start_time=1000.0, end_time=1012.5, rate_hz=97.0,
                            command=["python", "train.py", "--lr", "0.1"], target_pid=100, exit_code=0,
                            options={"idle": True, "rate": 100}))
    p.ingest(ResourceBatch(1000.0, [ProcessReading(100, 1, "python", ["python", "train.py"], 999.0, "running",
                                                   1.0, 10_000_000, 0, 4096, 2, {100: (1.0, 1.5), 101: (0.0, 0.0)})]))
    p.ingest(ResourceBatch(1001.0, [ProcessReading(100, 1, "python", ["python", "train.py"], 999.0, "running",
                                                   1.8, 12_000_000, 512, 8192, 2, {100: (1.7, 2.4), 101: (0.1, 0.2)})]))
    frames = [("<module>", "/app/train.py", 1), ("train", "/app/train.py", 20), ("step", "/app/train.py", 30),
              ("train", "/app/train.py", 21)]
    times = 1000.0 + np.arange(10) * 0.1
    w = np.full(10, 0.1, np.float32)
    p.ingest(StackBatch(100, 1000.0, 1001.0, 10, frames, [
        ThreadSamples(100, 100, "MainThread", times, w, [(0, 1, 2)] * 5 + [(0, 1, 3, 2)] * 3 + [(0,)] * 2),
        ThreadSamples(100, 101, "loader", times, w, [()] * 10),
    ], {100: "python train.py"}))
    p.ingest(SamplerNote(1001.0, 200, "not-python", "pid 200 (bash) is not a Python process"))
    p.ingest(OutputLine(1000.5, "stdout", "epoch 1 loss 0.5"))
    p.ingest(OutputLine(1000.6, "stderr", "warning: ünïcode ✓"))
    p.ingest(ProcessEnded(100, 1012.0, 0))
    p.ingest(ProcessEnded(300, 1012.0, None))
    return p


def test_round_trip_by_hand(tmp_path):
    p = rich_profile()
    path = tmp_path / "run.gtop"
    save(p, path)
    q = load(path)
    assert_same_profile(p, q)
    assert q.processes[100].exit_code == 0
    assert q.processes[100].sampled
    assert q.threads[(100, 101)].name == "loader"
    assert q.stacks.recursive.view().any()  # train -> step -> train rebuilt as recursive
    assert q.timeline.samples == 20
    # Saving leaves no temporary file behind.
    assert os.listdir(tmp_path) == ["run.gtop"]


def test_round_trip_of_an_empty_profile(tmp_path):
    p = Profile(ProfileMeta(host="h", start_time=5.0))
    save(p, tmp_path / "empty.gtop")
    assert_same_profile(p, load(tmp_path / "empty.gtop"))


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / "run.gtop"
    save(Profile(ProfileMeta(host="h", start_time=5.0)), path)
    save(rich_profile(), path)
    assert load(path).timeline.samples == 20
    assert sorted(os.listdir(tmp_path)) == ["run.gtop"]


def test_loaded_profile_keeps_ingesting(tmp_path):
    save(rich_profile(), tmp_path / "run.gtop")
    q = load(tmp_path / "run.gtop")
    q.ingest(StackBatch(100, 1002.0, 1003.0, 1, [("train", "/app/train.py", 20), ("new", "/app/new.py", 1)],
                        [ThreadSamples(100, 100, "MainThread", np.array([1002.5]), np.array([0.1], np.float32),
                                       [(0, 1)])]))
    assert q.timeline.samples == 21
    assert len(q.frames) == 5  # `train` line 20 is the same interned frame


@SETTINGS
@given(records(), metas())
def test_round_trip_property(tmp_path_factory, recs, meta):
    p = profile_from(recs, meta)
    path = tmp_path_factory.mktemp("snap") / "p.gtop"
    save(p, path)
    assert_same_profile(p, load(path))


# ---- bad files -------------------------------------------------------------------------------


def expect_error(path, *words: str) -> str:
    with pytest.raises(SnapshotError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message and message
    assert str(path) in message
    for word in words:
        assert word in message, message
    return message


def test_random_bytes(tmp_path):
    rng = random.Random(1234)
    for i in range(50):
        path = tmp_path / f"random{i}.gtop"
        path.write_bytes(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))))
        expect_error(path)
    path = tmp_path / "random.gtop"
    path.write_bytes(b"\xc1" + os.urandom(64))  # 0xc1: a byte msgpack never uses
    expect_error(path, "not a gradetop snapshot")


def test_json_file(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"format": FORMAT, "version": 1, "functions": []}))
    expect_error(path, "not a gradetop snapshot")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.gtop"
    path.write_bytes(b"")
    expect_error(path, "empty")


def test_truncated_snapshot_every_cut(tmp_path):
    """A cut inside the header is an error; anywhere after it, the file opens with what came before the cut."""
    good = tmp_path / "good.gtop"
    p = rich_profile()
    save(p, good)
    data = good.read_bytes()
    header_len = len(MAGIC) + len(pack_chunk({"kind": "header", "format": FORMAT, "version": VERSION,
                                              "gradetop": p.meta.gradetop_version}))
    path = tmp_path / "cut.gtop"
    for cut in range(1, len(data)):
        path.write_bytes(data[:cut])
        if cut < header_len:
            expect_error(path, "truncated")
            continue
        q = load(path)
        assert q.timeline.samples in (0, 20), cut
        assert any("torn" in w or "did not finish" in w for w in q.warnings), cut
    assert load(good).warnings == []


def test_newer_version(tmp_path):
    path = tmp_path / "future.gtop"
    path.write_bytes(MAGIC + pack_chunk({"kind": "header", "format": FORMAT, "version": 99, "gradetop": "9.0"}))
    message = expect_error(path, "newer", "99", "upgrade")
    assert str(VERSION) in message


def test_wrong_format_map(tmp_path):
    path = tmp_path / "other.gtop"
    path.write_bytes(MAGIC + pack_chunk({"kind": "header", "format": "something-else", "version": 1}))
    expect_error(path, "not a gradetop snapshot")
    path.write_bytes(msgpack.packb({"format": "something-else", "version": 1}))
    expect_error(path, "not a gradetop snapshot")
    path.write_bytes(msgpack.packb([FORMAT, 1]))
    expect_error(path, "not a gradetop snapshot")


def test_header_without_body_is_an_empty_unfinished_recording(tmp_path):
    path = tmp_path / "header.gtop"
    path.write_bytes(MAGIC + pack_chunk({"kind": "header", "format": FORMAT, "version": VERSION}))
    q = load(path)
    assert q.timeline.samples == 0 and any("did not finish" in w for w in q.warnings)


def test_directory(tmp_path):
    expect_error(tmp_path, "directory")


def test_missing_path(tmp_path):
    expect_error(tmp_path / "nope.gtop", "no such file")


def test_format_1_files_still_open():
    q = load(os.path.join(os.path.dirname(__file__), "data", "demo.gtop"))
    assert q.timeline.samples > 0 and q.meta.command


# ---- damage: checksums catch it, ids are checked, one line says which chunk -----------------------


def _chunks_of(path) -> list[dict]:
    from gradetop.model.chunkfile import Chunk, read_chunks

    return [c.body for c in read_chunks(path.read_bytes()) if isinstance(c, Chunk)]


def _rewrite(path, bodies) -> None:
    path.write_bytes(MAGIC + b"".join(pack_chunk(b) for b in bodies))


def test_checksummed_chunk_with_ids_out_of_range_is_skipped(tmp_path):
    """A chunk that passes its checksum but names stacks or frames the file does not hold is refused."""
    path = tmp_path / "run.gtop"
    save(rich_profile(), path)
    bodies = _chunks_of(path)
    stacks = next(b for b in bodies if b["kind"] == "stacks")
    frame = np.frombuffer(stacks["frame"]["data"], dtype="<i4").copy()
    frame[-1] = 77
    stacks["frame"]["data"] = frame.tobytes()
    _rewrite(path, bodies)
    q = load(path)
    assert q.timeline.samples == 0
    assert any("stacks" in w and "out of range" in w for w in q.warnings)


def test_meta_that_is_not_a_map_is_skipped(tmp_path):
    path = tmp_path / "run.gtop"
    save(rich_profile(), path)
    bodies = _chunks_of(path)
    next(b for b in bodies if b["kind"] == "meta")["meta"] = [1, 2]
    _rewrite(path, bodies)
    q = load(path)
    assert q.timeline.samples == 20 and any("(meta)" in w for w in q.warnings)


def test_single_byte_damage_is_caught_and_never_invents_samples(tmp_path):
    """Every byte changed in turn: a clear error in the header, else a warning and no more samples than saved."""
    good = tmp_path / "good.gtop"
    save(rich_profile(), good)
    data = good.read_bytes()
    path = tmp_path / "flipped.gtop"
    rng = random.Random(7)
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(damaged))
        try:
            q = load(path)
        except SnapshotError as e:
            assert "\n" not in str(e)
            continue
        assert q.timeline.samples <= 20, i
        assert q.warnings, i  # nothing damaged loads silently
        q.tree()


# ---- streaming while recording ---------------------------------------------------------------------


def test_stream_opens_at_every_flush_and_closes_into_one_piece(tmp_path):
    path = tmp_path / "live.gtop"
    p = Profile(ProfileMeta(host="h", start_time=1000.0))
    writer = SnapshotWriter(p, str(path))
    src = rich_profile()
    for t in range(3):
        p.ingest(StackBatch(100, 1000.0 + t, 1001.0 + t, 10, [("main", "/a.py", 1), ("f", "/a.py", 2 + t)],
                            [ThreadSamples(100, 100, "MainThread", 1000.0 + t + np.arange(10) * 0.1,
                                           np.full(10, 0.1, np.float32), [(0, 1)] * 10)]))
        p.ingest(OutputLine(1000.0 + t, "stdout", f"step {t}"))
        assert writer.flush()
        q = load(path)
        assert q.timeline.samples == 10 * (t + 1)
        assert [o.text for o in q.output] == [f"step {i}" for i in range(t + 1)]
        assert any("did not finish" in w for w in q.warnings)
        assert q.meta.end_time == pytest.approx(1000.9 + t)  # a cut-off file is closed at its last sample
    assert writer.close() is None
    q = load(path)
    assert q.warnings == [] and q.timeline.samples == 30
    assert sorted(os.listdir(tmp_path)) == ["live.gtop"]
    del src


def test_stream_keeps_rows_that_memory_compacts(tmp_path):
    """The file gets every sample as ingested, even those the in-memory timeline later merges."""
    from gradetop.model.timeline import Compaction, Timeline

    p = Profile(ProfileMeta(host="h", start_time=0.0))
    p.timeline = Timeline((Compaction(age_s=1.0, bucket_s=1.0),))
    path = tmp_path / "live.gtop"
    writer = SnapshotWriter(p, str(path))
    for t in range(5):
        p.ingest(StackBatch(1, t, t + 1, 100, [("f", "/a.py", 1)],
                            [ThreadSamples(1, 1, "Main", t + np.arange(100) * 0.01, np.full(100, 0.01, np.float32),
                                           [(0,)] * 100)]))
        p.timeline.compact(min_new_rows=1)
        writer.flush()
    assert len(p.timeline) < 500
    assert len(load(path).timeline) == 500


def test_disk_full_while_streaming_keeps_what_was_written(tmp_path):
    """RLIMIT_FSIZE stands in for a full disk: writing stops with one line, earlier chunks stay readable."""
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "full.gtop"
    code = textwrap.dedent(f"""
        import resource, numpy as np
        from gradetop.model.profile import Profile, ProfileMeta
        from gradetop.model.records import StackBatch, ThreadSamples
        from gradetop.model.snapshot import SnapshotWriter
        p = Profile(ProfileMeta(host="h", start_time=0.0))
        w = SnapshotWriter(p, {str(path)!r})
        def batch(t):
            return StackBatch(1, t, t + 1, 100, [("f", "/a.py", int(t)), ("g%d" % t, "/b.py", 1)],
                              [ThreadSamples(1, 1, "Main", t + np.arange(100) * 0.01,
                                             np.full(100, 0.01, np.float32), [(0, 1)] * 100)])
        p.ingest(batch(0)); assert w.flush()
        resource.setrlimit(resource.RLIMIT_FSIZE, (w._file.tell() + 300, w._file.tell() + 300))
        for t in range(1, 40):
            p.ingest(batch(t))
            ok = w.flush()
        print(w.error)
        print(p.timeline.samples)
        print(w.close())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    error, samples, closing = out.stdout.strip().splitlines()
    assert "cannot write" in error and "in memory" in error
    assert samples == "4000"  # memory kept everything
    assert "cannot" in closing
    q = load(path)
    assert q.timeline.samples >= 100  # the chunks before the disk filled


def test_gpu_and_host_readings_stream_and_save_whole(tmp_path):
    from gradetop.model.gpu_records import GpuBatch, GpuDeviceReading, GpuProcessReading, GpuStatus, HostReading

    def device(t: float) -> GpuDeviceReading:
        return GpuDeviceReading(0, "GPU-1", "H200", util=50.0 + t % 7, mem_util=10.0, mem_used=2 << 30,
                                mem_total=141 << 30, power_w=300.0, power_limit_w=700.0, temp_c=50.0,
                                sm_clock_mhz=1900.0, mem_clock_mhz=2600.0, pcie_rx_bps=1e9, pcie_tx_bps=1e8,
                                throttle=0, sm_active=float("nan"))

    p = Profile(ProfileMeta(host="h", start_time=1000.0))
    path = tmp_path / "gpu.gtop"
    writer = SnapshotWriter(p, str(path))
    p.ingest(GpuStatus(1000.0, "ok", "GPU: 1 device"))
    for i in range(20):
        t = 1000.0 + 0.25 * i
        p.ingest(GpuBatch(t, (device(t),), (GpuProcessReading(0, 100, 100, 1 << 30, 20.0),)))
        p.ingest(HostReading(t, (10.0, 90.0), 1.5, 8 << 30, 16 << 30, 0, 0, 100 * i, 50 * i, 10 * i, 5 * i))
        if i % 5 == 4:
            writer.flush()
    streamed = load(path)
    assert writer.close() is None
    whole = load(path)
    for q in (streamed, whole):
        assert q.gpu.state == "ok" and set(q.gpu.devices) == {0}
        assert len(q.gpu.series[0]) == len(p.gpu.series[0]) == 20
        assert np.array_equal(q.gpu.series[0].t, p.gpu.series[0].t)
        assert len(q.gpu.host) == len(p.gpu.host)
    assert whole.warnings == [] and streamed.warnings
