"""Phases and verdicts on real ML jobs, read as a user reads them (issue 10).

Real runs under `gradetop record` (one recording per workload, shared by its tests):

- workloads/torch_train.py: a PyTorch CPU training loop with 2 DataLoader
  workers, input-bound on purpose (`--mode input`) and compute-bound
  (`--mode compute`); it times its own next(iter), forward, backward and
  optimizer step: the truth the breakdown is checked against;
- workloads/sklearn_grid.py: GridSearchCV(SVC, n_jobs=2), loky workers that
  import scikit-learn while unpickling their first task;
- workloads/futures_pipeline.py: a parent waiting seconds at a time on 2
  busy ProcessPoolExecutor workers: waiting, never stuck.

Every run is checked for: no phase named after a runtime internal, no share
of the run over 100%, no nested phase shorter than two samples. Then the
parts on stacks and profiles written by hand (naming, jitter, stuck).
"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import WORKLOADS, gradetop, kill_tree
from gradetop.model.phase_costs import cost_phases
from gradetop.model.phases.auto import AUTO_MIN_S
from gradetop.model.phase_summary import covered_s, summarize
from gradetop.model.phases import all_phases, rule_phases
from gradetop.model.phases.naming import Namer
from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import ProcessReading, ResourceBatch, StackBatch, ThreadSamples
from gradetop.model.rules import BUILTIN_RULES
from gradetop.model.series import PROCESS_COLUMNS, THREAD_COLUMNS, Series
from gradetop.model.snapshot import load
from gradetop.model.threads import thread_rows
from gradetop.model.timeline import Timeline

RUNTIME = {"_find_and_load", "_find_and_load_unlocked", "_run_code", "_run_module_as_main", "_get_module_details",
           "run_path", "BaseProcess._bootstrap", "BaseProcess.run", "prepare", "spawn_main", "_main",
           "_process_worker", "_worker_loop", "Queue.get", "_CallItem.__call__", "<module>", "Thread.run",
           "Thread._bootstrap_inner", "worker", "fetch", "_MapDatasetFetcher.fetch", "exec_module",
           "_call_with_frames_removed", "_load_unlocked"}
"""Frames of the interpreter, multiprocessing, loky, concurrent.futures, torch's worker loop: never a phase's name."""
SAMPLE_S = 0.01
"""The recordings sample at 100 Hz."""


def record(tmp_path_factory, name: str, *args: str) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp(name)
    out, truth = tmp / f"{name}.gtop", tmp / "truth.json"
    result = gradetop("record", "-o", str(out), "--", sys.executable, *args, "--truth", str(truth), timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(gradetop("report", str(out), "--json").stdout)
    text = gradetop("report", str(out)).stdout
    return SimpleNamespace(out=out, report=report, text=text, truth=json.loads(truth.read_text()))


@pytest.fixture(scope="module")
def torch_input(tmp_path_factory, ptrace):
    pytest.importorskip("torch")
    return record(tmp_path_factory, "torch_input", str(WORKLOADS / "torch_train.py"), "--mode", "input")


@pytest.fixture(scope="module")
def torch_compute(tmp_path_factory, ptrace):
    pytest.importorskip("torch")
    return record(tmp_path_factory, "torch_compute", str(WORKLOADS / "torch_train.py"), "--mode", "compute")


@pytest.fixture(scope="module")
def sklearn_grid(tmp_path_factory, ptrace):
    pytest.importorskip("sklearn")
    pytest.importorskip("joblib")
    return record(tmp_path_factory, "sklearn", str(WORKLOADS / "sklearn_grid.py"))


@pytest.fixture(scope="module")
def futures(tmp_path_factory, ptrace):
    return record(tmp_path_factory, "futures", str(WORKLOADS / "futures_pipeline.py"))


RUNS = ["torch_input", "torch_compute", "sklearn_grid", "futures"]


def check_reads_as_a_user_would(run: SimpleNamespace) -> None:
    report = run.report
    assert report["version"] == 2
    assert report["phases"], run.text
    for p in report["phases"]:
        words = [w.rsplit(": ", 1)[-1] for w in p["path"].split("/")]
        assert not set(words) & RUNTIME, (p["path"], p["source"])
    # No share of the run over 100%: each moment counts once however many processes ran the phase.
    groups: dict[str, list[dict]] = {}
    for p in report["phases"]:
        groups.setdefault((p["type"], p["source"]), []).append(p)
    for key, members in groups.items():
        assert covered_s([(p["start_s"], p["end_s"]) for p in members]) <= report["duration_s"] + 0.05, key
    section = run.text.split("\nPhases (", 1)[1].split("\n\n", 1)[0]
    shares = [int(line.rsplit(None, 1)[-1].rstrip("%")) for line in section.splitlines()[3:]
              if line.rstrip().endswith("%") and not line.lstrip().startswith(("↳", "≡", "⇒"))]
    assert shares and max(shares) <= 100, section
    # Phases in the same model as the UI's table: share of the run <= 1.
    profile = load(run.out)
    costs = cost_phases(profile, all_phases(profile))
    assert all(g.share <= 1.0 for g in summarize(costs, profile.duration_s))
    # No nested phase shorter than two samples.
    for p in report["phases"]:
        if p["depth"] > 0 and p["source"] != "marker":
            assert p["duration_s"] >= 1.5 * SAMPLE_S, p
    assert all(len(line) <= 100 for line in run.text.splitlines())


@pytest.mark.attach
@pytest.mark.parametrize("name", RUNS)
def test_phases_read_as_a_user_would(name, request):
    check_reads_as_a_user_would(request.getfixturevalue(name))


def roles(report: dict) -> dict[int, str]:
    return {p["pid"]: p["role"] for p in report["processes"]}


@pytest.mark.attach
def test_input_bound_breakdown_shows_the_wait_the_loop_measured(torch_input):
    report, truth = torch_input.report, torch_input.truth
    assert sorted(roles(report).values()).count("DataLoader worker") == 2, report["processes"]
    epochs = [p for p in report["phases"] if p["name"].endswith("train_epoch") and p["breakdown"]]
    assert epochs, [(p["path"], p["breakdown"]) for p in report["phases"]]
    measured = sum(p["breakdown"].get("waiting for input", 0.0) for p in epochs) / sum(
        sum(p["breakdown"].values()) for p in epochs)
    epoch_s = sum(end - start for start, end in truth["train_epoch"])
    wanted = truth["next"] / epoch_s
    print(f"input wait: breakdown {measured:.1%}, the loop's own next(iter) {wanted:.1%}")
    assert abs(measured - wanted) <= 0.10, (measured, wanted)
    longest = max(epochs, key=lambda p: p["duration_s"])
    if measured >= 0.5:  # how input-bound it came out depends on the machine's load: the verdict follows
        assert longest["verdict_kind"] == "input", longest["verdict"]
    assert longest["headline"].startswith("train_epoch: ") and "waiting for DataLoader workers" in longest["headline"]
    assert "if input were free, train_epoch would take" in longest["what_if"]
    # Workers' phases carry their role, the main thread's do not.
    workers = [p for p in report["phases"] if p["pid"] != report["processes"][0]["pid"]]
    assert workers and all(p["path"].startswith("DataLoader worker: ") for p in workers), [p["path"] for p in workers]


@pytest.mark.attach
def test_compute_bound_breakdown_is_forward_backward_and_optimizer(torch_compute):
    report, truth = torch_compute.report, torch_compute.truth
    epochs = [p for p in report["phases"] if p["name"].endswith("train_epoch") and p["breakdown"]]
    assert epochs, [(p["path"], p["breakdown"]) for p in report["phases"]]
    parts = {}
    for p in epochs:
        for k, v in p["breakdown"].items():
            parts[k] = parts.get(k, 0.0) + v
    total = sum(parts.values())
    epoch_s = sum(end - start for start, end in truth["train_epoch"])
    compute = (parts.get("forward", 0) + parts.get("backward", 0) + parts.get("optimizer", 0)) / total
    wanted = (truth["forward"] + truth["backward"] + truth["optimizer"]) / epoch_s
    print(f"compute: breakdown {compute:.1%}, the loop's own {wanted:.1%}; "
          f"wait {parts.get('waiting for input', 0) / total:.1%} vs {truth['next'] / epoch_s:.1%}")
    assert abs(compute - wanted) <= 0.15, (parts, truth)
    # next() takes about 4 ms a step here, under half a tick: at 100 Hz on 2 busy cores the sampled share
    # has read 4-5 points under the loop's own timer on a quiet machine and 10.6 points once on CI's kind.
    assert abs(parts.get("waiting for input", 0) / total - truth["next"] / epoch_s) <= 0.15


@pytest.mark.attach
def test_sklearn_workers_import_then_fit(sklearn_grid):
    report = sklearn_grid.report
    assert sorted(roles(report).values()).count("worker") >= 2, report["processes"]
    worker_imports = [i for i in report["imports"] if i["role"] == "worker" and i["package"] == "sklearn"]
    assert len({i["pid"] for i in worker_imports}) >= 2, report["imports"]
    names = {p["name"] for p in report["phases"]}
    assert any(n.startswith("worker: fit") for n in names), names
    # An automatic phase lasts AUTO_MIN_S at least: the workers' import is one where it took that long
    # (scikit-learn 1.9 imports in 0.5-0.6 s on a quiet 2-core machine, over a second on a busy one).
    imports = [p for p in report["phases"] if p["name"] == "worker: import sklearn"]
    if max(i["seconds"] for i in worker_imports) >= AUTO_MIN_S + 0.1:
        assert imports, [p["path"] for p in report["phases"]]
    assert all(p["verdict"].startswith("import sklearn (worker, receiving its first task)") for p in imports), \
        [p["verdict"] for p in imports]


def cut(profile: Profile, t: float) -> Profile:
    """The profile as a live view saw it at time t (samples and readings up to t, nothing ended yet)."""
    out = Profile(ProfileMeta(**{**profile.meta.to_dict(), "end_time": None}))
    out.stacks = profile.stacks
    tl = profile.timeline
    rows = tl.rows(tl.select(None, t))
    out.timeline = Timeline()
    out.timeline.append(**rows)
    for name, columns in (("process_series", PROCESS_COLUMNS), ("thread_series", THREAD_COLUMNS)):
        series = getattr(profile, name)
        keep = series.t <= t
        fresh = Series(columns)
        fresh.append(**{c: getattr(series, c)[keep] for c in columns})
        setattr(out, name, fresh)
    out.processes = {pid: type(info)(**{**info.to_dict(), "end_time": None}) for pid, info in profile.processes.items()}
    out.threads = dict(profile.threads)
    out.taken_at = t
    return out


@pytest.mark.attach
def test_a_parent_waiting_on_busy_workers_is_not_stuck(futures):
    profile = load(futures.out)
    start, end = futures.truth["pipeline"]
    main = profile.meta.target_pid
    checked = 0
    for at in np.linspace(start + 2.0, end - 0.5, 5):
        live = cut(profile, float(at))
        rows = [r for r in thread_rows(live, stuck_after_s=1.0) if r.pid == main]
        assert rows and not any(r.stuck for r in rows), [(r.tid, r.wait_reason, r.unchanged_s) for r in rows]
        checked += sum(bool(r.waiting_on) for r in rows)
    assert checked, "the parent's waits were seen, and said whom they wait on"


# ---- by hand -------------------------------------------------------------------------------------

SITE = "/venv/lib/python3.11/site-packages"
STDLIB = "/usr/lib/python3.11"
USER = "/home/me/train.py"


def names_of(stack: list[tuple[str, str]]) -> tuple[str, ...]:
    profile = Profile(ProfileMeta(host="test", start_time=0.0, target_pid=1))
    ids = [profile.frames.intern(function, file, i + 1) for i, (function, file) in enumerate(stack)]
    return Namer(profile.stacks).labels(profile.stacks.intern(ids))


def test_bootstrap_frames_name_nothing_and_a_forked_worker_starts_at_its_task():
    forked = [("<module>", USER), ("main", USER), ("_BaseDataLoaderIter.__init__", f"{SITE}/torch/utils/data/dataloader.py"),
              ("Popen._launch", f"{STDLIB}/multiprocessing/popen_fork.py"),
              ("BaseProcess._bootstrap", f"{STDLIB}/multiprocessing/process.py"),
              ("BaseProcess.run", f"{STDLIB}/multiprocessing/process.py"),
              ("_worker_loop", f"{SITE}/torch/utils/data/_utils/worker.py"),
              ("_MapDatasetFetcher.fetch", f"{SITE}/torch/utils/data/_utils/fetch.py"),
              ("Shards.__getitem__", USER), ("decode", USER)]
    assert names_of(forked) == ("Shards.__getitem__", "decode")
    spawned = [("<module>", "<string>"), ("spawn_main", f"{STDLIB}/multiprocessing/spawn.py"),
               ("_main", f"{STDLIB}/multiprocessing/spawn.py"), ("BaseProcess._bootstrap", f"{STDLIB}/multiprocessing/process.py"),
               ("worker", f"{STDLIB}/multiprocessing/pool.py"), ("mapstar", f"{STDLIB}/multiprocessing/pool.py"),
               ("decode_shard", USER)]
    assert names_of(spawned) == ("decode_shard",)
    runpy = [("_run_module_as_main", "<frozen runpy>"), ("_run_code", "<frozen runpy>"), ("<module>", USER), ("main", USER)]
    assert names_of(runpy) == ("main",)


def test_imports_collapse_to_their_package_even_inside_another_call():
    lazy = [("<module>", USER), ("main", USER), ("SGD.__init__", f"{SITE}/torch/optim/sgd.py"),
            ("_find_and_load", "<frozen importlib._bootstrap>"), ("_load_unlocked", "<frozen importlib._bootstrap>"),
            ("exec_module", "<frozen importlib._bootstrap_external>"), ("<module>", f"{SITE}/torch/_dynamo/__init__.py"),
            ("_find_and_load", "<frozen importlib._bootstrap>"), ("<module>", f"{SITE}/sympy/__init__.py")]
    assert names_of(lazy) == ("main", "import torch")
    first_task = [("BaseProcess._bootstrap", f"{STDLIB}/multiprocessing/process.py"),
                  ("_process_worker", f"{SITE}/joblib/externals/loky/process_executor.py"),
                  ("Queue.get", f"{STDLIB}/multiprocessing/queues.py"),
                  ("_find_and_load", "<frozen importlib._bootstrap>"), ("<module>", f"{SITE}/sklearn/svm/__init__.py")]
    assert names_of(first_task) == ("import sklearn",)


def test_known_library_calls_get_the_names_users_know():
    fit = [("BaseProcess._bootstrap", f"{STDLIB}/multiprocessing/process.py"),
           ("_process_worker", f"{SITE}/joblib/externals/loky/process_executor.py"),
           ("_fit_and_score", f"{SITE}/sklearn/model_selection/_validation.py"),
           ("BaseLibSVM.fit", f"{SITE}/sklearn/svm/_base.py"), ("BaseLibSVM._dense_fit", f"{SITE}/sklearn/svm/_base.py")]
    assert names_of(fit) == ("fit (BaseLibSVM)",)
    step = [("<module>", USER), ("train_epoch", USER), ("SGD.step", f"{SITE}/torch/optim/sgd.py"),
            ("_single_tensor_sgd", f"{SITE}/torch/optim/sgd.py")]
    assert names_of(step) == ("train_epoch", "optimizer step")


def test_user_code_can_be_told():
    from gradetop.model.phases.naming import UserCode

    vendored = f"{SITE}/mylib/train.py"
    assert not UserCode()(vendored) and UserCode()(USER)
    assert UserCode([f"{SITE}/mylib"])(vendored) and not UserCode([f"{SITE}/mylib"])(USER)


def test_one_sample_of_jitter_makes_no_phase_nested_or_not():
    profile = Profile(ProfileMeta(host="test", start_time=0.0, target_pid=1))
    torch = f"{SITE}/torch"
    frames = [("train", USER, 1), ("Module._call_impl", f"{torch}/nn/modules/module.py", 2),
              ("Tensor.backward", f"{torch}/_tensor.py", 3)]
    fwd, bwd, both = (0, 1), (0, 2), (0, 2, 1)  # `both`: backward calling a module hook, caught once
    stacks = [fwd] * 30 + [both] + [bwd] * 30 + [fwd] * 1 + [bwd] * 30
    times = 0.005 + np.arange(len(stacks)) * 0.01
    profile.ingest(StackBatch(1, 0.0, 1.0, len(stacks), frames,
                              [ThreadSamples(1, 1, "MainThread", times, np.full(len(stacks), 0.01, np.float32), stacks)]))
    phases = rule_phases(profile, BUILTIN_RULES)
    assert sorted((p.path, p.depth) for p in phases) == [("backward", 0), ("forward", 0)], \
        [(p.path, round(p.start, 3), round(p.end, 3)) for p in phases]


def reading_at(t: float, pid: int, cpu: float, threads: dict, **host) -> ProcessReading:
    return ProcessReading(pid=pid, ppid=0, name="python", cmdline=["python", "train.py"], create_time=-1.0,
                          status="running", cpu_s=cpu, rss=1, read_bytes=0, write_bytes=0, num_threads=len(threads),
                          thread_times=threads, **host)


def native_profile(helper_rate: float, thread_rate: float = 0.1, host_rate: float | None = None) -> Profile:
    """4 s of a main thread sitting in Linear.forward (a native call), mostly idle, with a thread py-spy cannot
    see (torch's intra-op pool) using `helper_rate` cores; the machine busy `host_rate` of its 2 cores."""
    profile = Profile(ProfileMeta(host="test", start_time=0.0, end_time=4.0, target_pid=1, options={"cpus": 2}))
    for k in range(41):
        t = 0.1 * k
        host = {} if host_rate is None else {"host_busy_s": host_rate * t, "host_cores": 2, "monitor_cpu_s": 0.0}
        profile.ingest(ResourceBatch(t, [reading_at(t, 1, (thread_rate + helper_rate) * t,
                                                    {1: (thread_rate * t, thread_rate * t), 7: (helper_rate * t, helper_rate * t)},
                                                    **host)]))
    frames = [("train_epoch", USER, 1), ("Module._call_impl", f"{SITE}/torch/nn/modules/module.py", 2),
              ("Linear.forward", f"{SITE}/torch/nn/modules/linear.py", 125)]
    n = 400
    times = 0.005 + np.arange(n) * 0.01
    profile.ingest(StackBatch(1, 0.0, 4.0, n, frames, [ThreadSamples(1, 1, "MainThread", times,
                                                                      np.full(n, 0.01, np.float32), [(0, 1, 2)] * n)]))
    return profile


def forward_cost(profile: Profile):
    (cost,) = [c for c in cost_phases(profile, rule_phases(profile, BUILTIN_RULES)) if c.phase.name == "forward"]
    return cost


def test_a_thread_idle_in_a_torch_kernel_waits_for_its_intra_op_threads():
    cost = forward_cost(native_profile(helper_rate=1.6))
    assert cost.verdict_kind == "helpers", cost.verdict
    assert "intra-op threads" in cost.verdict and "1.6 cores" in cost.verdict, cost.verdict
    assert cost.extra["helper_cpu_s"] == pytest.approx(6.4, rel=0.05)  # their CPU counts in the phase
    alone = forward_cost(native_profile(helper_rate=0.0))
    assert alone.verdict_kind == "blocked" and "no other thread of the process computed" in alone.verdict


def test_cpu_starved_names_who_held_the_cores_and_never_shows_with_a_core_idle():
    # The thread is runnable all along but runs 30%: its schedstat says active, its CPU says little.
    def profile(host_rate):
        p = Profile(ProfileMeta(host="test", start_time=0.0, end_time=4.0, target_pid=1, options={"cpus": 2}))
        for k in range(41):
            t = 0.1 * k
            p.ingest(ResourceBatch(t, [reading_at(t, 1, 0.3 * t, {1: (0.3 * t, 1.0 * t)}, host_busy_s=host_rate * t,
                                                  host_cores=2, monitor_cpu_s=0.2 * t)]))
        frames = [("train_epoch", USER, 1), ("spin", USER, 2)]
        times = 0.005 + np.arange(400) * 0.01
        p.ingest(StackBatch(1, 0.0, 4.0, 400, frames, [ThreadSamples(1, 1, "MainThread", times,
                                                                      np.full(400, 0.01, np.float32), [(0, 1)] * 400)]))
        (cost,) = [c for c in cost_phases(p, all_phases(p)) if c.phase.name == "train_epoch"]
        return cost

    busy = profile(host_rate=2.0)
    assert busy.verdict_kind == "starved", busy.verdict
    assert "2 cores were 100% busy" in busy.verdict and "gradetop and its samplers 0.2" in busy.verdict
    assert "other programs 1.5" in busy.verdict, busy.verdict
    idle = profile(host_rate=1.0)
    assert idle.verdict_kind == "limited" and "1.0 of its 2 cores idle" in idle.verdict, idle.verdict


def test_roles_from_environment_command_and_stacks():
    from gradetop.model.roles import env_role, process_roles

    assert env_role({"RANK": "3", "LOCAL_RANK": "1"}) == "rank 3"
    assert env_role({"LOCAL_RANK": "1"}) == "local rank 1" and env_role({"RANK": "x"}) == ""
    profile = Profile(ProfileMeta(host="test", start_time=0.0, target_pid=10))
    readings = [reading_at(0.0, 10, 0.0, {}), reading_at(0.0, 11, 0.0, {}, ranks=(0, None, None)),
                reading_at(0.0, 12, 0.0, {}, ranks=(1, None, None)), reading_at(0.0, 13, 0.0, {})]
    commands = {10: ["torchrun", "--nproc-per-node", "2", "train.py"], 11: ["python", "train.py"],
                12: ["python", "train.py"],
                13: ["python", "-c", "from multiprocessing.resource_tracker import main;main(5)"]}
    profile.ingest(ResourceBatch(0.0, [ProcessReading(**{**{f: getattr(r, f) for f in r.__slots__},
                                                         "cmdline": commands[r.pid], "ppid": 10 if r.pid != 10 else 1})
                                       for r in readings]))
    frames = [("_worker_loop", f"{SITE}/torch/utils/data/_utils/worker.py", 1), ("get", f"{STDLIB}/queue.py", 2)]
    profile.ingest(StackBatch(14, 0.0, 1.0, 1, frames, [ThreadSamples(14, 14, "MainThread", np.array([0.5]),
                                                                      np.full(1, 0.01, np.float32), [(0, 1)])]))
    assert process_roles(profile) == {10: "launcher", 11: "rank 0", 12: "rank 1", 13: "helper",
                                      14: "DataLoader worker"}


@pytest.mark.attach
def test_the_rank_in_a_process_environment_is_its_role(tmp_path, ptrace):
    import os

    out = tmp_path / "rank.gtop"
    result = gradetop("record", "-o", str(out), "--", sys.executable, "-c", "import time; time.sleep(1.5)",
                      env={**os.environ, "RANK": "2"})
    assert result.returncode == 0, result.stderr
    report = json.loads(gradetop("report", str(out), "--json").stdout)
    assert [p["role"] for p in report["processes"]] == ["rank 2"], report["processes"]


def test_a_loop_of_short_calls_is_no_phase_of_its_most_frequent_call():
    from gradetop.model.phases import auto_phases

    profile = Profile(ProfileMeta(host="test", start_time=0.0, end_time=8.0, target_pid=1))
    frames = [("main", USER, 1), ("load", USER, 2), ("train", USER, 3), ("forward", USER, 4), ("backward", USER, 5)]
    # 2 s of load, then 6 s of train: forward 6 ms, backward 4 ms, over and over.
    stacks = [(0, 1)] * 200 + [(0, 2, 3) if i % 10 < 6 else (0, 2, 4) for i in range(600)]
    times = 0.005 + np.arange(len(stacks)) * 0.01
    profile.ingest(StackBatch(1, 0.0, 8.0, len(stacks), frames, [ThreadSamples(
        1, 1, "MainThread", times, np.full(len(stacks), 0.01, np.float32), stacks)]))
    got = sorted((p.path, round(p.start, 2), round(p.end, 2)) for p in auto_phases(profile))
    assert got == [("load", 0.0, 2.0), ("train", 2.0, 8.0)], got


def test_a_worker_waiting_for_its_next_task_is_idle_not_blocked():
    from gradetop.model.phase_costs import verdict
    from gradetop.model.phases import Phase, PhaseCost

    phase = Phase("DataLoader worker: data loading", "DataLoader worker: data loading", "rule", 2, 2, 0.0, 10.0)
    cost = PhaseCost(phase, sampled_s=10.0, active_s=0.3, waiting_s=9.7, stalled_s=0.0, cpu_s=0.3, thread_cpu_s=0.3,
                     children_cpu_s=0.0, peak_rss=0, read_bytes=0, write_bytes=0,
                     top_wait="_PollLikeSelector.select (queue.get)", wait_reason="queue.get")
    kind, words = verdict(cost, 0.0, {"role": "DataLoader worker"})
    assert kind == "idle" and words.startswith("idle, waiting for work: waited 97% of 10.0 s"), words
    assert verdict(cost, 0.0, {"role": "main"})[0] == "blocked"


@pytest.mark.attach
def test_dump_calls_a_parent_of_busy_workers_waiting_not_stuck(ptrace):
    import subprocess
    import time

    proc = subprocess.Popen([sys.executable, str(WORKLOADS / "futures_pipeline.py")])
    try:
        # Until the workers are into their first shards (2.5 s each): a loaded machine starts them late.
        import psutil

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            busy = [c for c in psutil.Process(proc.pid).children() if sum(c.cpu_times()[:2]) > 0.3]
            if busy:
                break
            time.sleep(0.1)
        result = gradetop("dump", "--pid", str(proc.pid), "--watch", "2", "--json")
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
    finally:
        kill_tree(proc)
    assert out["stuck"] == [], out["stuck"]
    (main,) = [p for p in out["processes"] if p["pid"] == proc.pid]
    waiting = [t for t in main["threads"] if t["waiting_on"]]
    assert waiting and all("child process" in t["waiting_on"] for t in waiting), main["threads"]
