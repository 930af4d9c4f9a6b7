"""`record --hosts` / `run --hosts` against a real OpenSSH server on 127.0.0.1.

The test starts its own sshd (a temporary config, host key and client key
in tmp_path, a free port, root login by key only) as a child and kills it
after; gradetop's ssh gets its options through GRADETOP_SSH. The two
"hosts" are 127.0.0.1 and localhost: one machine, two names, each running
a small real Python workload under its own `gradetop agent`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import WORKLOADS, gradetop, one_line
from gradetop.collectors.hosts import HostsError, parse_host, parse_hosts, remote_script, substitute

SSHD = "/usr/sbin/sshd"


def free_port(consecutive: int = 1) -> int:
    """A port p with p .. p+consecutive-1 all free on 127.0.0.1 now."""
    for _ in range(50):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port + consecutive >= 65536:
            continue
        ok = True
        for p in range(port + 1, port + consecutive):
            t = socket.socket()
            try:
                t.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return port
    raise AssertionError("no free ports")


@pytest.fixture
def sshd(tmp_path, monkeypatch):
    """A real sshd on 127.0.0.1:<free port>, reachable with a key made here; yields (port, ssh_env)."""
    if not os.path.exists(SSHD) or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        pytest.skip("needs OpenSSH (apt-get install openssh-server openssh-client): /usr/sbin/sshd, ssh, ssh-keygen")
    if os.geteuid() != 0:
        pytest.skip("the test sshd logs in as root (key only): run as root")
    keys = tmp_path / "ssh"
    keys.mkdir()
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    (keys / "authorized_keys").write_text((keys / "client_key.pub").read_text())
    port = free_port()
    config = keys / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {keys / 'host_key'}
PidFile {keys / 'sshd.pid'}
AuthorizedKeysFile {keys / 'authorized_keys'}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
StrictModes no
UsePAM no
AllowTcpForwarding local
PermitUserEnvironment no
SetEnv PATH={os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin
""")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
    log = keys / "sshd.log"
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=open(log, "w"), stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.skip(f"sshd did not start: {log.read_text().strip().splitlines()[-1:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    ssh = (f"ssh -i {keys / 'client_key'} -o IdentitiesOnly=yes -o UserKnownHostsFile=/dev/null "
           f"-o StrictHostKeyChecking=no -o LogLevel=ERROR -o User=root")
    monkeypatch.setenv("GRADETOP_SSH", ssh)
    try:
        yield port, ssh
    finally:
        reap(proc, str(tmp_path))


