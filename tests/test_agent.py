"""The agent and its viewers over loopback TCP.

First with profiles fed by hand (no py-spy: the wire, the fan-out, tokens,
slow and late viewers, an agent killed and back); then the real thing:
`gradetop agent` processes following a 2-rank job (torch.distributed gloo
under torchrun where torch is importable, else two plain ranks) merged by
one viewer, and the command-line mistakes that must be one line.
"""

from __future__ import annotations

from collections import Counter

import os
import signal
import socket
import subprocess
import threading
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import WORKLOADS, gradetop, one_line
from gradetop.collectors.agent import AgentServer, Hub
from gradetop.collectors.remote import AgentError, RemoteOptions, RemoteSession
from gradetop.model.merge import PID_STRIDE
from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.ranks import MIN_SECONDS
from gradetop.model.records import ProcessReading, ResourceBatch, StackBatch, ThreadSamples
from gradetop.model.report import build_report
from gradetop.model.snapshot import load

FRAMES = [("main", "/app/train.py", 1), ("step", "/app/train.py", 5)]


def feed(profile: Profile, t0: float, pid: int = 100, n: int = 50) -> None:
    """n samples of main -> step over [t0, t0 + n/100), and a reading of the process."""
    times = t0 + 0.01 * np.arange(n)
    profile.ingest(ResourceBatch(t0, [ProcessReading(pid, 1, "python", ["python", "train.py"], 1000.0, "running",
                                                     t0 - 1000.0, 1 << 20, 0, 0, 1, {pid: (0.0, 0.0)},
                                                     ranks=(pid % 2, 0, 2))]))
    profile.ingest(StackBatch(pid, t0, t0 + n / 100, n, FRAMES,
                              [ThreadSamples(pid, pid, "MainThread", times, np.full(n, 0.01, np.float32),
                                             [(0, 1)] * n)]))


def agent(host: str = "node", token: bytes | None = None, port: int = 0, every_s: float = 0.1):
    profile = Profile(ProfileMeta(host=host, command=["python", "train.py"], target_pid=100))
    server = AgentServer("127.0.0.1", port, token)
    hub = Hub(profile, every_s=every_s).start()
    server.serve(hub)
    return profile, hub, server


def close(hub, server) -> None:
    hub.close()
    server.stop()
    server.join(2)


