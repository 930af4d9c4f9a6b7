"""`run --hosts` / `record --hosts`: a `gradetop agent` on each host over SSH, the job under it, one merged view.

For host k of N, one ssh connection carries everything:

    ssh -o BatchMode=yes [-p PORT] -L LOCAL:127.0.0.1:REMOTE HOST sh -c '...
        export NODE_RANK=k NNODES=N MASTER_ADDR=<first host>
        nohup gradetop agent --listen 127.0.0.1:REMOTE -- CMD > LOG 2>&1 &
        tail -f --pid=$! LOG; wait $!; rm -f LOG'

The agent listens on the remote loopback only and its stream comes back
inside the SSH connection (no token, nothing reachable from the network).
It runs under nohup with its output in a remote log file, so that leaving
(quit -> leave running) only closes the connection: the agent and its job
go on, and the user re-opens the tunnel and attaches. Stopping sends SIGINT
to each agent (a second `ssh HOST kill -INT PID`), which stops its command
as `record` does, then sends the last of the stream and exits, and with it
the connection. The log goes with the agent when the connection lasts
that long (all of it came over ssh); one left behind is named when leaving.

The ssh command itself is `ssh`, or what GRADETOP_SSH says (split as a
shell would: `ssh -F ~/.ssh/cluster_config`, `ssh -i key -o ...`); options
given there win over ours (ssh takes the first value of each option).

Must never import textual or rich.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from gradetop.collectors.remote import RemoteOptions, RemoteSession

ENV_SSH = "GRADETOP_SSH"
DEFAULT_AGENT_PORT = 7077
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
MARK = "gradetop-hosts:"
_READY = re.compile(r"agent on 127\.0\.0\.1:(\d+)")
_MARK = re.compile(re.escape(MARK) + r" pid (\d+) log (\S+)")


class HostsError(Exception):
    """No host could be reached, or the hosts are given wrongly: one line for the user."""


@dataclass(frozen=True)
class HostSpec:
    """`[user@]host[:sshport]` (IPv6: `[user@][addr]:port`)."""

    text: str
    destination: str
    """What ssh gets: user@host or host."""
    port: int | None

    @property
    def name(self) -> str:
        """The machine's name, without user or port: MASTER_ADDR."""
        return self.destination.rsplit("@", 1)[-1]


def parse_host(text: str) -> HostSpec:
    text = text.strip()
    user, at, rest = text.rpartition("@")
    port: int | None = None
    if rest.startswith("["):
        host, close, tail = rest[1:].partition("]")
        if not close or (tail and not tail.startswith(":")):
            raise ValueError(f"bad host {text!r}: expected [user@][address]:port")
        port_text = tail[1:] if tail else ""
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    else:
        host, port_text = rest, ""
    if not host or (at and not user) or any(c.isspace() for c in text):
        raise ValueError(f"bad host {text!r}: expected [user@]host[:sshport]")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad SSH port in {text!r}")
        port = int(port_text)
    return HostSpec(text, f"{user}@{host}" if at else host, port)