def reap(sshd_proc: subprocess.Popen, marker: str) -> None:
    """End the test's sshd with its per-connection children, then anything left that names the test's
    folder (its ssh clients, agents left running, their jobs): only what this test started."""
    import psutil

    try:
        children = psutil.Process(sshd_proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    sshd_proc.kill()
    sshd_proc.wait(10)
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    me = os.getpid()
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmdline = p.info["cmdline"] or []
            if p.pid != me and cmdline and not cmdline[0].startswith("tmux") and \
                    any(marker in part for part in cmdline):
                p.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def remote_gradetop() -> str:
    return os.path.join(os.path.dirname(sys.executable), "gradetop")


# ---- the pieces ---------------------------------------------------------------------------------


def test_hosts_parse_as_ssh_destinations(tmp_path):
    assert parse_host("node1").destination == "node1" and parse_host("node1").port is None
    spec = parse_host("alice@node2:2222")
    assert (spec.destination, spec.port, spec.name) == ("alice@node2", 2222, "node2")
    assert parse_host("[::1]:22").port == 22 and parse_host("[::1]:22").name == "::1"
    for bad in ("node:x", "node:0", "@node", "no de"):
        with pytest.raises(ValueError):
            parse_host(bad)
    hostfile = tmp_path / "hosts"
    hostfile.write_text("# the job\nnode1\nnode2:2200  # ssh port\n\n")
    assert [h.text for h in parse_hosts(["a,b"], str(hostfile))] == ["a", "b", "node1", "node2:2200"]
    with pytest.raises(HostsError):
        parse_hosts(None, None)


def test_the_remote_script_sets_ranks_and_substitutes_placeholders():
    assert substitute("--node_rank={node_rank}/{nnodes}@{master}", 1, 2, "n0") == "--node_rank=1/2@n0"
    script = remote_script("gradetop", 7078, ["python", "-c", "print({})", "{node_rank}"], 1, 2, "n0", "/x", [])
    assert "export NODE_RANK=1 NNODES=2 MASTER_ADDR=n0" in script
    assert "--listen 127.0.0.1:7078" in script and "'print({})' 1" in script


@pytest.mark.parametrize("args, expect", [
    (["record", "--hosts", "node:x", "--", "true"], "bad SSH port"),
    (["record", "--hosts", "a", "--agent", "127.0.0.1:7077", "--", "true"], "not both"),
    (["record", "--hosts", "a"], "put the command after --"),
    (["record", "--hostfile", "/nonexistent/hosts", "--", "true"], "cannot read --hostfile"),
])
def test_host_mistakes_are_one_line(args, expect, tmp_path):
    result = gradetop(*args, cwd=tmp_path, timeout=60)
    assert expect in one_line(result) and result.returncode != 0


def test_gradetop_ssh_is_the_ssh_command_and_a_missing_one_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADETOP_SSH", "/nonexistent/ssh -x")
    result = gradetop("record", "--hosts", "node1", "-o", str(tmp_path / "x.gtop"), "--", "true", timeout=60)
    assert "cannot run /nonexistent/ssh" in one_line(result)


# ---- over a real sshd ---------------------------------------------------------------------------


RANKED = ("import os, sys, time\n"
          "os.environ['RANK'] = os.environ['NODE_RANK']\n"
          "print('node', os.environ['NODE_RANK'], 'of', os.environ['NNODES'], 'master', os.environ['MASTER_ADDR'],"
          " 'arg', sys.argv[1], flush=True)\n"
          "def spin(s):\n"
          "    end = time.perf_counter() + s\n"
          "    while time.perf_counter() < end: pass\n"
          "try:\n"
          "    spin(float(sys.argv[2]))\n"
          "except KeyboardInterrupt:\n"
          "    print('interrupted', flush=True)\n")


@pytest.mark.timeout(300)
def test_record_hosts_runs_the_job_on_every_host_and_records_them_all(sshd, tmp_path, ptrace, no_traceback):
    job = tmp_path / "job.py"
    # RANK is read from the environment gradetop sees at the process's start: set it before python runs.
    job.write_text(RANKED)
    out = tmp_path / "hosts.gtop"
    port = sshd[0]
    result = gradetop("record", "--hosts", f"127.0.0.1:{port},localhost:{port}", "--remote-gradetop",
                      remote_gradetop(), "--agent-port", str(free_port(2)), "-o", str(out), "--",
                      "sh", "-c", f'RANK=$NODE_RANK WORLD_SIZE=$NNODES exec "$0" "$@"', sys.executable, str(job),
                      "{node_rank}", "4", timeout=240)
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("session ended") == 2, result.stderr
    data = json.loads(gradetop("report", "--json", str(out)).stdout)
    ranks = {p["rank"] for p in data["processes"] if p["rank"] is not None and p["sampled"]}
    assert ranks == {0, 1}, data["processes"]
    assert data["samples"] > 100


@pytest.mark.timeout(200)
def test_an_unreachable_host_is_one_line_and_the_others_go_on(sshd, tmp_path, ptrace, no_traceback):
    closed = free_port()
    port = sshd[0]
    out = tmp_path / "one.gtop"
    result = gradetop("record", "--hosts", f"127.0.0.1:{port},localhost:{closed}", "--remote-gradetop",
                      remote_gradetop(), "--agent-port", str(free_port(2)), "-o", str(out), "--",
                      sys.executable, str(WORKLOADS / "ranked_then_idle.py"), "1", timeout=180)
    no_traceback(result)
    lines = [line for line in result.stderr.splitlines() if f"localhost:{closed}" in line]
    assert len(lines) == 1 and "cannot be reached" in lines[0] and "Connection refused" in lines[0], result.stderr
    assert result.returncode != 0  # a host missing is not a success
    assert result.stderr.count("session ended") == 1, result.stderr
    assert out.exists()


@pytest.mark.timeout(120)
def test_no_host_reachable_is_one_line(sshd, tmp_path):
    closed = free_port()
    result = gradetop("record", "--hosts", f"127.0.0.1:{closed}", "-o", str(tmp_path / "x.gtop"), "--",
                      "true", timeout=60)
    line = one_line(result)
    assert "no host could be reached" in line and f"127.0.0.1:{closed}" in line and "Connection refused" in line
    assert result.returncode == 1


@pytest.mark.timeout(120)
def test_a_missing_remote_gradetop_is_one_line(sshd, tmp_path):
    result = gradetop("record", "--hosts", f"127.0.0.1:{sshd[0]}", "--remote-gradetop", "/nowhere/gradetop",
                      "-o", str(tmp_path / "x.gtop"), "--", "true", timeout=60)
    line = one_line(result)
    assert "/nowhere/gradetop is not on this host's PATH" in line and "--remote-gradetop" in line


def job_processes(marker: str) -> list:
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmdline = p.info["cmdline"] or []
            if cmdline and not cmdline[0].startswith("tmux") and any(marker in part for part in cmdline) and \
                    "gradetop" not in " ".join(cmdline[:3]):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def job_command(job: Path, seconds: float) -> list[str]:
    # RANK from NODE_RANK before python starts: gradetop reads ranks from a process's first environment.
    return ["sh", "-c", 'RANK=$NODE_RANK WORLD_SIZE=$NNODES exec "$0" "$@"', sys.executable, str(job),
            "{node_rank}", str(seconds)]


@pytest.mark.timeout(300)
def test_record_hosts_for_a_duration_stops_the_jobs_on_every_host(sshd, tmp_path, ptrace, no_traceback):
    job = tmp_path / "long_job.py"
    job.write_text(RANKED)
    port = sshd[0]
    out = tmp_path / "d.gtop"
    result = gradetop("record", "--hosts", f"127.0.0.1:{port}", "--hosts", f"localhost:{port}",
                      "--remote-gradetop", remote_gradetop(), "--agent-port", str(free_port(2)), "--duration", "6",
                      "-o", str(out), "--", *job_command(job, 600), timeout=240)
    no_traceback(result)
    assert "stopping" in result.stderr and "@127.0.0.1" in result.stderr and "@localhost" in result.stderr
    # 0, not 143: each job got the SIGINT (a KeyboardInterrupt it handles), not the SIGTERM after the grace.
    assert result.returncode == 0, result.stderr
    assert not job_processes(str(job)), "SIGINT to the agents stopped their commands"
    data = json.loads(gradetop("report", "--json", str(out)).stdout)
    assert {p["rank"] for p in data["processes"] if p["sampled"]} >= {0, 1}


# ---- run --hosts in a real terminal -------------------------------------------------------------


@pytest.fixture
def tmux(ptrace, monkeypatch):
    import tempfile

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (.ci/run installs it)")
    from test_end_to_end import Tmux

    # A tmux server of our own (its socket in a folder of ours): never a session on anyone else's server.
    folder = tempfile.mkdtemp(prefix="gt-tmux-")
    monkeypatch.setenv("TMUX_TMPDIR", folder)
    monkeypatch.delenv("TMUX", raising=False)
    session = Tmux(f"gradetop-hosts-test-{os.getpid()}", width=160, height=45)
    yield session
    session.kill()  # its last session gone, our private server exits by itself
    shutil.rmtree(folder, ignore_errors=True)


def run_hosts_line(sshd, tmp_path: Path, job: Path) -> str:
    import shlex

    port, ssh = sshd
    command = " ".join(shlex.quote(a) for a in job_command(job, 600))
    return (f"cd {tmp_path} && GRADETOP_SSH={shlex.quote(ssh)} {remote_gradetop()} run "
            f"--hosts 127.0.0.1:{port},localhost:{port} --remote-gradetop {remote_gradetop()} "
            f"--agent-port {free_port(2)} -o {tmp_path / 'ui.gtop'} -- {command}")


@pytest.mark.timeout(300)
def test_run_hosts_shows_both_hosts_and_quit_stops_the_job(sshd, tmux, tmp_path):
    job = tmp_path / "ui_job.py"
    job.write_text(RANKED)
    tmux.start(run_hosts_line(sshd, tmp_path, job))
    tmux.wait_for("2 AGENTS", timeout=120)
    tmux.wait_for("spin", timeout=60)
    assert len(job_processes(str(job))) >= 2
    tmux.keys("q")
    tmux.wait_for("Stop it", timeout=20)
    tmux.keys("s")
    screen = tmux.wait_for("GRADETOP-EXIT=", timeout=60)
    assert "Traceback" not in screen
    deadline = time.monotonic() + 20
    while job_processes(str(job)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not job_processes(str(job)), "stop reached the job on both hosts"
    data = json.loads(gradetop("report", "--json", str(tmp_path / "ui.gtop")).stdout)
    assert {p["rank"] for p in data["processes"] if p["sampled"]} >= {0, 1}


@pytest.mark.timeout(300)
def test_run_hosts_leave_running_says_how_to_reattach_and_that_works(sshd, tmux, tmp_path, no_traceback):
    import re
    import signal

    job = tmp_path / "left_job.py"
    job.write_text(RANKED)
    tmux.start(run_hosts_line(sshd, tmp_path, job))
    tmux.wait_for("spin", timeout=120)
    tmux.keys("q")
    tmux.wait_for("Leave running", timeout=20)
    tmux.keys("l")
    screen = tmux.wait_for("GRADETOP-EXIT=0", timeout=60)
    tunnels = []
    try:
        text = screen.replace("\n", " ")
        assert "runs on under the agents" in text, screen
        assert len(job_processes(str(job))) >= 2, "leaving kept the jobs"
        history = subprocess.run(["tmux", "capture-pane", "-p", "-J", "-t", tmux.name, "-S", "-50"],
                                 capture_output=True, text=True).stdout
        lines = [line.strip() for line in history.splitlines()]
        tunnel_lines = [line.removeprefix("gradetop:").strip() for line in lines if " -N -L " in line]
        attach = next(line for line in lines if "gradetop attach --agent" in line)
        assert len(tunnel_lines) == 2, history
        for line in tunnel_lines:
            tunnels.append(subprocess.Popen(line.rstrip("&").strip(), shell=True, start_new_session=True,
                                            stdin=subprocess.DEVNULL))
        agents = re.findall(r"--agent (\S+)", attach)
        time.sleep(3)  # the tunnels come up
        args = [a for agent in agents for a in ("--agent", agent)]
        result = gradetop("record", *args, "--duration", "3", "-o", str(tmp_path / "again.gtop"), timeout=120)
        no_traceback(result)
        assert result.returncode == 0, result.stderr
        data = json.loads(gradetop("report", "--json", str(tmp_path / "again.gtop")).stdout)
        assert data["samples"] > 0
    finally:
        for t in tunnels:
            os.killpg(t.pid, signal.SIGTERM)
            t.wait(10)
        import psutil

        # Both "hosts" are this machine: stop the agents we left (SIGINT stops their jobs), and remove
        # the logs they write on their "host" (left behind by design when the connection goes first).
        logs = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if " agent --listen 127.0.0.1:" in cmd and str(job) in cmd:
                try:
                    logs.append(os.readlink(f"/proc/{p.pid}/fd/1"))
                except OSError:
                    pass
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while job_processes(str(job)) and time.monotonic() < deadline:
            time.sleep(0.2)
        for p in job_processes(str(job)):
            p.kill()
        for log in logs:
            if os.path.basename(log).startswith("gradetop-agent."):
                os.unlink(log)