def wait_for(check, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


def test_two_viewers_get_the_whole_profile_then_every_flush():
    profile, hub, server = agent()
    feed(profile, 1000.0)  # before anyone connects
    address = "127.0.0.1:%d" % server.address[1]
    first = RemoteSession([address], options=RemoteOptions(save=False)).open().start()
    try:
        wait_for(lambda: first.profile.timeline.samples == 50, what="the whole profile")
        feed(profile, 1001.0)
        second = RemoteSession([address], options=RemoteOptions(save=False)).open().start()
        feed(profile, 1002.0)
        for viewer in (first, second):
            wait_for(lambda: viewer.profile.timeline.samples == 150, what="every flush, nothing twice")
            assert viewer.links[0].feed.warnings == []
            assert viewer.profile.processes[100].rank == 0
            assert abs(viewer.links[0].feed.offset) < 0.5 and viewer.links[0].feed.residual < 0.5
        second.finish()
    finally:
        close(hub, server)
    wait_for(first.poll, what="the end chunk")
    first.finish()
    assert first.state().ended
    assert any("session ended" in n for n in first.notices)


def test_a_slow_viewer_is_dropped_and_ingest_goes_on():
    from gradetop.collectors import agent as agent_module

    profile, hub, server = agent()
    sock = socket.create_connection(server.address)
    try:
        from gradetop.collectors.stream import MessageReader, send

        reader = MessageReader(sock)
        reader.read()
        send(sock, {"kind": "hello", "protocol": 1, "proof": b""})
        assert reader.read()["kind"] == "welcome"
        send(sock, {"kind": "start"})
        wait_for(lambda: len(hub.viewers) == 1, what="the viewer")
        viewer = hub.viewers[0]
        started = time.monotonic()
        # Never read: the kernel buffers fill, then the queue; past the limit it is dropped.
        for i in range(200):
            viewer.send(b"x" * (1 << 20), limit=8 << 20)
            feed(profile, 1000.0 + i)  # ingest is never held up
            if viewer.gone:
                break
        assert viewer.gone and "too slow" in viewer.gone
        assert time.monotonic() - started < 30
        assert agent_module.MAX_QUEUED_BYTES >= 8 << 20
    finally:
        sock.close()
        close(hub, server)


def test_a_viewer_without_the_token_is_refused(tmp_path):
    profile, hub, server = agent(token=b"s3cret-token")
    address = "127.0.0.1:%d" % server.address[1]
    try:
        for token, why in ((None, "needs a token"), (b"wrong-token!", "wrong token")):
            with pytest.raises(AgentError) as err:
                RemoteSession([address], token).open()
            assert why in str(err.value) and "\n" not in str(err.value)
        ok = RemoteSession([address], b"s3cret-token", RemoteOptions(save=False)).open().start()
        feed(profile, 1000.0)
        wait_for(lambda: ok.profile.timeline.samples == 50, what="samples with the token")
        ok.finish()
        assert server.refused == 2
    finally:
        close(hub, server)


def test_an_agent_that_goes_is_marked_gone_and_rejoins_when_back(tmp_path):
    a_profile, a_hub, a_server = agent("node-a")
    b_profile, b_hub, b_server = agent("node-b")
    port_b = b_server.address[1]
    out = tmp_path / "two.gtop"
    viewer = RemoteSession([f"127.0.0.1:{a_server.address[1]}", f"127.0.0.1:{port_b}"],
                           options=RemoteOptions(output=str(out))).open().start()
    try:
        feed(a_profile, 1000.0)
        feed(b_profile, 1000.0)
        wait_for(lambda: viewer.profile.timeline.samples == 100, what="both agents")
        # b dies without a word (its sockets just close).
        b_server.stop()
        b_server.join(2)
        for v in b_hub.viewers:
            v._drop("killed")
        b_hub.stop()
        wait_for(lambda: viewer.links[1].state == "gone", what="b marked gone")
        assert viewer.state().label == "1/2 agents"
        assert any("is gone" in n and "kept" in n for n in viewer.notices)
        assert viewer.profile.timeline.samples == 100  # its data stays
        # A new agent on b's port: the link re-joins it.
        c_profile, c_hub, c_server = agent("node-b", port=port_b)
        try:
            feed(c_profile, 1005.0)
            wait_for(lambda: viewer.links[1].state == "live", what="b back")
            wait_for(lambda: viewer.profile.timeline.samples == 150, what="b's new samples")
            assert any("is back" in n for n in viewer.notices)
        finally:
            close(c_hub, c_server)
        viewer.finish()
    finally:
        close(a_hub, a_server)
    saved = load(out)
    assert saved.warnings == []
    assert {p.host for p in saved.processes.values()} == {"node-a", "node-b"}
    assert any(n.kind == "agent" and "node-b" in n.message for n in saved.notes)


# ---- the real thing -----------------------------------------------------------------------------


def torch_importable() -> bool:
    try:
        out = subprocess.run([sys.executable, "-c", "import torch.distributed"], capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0


def start_agent(command: list[str], env: dict | None = None, port: int = 0, *extra: str):
    """A `gradetop agent` process; its stderr (and its workflow's, which can be long: torch's) goes to a file."""
    import tempfile

    log = tempfile.NamedTemporaryFile("w+", prefix="gradetop-agent-test-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "gradetop", "agent", "--listen", f"127.0.0.1:{port}", *extra,
                             "--", *command], stdout=subprocess.DEVNULL, stderr=log, text=True,
                            stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    proc.log = log.name
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = Path(log.name).read_text()
        if "agent on 127.0.0.1:" in text:
            return proc, int(text.split("agent on 127.0.0.1:")[1].split()[0])
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"the agent did not start: {Path(log.name).read_text()}")


def stop(proc) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    os.unlink(proc.log)


def rank_commands(seconds: float) -> list[tuple[list[str], dict]]:
    job = str(WORKLOADS / "dist_job.py")
    if torch_importable():
        master = socket.socket()
        master.bind(("127.0.0.1", 0))
        port = master.getsockname()[1]
        master.close()
        return [([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(rank),
                  "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port),
                  job, str(seconds)], {"OMP_NUM_THREADS": "1"}) for rank in (0, 1)]
    return [([sys.executable, job, str(seconds)], {"RANK": str(rank), "WORLD_SIZE": "2"}) for rank in (0, 1)]


@pytest.mark.timeout(300)
def test_two_agents_on_a_two_rank_job_merge_in_one_view(tmp_path, ptrace):
    agents = [start_agent(cmd, env) for cmd, env in rank_commands(60)]
    out = tmp_path / "job.gtop"
    viewer = RemoteSession([f"127.0.0.1:{port}" for _, port in agents],
                           options=RemoteOptions(output=str(out))).open().start()
    try:
        def both_ranks_ran_their_phases() -> bool:
            with viewer.profile.lock:
                ranks = {p.rank for p in viewer.profile.processes.values() if p.sampled}
                marks = sorted(viewer.profile.marks, key=lambda m: m.t)
            # Each rank's seconds in `compute` so far, from its marker pairs: the skew is judged only on a
            # phase some rank spent MIN_SECONDS in, and rank 1's stop at the kill below (rank 0 goes on
            # 1.5 s more: 0.3-0.6 s of compute on a loaded machine, short of it) must not leave it unjudged.
            began: dict[int, float] = {}
            seconds = Counter()
            for m in marks:
                if m.name == "compute" and m.kind == "B":
                    began[m.pid // PID_STRIDE] = m.t
                elif m.name == "compute" and m.kind == "E" and m.pid // PID_STRIDE in began:
                    seconds[m.pid // PID_STRIDE] += m.t - began.pop(m.pid // PID_STRIDE)
            return {0, 1} <= ranks and all(seconds[r] >= 2 * MIN_SECONDS for r in (0, 1))

        wait_for(both_ranks_ran_their_phases, timeout=150, what="both ranks sampled, with their phases")
        # Kill agent 1 mid-run (SIGKILL: no goodbye): its data stays and it is marked gone.
        samples_1 = int((viewer.profile.timeline.pid >= PID_STRIDE).sum())
        agents[1][0].send_signal(signal.SIGKILL)
        wait_for(lambda: viewer.links[1].state == "gone", timeout=20, what="agent 1 marked gone")
        assert any("is gone" in n for n in viewer.notices)
        time.sleep(1.5)
        assert int((viewer.profile.timeline.pid >= PID_STRIDE).sum()) >= samples_1
        # Agent 0 stays (its job may end: a gloo job loses its peer with agent 1's workflow).
        assert viewer.links[0].state in ("live", "ended")
    finally:
        viewer.finish()
        for proc, _ in agents:
            stop(proc)
    profile = load(out)
    report = build_report(profile)
    ranks = {(p["host_pid"], p["rank"]) for p in report["processes"] if p["rank"] is not None and p["sampled"]}
    assert {r for _, r in ranks} == {0, 1}
    phases = {(p["pid"] // PID_STRIDE, p["name"]) for p in report["phases"]}
    assert {(0, "compute"), (1, "compute")} <= phases
    assert any(n["kind"] == "agent" for n in report["notes"])
    # Both ranks side by side; rank 1 computes twice as long per step (the workload's skew).
    assert [r["rank"] for r in report["ranks"]["ranks"]] == [0, 1]
    assert "compute" in {e["phase"] for e in report["ranks"]["skew"]}
    assert [a["state"] for a in profile.meta.options["agents"]] == ["live", "gone"] or \
        profile.meta.options["agents"][1]["state"] == "gone"


def test_record_from_an_agent_writes_one_file(tmp_path, ptrace, no_traceback):
    proc, port = start_agent([sys.executable, str(WORKLOADS / "busy_forever.py")], {"RANK": "0"}, 0,
                             "--duration", "6")
    try:
        out = tmp_path / "rec.gtop"
        result = gradetop("record", "--agent", f"127.0.0.1:{port}", "-o", str(out), timeout=60)
        no_traceback(result)
        assert result.returncode == 0, result.stderr
        assert "session ended" in result.stderr
        report = gradetop("report", "--json", str(out))
        import json

        data = json.loads(report.stdout)
        assert data["samples"] > 100 and data["processes"][0]["rank"] == 0
    finally:
        stop(proc)


# ---- mistakes are one line ----------------------------------------------------------------------


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("args,expect", [
    (["record", "--agent", "127.0.0.1:{closed}"], "cannot reach agent"),
    (["record", "--agent", "no-such-host.invalid:7077"], "unknown host"),
    (["record", "--agent", "127.0.0.1:notaport"], "not a port number"),
    (["record", "--agent", "127.0.0.1:99999"], "port out of range"),
    (["record", "--hostfile", "{missing}"], "cannot read --hostfile"),
    (["record", "--hostfile", "{badfile}"], "hosts.txt:2: not a port number"),
    (["record", "--hostfile", "{emptyfile}"], "names no agents"),
    (["attach", "--agent", "127.0.0.1:{closed}"], "cannot reach agent"),
    (["agent", "--listen", "0.0.0.0:0", "--", "true"], "--token-file"),
    (["agent", "--listen", "127.0.0.1:{busy}", "--", "true"], "cannot listen"),
    (["agent", "--token-file", "{missing}", "--", "true"], "cannot read --token-file"),
    (["agent"], "nothing to follow"),
    (["record", "--agent", "127.0.0.1:1", "--", "true"], "not both"),
])
def test_bad_agent_arguments_are_one_line(tmp_path, args, expect):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    bad = tmp_path / "hosts.txt"
    bad.write_text("# agents\nnode1:x\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nobody\n\n")
    values = {"closed": closed_port(), "missing": tmp_path / "nope", "badfile": bad, "emptyfile": empty,
              "busy": busy.getsockname()[1]}
    try:
        result = gradetop(*[a.format(**values) for a in args], "-o" if args[0] == "record" else "--idle",
                          *([str(tmp_path / "x.gtop")] if args[0] == "record" else []), timeout=60)
    finally:
        busy.close()
    line = one_line(result)
    assert expect in line, line
    assert result.returncode != 0


def test_a_viewer_without_the_token_is_one_line(tmp_path, ptrace):
    token = tmp_path / "token"
    token.write_text("a-long-shared-secret\n")
    proc, port = start_agent([sys.executable, str(WORKLOADS / "busy_forever.py")], None, 0,
                             "--token-file", str(token), "--duration", "20")
    try:
        result = gradetop("record", "--agent", f"127.0.0.1:{port}", "-o", str(tmp_path / "x.gtop"), timeout=60)
        assert "this agent needs a token" in one_line(result) and result.returncode == 1
        wrong = tmp_path / "wrong"
        wrong.write_text("not-the-secret")
        result = gradetop("record", "--agent", f"127.0.0.1:{port}", "--token-file", str(wrong), "-o",
                          str(tmp_path / "x.gtop"), timeout=60)
        assert "wrong token" in one_line(result) and result.returncode == 1
        result = gradetop("record", "--agent", f"127.0.0.1:{port}", "--token-file", str(token), "-o",
                          str(tmp_path / "ok.gtop"), "--duration", "2", timeout=60)
        assert result.returncode == 0, result.stderr
    finally:
        stop(proc)
    assert Path(tmp_path / "ok.gtop").exists()


def test_a_stranger_on_the_agent_port_is_dropped_and_the_agent_serves_on():
    import struct

    from gradetop.model.chunkfile import SYNC

    profile, hub, server = agent()
    try:
        for junk in (b"GET / HTTP/1.0\r\n\r\n", SYNC + struct.pack("<II", 1 << 30, 0)):
            s = socket.create_connection(server.address)
            s.recv(4096)  # the challenge
            s.sendall(junk)
            s.settimeout(10)
            assert s.recv(4096) == b"", "the agent hangs up on what is not a hello"
            s.close()
        viewer = RemoteSession([f"127.0.0.1:{server.address[1]}"], options=RemoteOptions(save=False)).open().start()
        feed(profile, 1000.0)
        wait_for(lambda: viewer.profile.timeline.samples == 50, what="a real viewer after the strangers")
        viewer.finish()
    finally:
        close(hub, server)


def test_a_port_that_is_not_an_agent_is_one_line():
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(1)

    def answer() -> None:
        conn, _ = other.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n" + b"x" * 64)
        time.sleep(1)
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    try:
        with pytest.raises(AgentError) as err:
            RemoteSession([f"127.0.0.1:{other.getsockname()[1]}"]).open()
    finally:
        other.close()
    assert "is not a gradetop agent" in str(err.value)


def test_the_app_on_two_agents_shows_hosts_and_ranks_and_says_when_one_goes():
    import asyncio

    from gradetop.tui.app import GradetopApp
    from gradetop.tui.processes import ProcessTable

    a_profile, a_hub, a_server = agent("node-a")
    b_profile, b_hub, b_server = agent("node-b")
    feed(a_profile, time.time() - 2, pid=100)
    feed(b_profile, time.time() - 2, pid=101)
    source = RemoteSession([f"127.0.0.1:{a_server.address[1]}", f"127.0.0.1:{b_server.address[1]}"],
                           options=RemoteOptions(save=False)).open()

    async def scenario() -> list[str]:
        app = GradetopApp(source)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("6")
            table = app.query_one(ProcessTable)
            for _ in range(100):
                await pilot.pause(0.05)
                if table.row_count == 2:
                    break
            rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
            b_server.stop()
            for v in b_hub.viewers:
                v._drop("killed")
            b_hub.stop()
            for _ in range(100):
                await pilot.pause(0.05)
                app.tick()
                if any("is gone" in n.message for n in app._notifications):
                    break
            said = [n.message for n in app._notifications]
            await pilot.press("q")
            await pilot.pause(0.2)
        return rows, said

    try:
        rows, said = asyncio.run(scenario())
    finally:
        source.finish()
        close(a_hub, a_server)
    assert sorted((r[0], r[-1].strip()) for r in rows) == [("100", "(node-a r0) python train.py"),
                                                        ("101", "(node-b r1) python train.py")]
    assert any("node-b" in line and "is gone" in line for line in said), said


def test_an_agent_also_records_on_its_node_and_the_file_survives_a_kill(tmp_path, ptrace):
    out = tmp_path / "node.gtop"
    proc, port = start_agent([sys.executable, str(WORKLOADS / "busy_forever.py")], {"RANK": "2"}, 0,
                             "-o", str(out), "--duration", "30")
    try:
        viewer = RemoteSession([f"127.0.0.1:{port}"], options=RemoteOptions(save=False)).open().start()
        wait_for(lambda: viewer.profile.timeline.samples > 200, timeout=60, what="samples at the viewer")
        time.sleep(1.5)
        proc.send_signal(signal.SIGKILL)  # no goodbye: what was streamed to disk opens
        proc.wait(timeout=10)
        viewer.finish()
    finally:
        stop(proc)
    local = load(out)
    assert local.warnings  # cut off, and it says so
    assert local.timeline.samples > 100
    assert {p.rank for p in local.processes.values()} == {2}
    # Graceful end: the file is rewritten whole.
    whole = tmp_path / "whole.gtop"
    proc, _ = start_agent([sys.executable, str(WORKLOADS / "busy_forever.py")], None, 0, "-o", str(whole),
                          "--duration", "3")
    proc.wait(timeout=60)
    stop(proc)
    done = load(whole)
    assert done.warnings == [] and done.timeline.samples > 50