def parse_hosts(hosts: list[str] | None, hostfile: str | None) -> list[HostSpec]:
    """--hosts a,b (repeatable) then the hostfile's lines (one host[:sshport] a line, # comments)."""
    texts = [t for item in hosts or [] for t in item.split(",") if t.strip()]
    if hostfile:
        try:
            with open(hostfile, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise HostsError(f"cannot read --hostfile {hostfile}: {exc.strerror or exc}") from None
        for number, line in enumerate(lines, 1):
            line = line.split("#", 1)[0].strip()
            if line:
                try:
                    parse_host(line)
                except ValueError as exc:
                    raise HostsError(f"{hostfile}:{number}: {exc}") from None
                texts.append(line)
    if not texts:
        raise HostsError("no hosts: give --hosts HOST[,HOST...] or --hostfile FILE")
    specs = []
    for t in texts:
        try:
            specs.append(parse_host(t))
        except ValueError as exc:
            raise HostsError(f"--hosts: {exc}") from None
    return specs


def ssh_base() -> list[str]:
    try:
        base = shlex.split(os.environ.get(ENV_SSH, "") or "ssh")
    except ValueError as exc:
        raise HostsError(f"{ENV_SSH}: {exc}") from None
    return base or ["ssh"]


def substitute(arg: str, rank: int, nnodes: int, master: str) -> str:
    return arg.replace("{node_rank}", str(rank)).replace("{nnodes}", str(nnodes)).replace("{master}", master)


def remote_script(gradetop: str, remote_port: int, command: list[str], rank: int, nnodes: int, master: str,
                  cwd: str, agent_args: list[str]) -> str:
    """What `sh -c` runs on host `rank` (see the module's docstring)."""
    q = shlex.quote
    agent = [gradetop, "agent", "--listen", f"127.0.0.1:{remote_port}", *agent_args, "--",
             *(substitute(a, rank, nnodes, master) for a in command)]
    return "; ".join([
        f"export NODE_RANK={rank} NNODES={nnodes} MASTER_ADDR={q(master)}",
        f"cd {q(cwd)} 2>/dev/null || cd",
        f"command -v {q(gradetop)} >/dev/null 2>&1 || {{ echo \"gradetop: {gradetop} is not on this host's PATH "
        f"(give --remote-gradetop PATH)\" >&2; exit 127; }}",
        'log=$(mktemp "${TMPDIR:-/tmp}/gradetop-agent.XXXXXX") || exit 1',
        f"nohup {' '.join(q(a) for a in agent)} </dev/null >\"$log\" 2>&1 & pid=$!",
        f'echo "{MARK} pid $pid log $log"',
        'tail -n +1 -f --pid=$pid "$log"',
        # Everything in the log came over ssh: it stays on the host only if ssh goes before the agent.
        'wait $pid; rc=$?; rm -f "$log"; exit $rc',
    ])


def free_local_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@dataclass
class HostLink:
    """One host: its ssh connection (agent + tunnel), and what it said."""

    spec: HostSpec
    rank: int
    remote_port: int
    local_port: int
    log_path: str
    proc: subprocess.Popen | None = None
    remote_pid: int | None = None
    remote_log: str | None = None
    error: str | None = None
    ready: bool = False
    lines: list[str] = field(default_factory=list)

    def ssh_options(self) -> list[str]:
        return ["-p", str(self.spec.port)] if self.spec.port else []

    def read(self) -> None:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                self.lines = f.read().splitlines()
        except OSError:
            return
        for line in self.lines:
            m = _MARK.search(line)
            if m:
                self.remote_pid, self.remote_log = int(m.group(1)), m.group(2)
            if _READY.search(line):
                self.ready = True

    def first_error(self) -> str:
        """ssh's (or the remote side's) first line that says something."""
        for line in self.lines:
            line = line.strip()
            if not line or MARK in line or line.startswith("Warning: Permanently added"):
                continue
            return line[len("gradetop: "):] if line.startswith("gradetop: ") else line
        code = self.proc.returncode if self.proc is not None else None
        return f"ssh exited with status {code}" if code is not None else "no answer"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tunnel_command(self) -> str:
        q = shlex.quote
        return " ".join([*(q(a) for a in ssh_base()), *self.ssh_options(), "-N", "-L",
                         f"{self.local_port}:127.0.0.1:{self.remote_port}", q(self.spec.destination)])


class HostsTarget:
    """What `record` and the quit screen need of 'the workflow': its command, where it runs, stop, exit code."""

    def __init__(self, session: "HostsSession", command: list[str]) -> None:
        self.session = session
        self.command = command

    @property
    def pid(self) -> str:
        return ", ".join(f"{link.remote_pid}@{link.spec.name}" for link in self.session.hosts if link.ready)

    def stop(self, grace_s: float = 3.0) -> None:
        self.session.stop_agents()

    @property
    def exit_code(self) -> int | None:
        codes = [link.proc.returncode for link in self.session.hosts if link.proc is not None]
        failed = [c for c in codes if c]
        if failed:
            return failed[0]
        return 1 if self.session.unreachable else 0


class HostsSession(RemoteSession):
    """A RemoteSession on agents it started itself over SSH: it can stop them, or leave them running."""

    spawned = True

    def __init__(self, hosts: list[HostLink], unreachable: list[HostLink], command: list[str],
                 options: RemoteOptions) -> None:
        super().__init__([f"127.0.0.1:{h.local_port}" for h in hosts], None, options)
        self.hosts = hosts
        self.unreachable = unreachable
        self.target = HostsTarget(self, command)
        self.title = f"hosts {', '.join(h.spec.text for h in hosts)}: {' '.join(command)}"
        self.left_running = False
        self._stopped = False
        self.folder = os.path.dirname(hosts[0].log_path)
        for link, h in zip(self.links, hosts):
            link.address = f"on {h.spec.text}"  # what notices name: the host, not its tunnel's local port

    @property
    def workflow_running(self) -> bool:
        if self._stopped:
            return False
        return any(h.running for h in self.hosts) and not all(link.ended.is_set() for link in self.links)

    def stop_agents(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGINT to every agent (each stops its command), then wait for each connection to close."""
        self._stopped = True
        stop_links(self.hosts, timeout, self.tell)

    def stop_workflow(self, grace_s: float = 5.0) -> None:
        self.stop_agents()
        self.finish()

    def detach(self) -> None:
        self.left_running = any(h.running for h in self.hosts)
        super().detach()
        for h in self.hosts:
            if h.proc is not None:
                _end(h.proc)

    def finish(self, progress=None) -> None:
        if self._finished.is_set():
            return
        super().finish(progress)
        for h in self.hosts:
            if h.proc is None:
                continue
            try:
                # The agent has ended (or we stopped it): its connection closes within a second or two.
                h.proc.wait(5.0 if self._stopped or not self.left_running else 0.1)
            except subprocess.TimeoutExpired:
                _end(h.proc)
        self.tell(f"what each agent and its job printed (while connected): {self.folder}")

    def reattach_help(self) -> list[str]:
        tunnels = [h.tunnel_command() + " &" for h in self.hosts]
        agents = " ".join(f"--agent 127.0.0.1:{h.local_port}" for h in self.hosts)
        return [*tunnels, f"gradetop attach {agents}"]


def stop_links(hosts: list[HostLink], timeout: float = STOP_TIMEOUT_S, tell=lambda line: None) -> None:
    """SIGINT to each agent (over a second ssh: each stops its command), then wait for each connection to close."""
    base = ssh_base()
    killers = []
    for h in hosts:
        if h.running and h.remote_pid:
            killers.append(subprocess.Popen(
                [*base, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-T", *h.ssh_options(),
                 h.spec.destination, f"kill -INT {h.remote_pid}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True))
    deadline = time.monotonic() + timeout
    for k in killers:
        try:
            k.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            k.kill()
            k.wait()
    for h in hosts:
        if h.proc is None:
            continue
        try:
            h.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            if h.remote_pid:
                tell(f"host {h.spec.text}: the agent did not stop within {timeout:.0f} s; "
                     f"closing the connection (its log: {h.remote_log} there)")
            _end(h.proc)


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def launch(specs: list[HostSpec], command: list[str], *, gradetop: str = "gradetop",
           agent_port: int = DEFAULT_AGENT_PORT, agent_args: list[str] | None = None,
           options: RemoteOptions | None = None, notify=print, timeout: float = START_TIMEOUT_S) -> HostsSession:
    """Start an agent on every host and wait until each serves (or fails: one line each, through notify).
    Returns the session on the hosts that came up (not yet opened); HostsError when none did."""
    base = ssh_base()
    folder = tempfile.mkdtemp(prefix="gradetop-hosts-")
    master = specs[0].name
    cwd = os.getcwd()
    links: list[HostLink] = []
    for rank, spec in enumerate(specs):
        link = HostLink(spec, rank, agent_port + rank, free_local_port(),
                        os.path.join(folder, f"{rank}-{re.sub(r'[^A-Za-z0-9_.@-]', '_', spec.text)}.log"))
        script = remote_script(gradetop, link.remote_port, command, rank, len(specs), master, cwd,
                               agent_args or [])
        argv = [*base, "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-o", "ConnectTimeout=10",
                "-T", *link.ssh_options(), "-L", f"{link.local_port}:127.0.0.1:{link.remote_port}",
                spec.destination, "sh -c " + shlex.quote(script)]
        with open(link.log_path, "w") as log:
            try:
                link.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True)
            except OSError as exc:
                raise HostsError(f"cannot run {base[0]}: {exc.strerror or exc}") from None
        links.append(link)
    deadline = time.monotonic() + timeout
    pending = list(links)
    try:
        while pending and time.monotonic() < deadline:
            for link in list(pending):
                link.read()
                if link.ready:
                    pending.remove(link)
                elif link.proc.poll() is not None:
                    link.read()
                    link.error = link.first_error()
                    pending.remove(link)
            if pending:
                time.sleep(0.1)
    except BaseException:
        # Interrupted while the hosts start: stop what already started; nothing is left behind.
        for link in links:
            link.read()
        stop_links(links, timeout=10)
        raise
    for link in pending:
        link.error = f"no agent answered within {timeout:.0f} s ({link.first_error()})"
        _end(link.proc)
    good = [h for h in links if h.ready and h.error is None]
    bad = [h for h in links if not (h.ready and h.error is None)]
    for h in bad:
        if h.proc is not None:
            _end(h.proc)
    if not good:
        raise HostsError("no host could be reached, the job started nowhere: "
                         + "; ".join(f"{h.spec.text}: {h.error}" for h in bad))
    for h in bad:
        notify(f"host {h.spec.text} cannot be reached: {h.error}")
    # The ssh forward is up once the agent says it listens; the viewer connects through it.
    return HostsSession(good, bad, command, options or RemoteOptions())
