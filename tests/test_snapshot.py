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
from gradetop.model.snapshot import FORMAT, VERSION, SnapshotError, load, save, to_chunks
from model_helpers import metas, profile_from, records

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow])


def assert_same_profile(a: Profile, b: Profile) -> None:
    assert a.meta.to_dict() == b.meta.to_dict()
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
    good = tmp_path / "good.gtop"
    save(rich_profile(), good)
    data = good.read_bytes()
    header_len = len(msgpack.packb(to_chunks(rich_profile())[0], use_bin_type=True))
    cuts = sorted(set(range(0, len(data), max(1, len(data) // 300))) | {1, header_len - 1, header_len,
                                                                           header_len + 1, len(data) - 1})
    for cut in cuts:
        path = tmp_path / f"cut{cut}.gtop"
        path.write_bytes(data[:cut])
        message = expect_error(path)
        if cut >= header_len:
            assert "truncated" in message, (cut, message)
        elif cut == 0:
            assert "empty" in message
    load(good)  # the uncut file still loads


def test_newer_version(tmp_path):
    path = tmp_path / "future.gtop"
    path.write_bytes(msgpack.packb({"format": FORMAT, "version": 99}) + msgpack.packb({"kind": "profile"}))
    message = expect_error(path, "newer", "99")
    assert str(VERSION) in message


def test_wrong_format_map(tmp_path):
    path = tmp_path / "other.gtop"
    path.write_bytes(msgpack.packb({"format": "something-else", "version": 1}))
    expect_error(path, "not a gradetop snapshot")
    path.write_bytes(msgpack.packb({"version": 1}))
    expect_error(path, "not a gradetop snapshot")
    path.write_bytes(msgpack.packb([FORMAT, 1]))
    expect_error(path, "not a gradetop snapshot")


def test_header_without_body(tmp_path):
    path = tmp_path / "header.gtop"
    path.write_bytes(msgpack.packb({"format": FORMAT, "version": VERSION}))
    expect_error(path, "truncated")


def test_body_of_the_wrong_shape(tmp_path):
    path = tmp_path / "shape.gtop"
    path.write_bytes(msgpack.packb({"format": FORMAT, "version": VERSION}) + msgpack.packb({"kind": "profile"}))
    expect_error(path, "damaged")


def test_directory(tmp_path):
    expect_error(tmp_path, "directory")


def test_missing_path(tmp_path):
    expect_error(tmp_path / "nope.gtop", "no such file")


# ---- damaged bodies: known gaps ------------------------------------------------------------------


def _body_with(tmp_path, mutate) -> str:
    header, chunks = to_chunks(rich_profile())
    mutate(chunks[0])
    path = tmp_path / "damaged.gtop"
    path.write_bytes(msgpack.packb(header, use_bin_type=True) + msgpack.packb(chunks[0], use_bin_type=True))
    return path


def _packed(values, dtype="<i4") -> dict:
    return {"dtype": dtype, "data": np.asarray(values, dtype=dtype).tobytes()}


DAMAGE = {
    # A trie node whose parent is not an earlier node: add_node indexes depth[] out of range.
    "parent-out-of-range": lambda body: body["tree"].update(parent=_packed([-1, 0, 1, 99, 3, 0, 5])),
    # A trie node naming a frame that is not in the frame table.
    "frame-out-of-range": lambda body: body["tree"].update(frame=_packed([-1, 0, 1, 2, 77, 0, 0])),
    # `meta` (or a process entry) that is not a map: .items() on an int/list.
    "meta-not-a-map": lambda body: body.update(meta=[1, 2]),
    "process-not-a-map": lambda body: body.update(processes=[5]),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_body_raises_snapshot_error(tmp_path, damage):
    expect_error(_body_with(tmp_path, DAMAGE[damage]), "damaged")


def test_timeline_columns_of_unequal_length(tmp_path):
    def shorten(body):
        w = body["timeline"]["w"]
        w["data"] = w["data"][:4]
    expect_error(_body_with(tmp_path, shorten), "damaged")


def test_single_byte_damage_never_escapes_as_another_exception(tmp_path):
    good = tmp_path / "good.gtop"
    save(rich_profile(), good)
    data = good.read_bytes()
    path = tmp_path / "flipped.gtop"
    for i in range(len(data)):
        for value in (0x00, 0x7F, 0xFF, data[i] ^ 0x01):
            damaged = bytearray(data)
            damaged[i] = value
            path.write_bytes(bytes(damaged))
            try:
                load(path)
            except SnapshotError as e:
                assert "\n" not in str(e)
