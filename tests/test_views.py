"""timeline_data and the process table on a profile written by hand: lanes, dominant functions, activity, CPU."""

from __future__ import annotations

import numpy as np

from gradetop.model.processes import ProcessInfo, ThreadInfo
from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.views import timeline_data

T0 = 1000.0
MAIN, WORKER, HELPER = 100, 101, 200


def sampled(profile: Profile, pid: int, tid: int, t: np.ndarray, active: float, *names: str) -> None:
    frames = [profile.frames.intern(name, "/app/job.py", 1 + i) for i, name in enumerate(names)]
    node = profile.stacks.intern(frames)
    profile.timeline.append(t=t, w=np.float32(0.1), active=np.float32(active), n=1, stack=node, pid=pid,
                            tid=tid, flags=0)


def job() -> Profile:
    """Process 100: its main thread loads for 5 s then trains for 5 s, a worker waits throughout.
    Process 200 has readings but no stacks (not Python)."""
    profile = Profile(ProfileMeta(host="h", start_time=T0, end_time=T0 + 10))
    profile.processes[MAIN] = ProcessInfo(MAIN, 1, ["/usr/bin/python3", "/app/job.py"], sampled=True)
    profile.processes[HELPER] = ProcessInfo(HELPER, MAIN, ["/bin/sh", "-c", "sleep 99"])
    profile.threads[(MAIN, WORKER)] = ThreadInfo(MAIN, WORKER, "loader")
    ticks = T0 + 0.05 + np.arange(100) * 0.1
    sampled(profile, MAIN, MAIN, ticks[:50], 0.1, "main", "load")
    sampled(profile, MAIN, MAIN, ticks[50:], 0.1, "main", "train")
    sampled(profile, MAIN, WORKER, ticks, 0.0, "worker", "wait")
    profile.process_series.append(t=np.array([T0, T0 + 10]), pid=MAIN, cpu_s=np.array([1.0, 6.0]),
                                  rss=np.array([100, 300]), read_bytes=0, write_bytes=0, threads=2)
    return profile


def function_id(profile: Profile, name: str) -> int:
    return next(i for i, (function, _) in enumerate(profile.frames.functions) if function == name)


def test_process_lanes_name_what_the_busy_thread_did():
    profile = job()
    data = timeline_data(profile, bins=10)
    assert (data.t0, data.t1, data.bins) == (T0, T0 + 10, 10)
    assert [lane.key for lane in data.lanes] == [(MAIN, None), (HELPER, None)], "a process without stacks too"
    main, helper = data.lanes
    assert main.label == "100 python3 job.py" and helper.label == "200 sh -c sleep 99"
    load, train = function_id(profile, "load"), function_id(profile, "train")
    assert list(main.dominant) == [load] * 5 + [train] * 5, "the idle worker only breaks ties"
    assert np.allclose(main.activity, 0.5), "one of two threads ran"
    assert np.allclose(main.cpu, 50.0) and main.rss[-1] == 300
    assert list(helper.dominant) == [-1] * 10 and np.isnan(helper.activity).all() and helper.cpu is None


def test_thread_lanes_split_each_thread_at_its_own_depth():
    profile = job()
    data = timeline_data(profile, bins=10, by_thread=True)
    assert [lane.key for lane in data.lanes] == [(MAIN, MAIN), (MAIN, WORKER), (HELPER, None)]
    main, worker, _ = data.lanes
    assert worker.label == "101 loader" and worker.cpu is None
    assert list(worker.dominant) == [function_id(profile, "wait")] * 10
    assert np.allclose(worker.activity, 0.0) and np.allclose(main.activity, 1.0)


def test_a_window_draws_only_its_samples():
    profile = job()
    data = timeline_data(profile, bins=4, t0=T0 + 6, t1=T0 + 10)
    assert list(data.lanes[0].dominant) == [function_id(profile, "train")] * 4
    empty = timeline_data(profile, bins=0, t0=T0 + 20, t1=T0 + 20)
    assert empty.bins == 1 and empty.t1 == T0 + 21, "never an empty span"


def test_ended_workers_of_one_kind_are_one_row_and_the_running_ones_stay():
    """A DataLoader without persistent workers starts new ones every epoch: the ended ones of a kind are
    one row (the last of them, standing for how many), and what runs is never folded."""
    from gradetop.model.process_rows import process_rows
    from gradetop.model.records import ProcessEnded, ProcessReading, ResourceBatch

    profile = Profile(ProfileMeta(start_time=0.0))

    def reading(pid: int, ppid: int, cmd: list[str]) -> ProcessReading:
        return ProcessReading(pid, ppid, "python", cmd, float(pid), "running", 0.1, 1 << 20, 0, 0, 1, {})

    worker, other = ["python", "train.py"], ["python", "-c", "other"]
    profile.ingest(ResourceBatch(1.0, [reading(1, 0, worker)] + [reading(10 + k, 1, worker) for k in range(9)]
                                 + [reading(30 + k, 1, other) for k in range(3)]))
    for k in range(8):  # eight workers ended, one runs on; the three others ended too, but are few
        profile.ingest(ProcessEnded(10 + k, 2.0 + k, 0))
    for k in range(3):
        profile.ingest(ProcessEnded(30 + k, 2.0, 0))
    rows = process_rows(profile, now=20.0)
    assert [(r.pid, r.alike) for r in rows] == [(1, 1), (17, 8), (18, 1), (30, 1), (31, 1), (32, 1)], rows
    assert rows[1].state == "exit 0" and rows[1].depth == 1
