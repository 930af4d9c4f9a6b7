"""The agent's /metrics, read by a real Prometheus scraping two agents on loopback.

Each agent follows one rank that works through marked phases, then idles
so its counters stand still. Prometheus (Debian's package; .ci/run installs
it) scrapes both every second; the values read back through its HTTP query
API (/api/v1/query) must match gradetop's own report of the same processes,
taken by a viewer merging both agents.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import WORKLOADS
from gradetop.collectors.remote import RemoteOptions, RemoteSession
from gradetop.model.report import build_report
from test_agent import start_agent, stop, wait_for

PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def query(base: str, promql: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def metrics_port(proc) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = Path(proc.log).read_text()
        if "metrics on http://127.0.0.1:" in text:
            return int(text.split("metrics on http://127.0.0.1:")[1].split("/")[0])
        time.sleep(0.05)
    raise AssertionError(Path(proc.log).read_text())


@pytest.mark.timeout(240)
@pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary (apt-get install prometheus; .ci/run does)")
def test_prometheus_scrapes_two_agents_and_agrees_with_the_report(tmp_path, ptrace):
    agents = [start_agent([sys.executable, str(WORKLOADS / "ranked_then_idle.py"), "120"],
                          {"RANK": str(rank), "WORLD_SIZE": "2"}, 0, "--metrics", "127.0.0.1:0")
              for rank in (0, 1)]
    prometheus = None
    viewer = None
    try:
        ports = [metrics_port(proc) for proc, _ in agents]
        config = tmp_path / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                          "scrape_configs:\n  - job_name: gradetop\n    static_configs:\n"
                          f"      - targets: [{', '.join(repr(f'127.0.0.1:{p}') for p in ports)}]\n")
        web = free_port()
        base = f"http://127.0.0.1:{web}"
        prometheus = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                       f"--web.listen-address=127.0.0.1:{web}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        viewer = RemoteSession([f"127.0.0.1:{port}" for _, port in agents],
                               options=RemoteOptions(save=False)).open().start()

        def phases_done() -> bool:
            with viewer.profile.lock:
                ends = [m for m in viewer.profile.marks if m.kind == "E" and m.name == "compute"]
            return len(ends) == 6

        wait_for(phases_done, timeout=120, what="both ranks through their phases")
        time.sleep(4)  # a few scrapes after the last phase ended

        def scraped() -> bool:
            try:
                return len(query(base, 'gradetop_phase_seconds_total{phase="compute"}')) == 2
            except OSError:
                return False

        wait_for(scraped, timeout=60, what="Prometheus to have scraped both agents")
        picture = viewer.profile.freeze()
        report = build_report(picture)
        phase_rows = query(base, 'gradetop_phase_seconds_total{source="marker"}')
        cpu_rows = query(base, "gradetop_process_cpu_seconds_total")
        rss_rows = query(base, "gradetop_process_resident_memory_bytes")
        sample_rows = query(base, "gradetop_process_samples_total")
        up = query(base, 'up{job="gradetop"}')
    finally:
        if viewer is not None:
            viewer.finish()
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=30)
        for proc, _ in agents:
            stop(proc)
    assert [r["value"][1] for r in up] == ["1", "1"]
    by_real = {p["host_pid"]: p for p in report["processes"]}
    merged_of = {p["host_pid"]: p["pid"] for p in report["processes"]}
    # Phases: the report's instances summed per process and phase equal the scraped counters.
    want: dict[tuple, float] = {}
    for ph in report["phases"]:
        if ph["source"] == "marker":
            key = (ph["pid"], ph["type"])
            want[key] = want.get(key, 0.0) + ph["duration_s"]
    got = {(merged_of[int(r["metric"]["pid"])], r["metric"]["phase"]): float(r["value"][1]) for r in phase_rows}
    assert set(got) == set(want) and len(got) == 4  # load and compute on two ranks
    for key, seconds in want.items():
        assert got[key] == pytest.approx(seconds, abs=2e-3), key
    assert {(r["metric"]["rank"], r["metric"]["role"]) for r in phase_rows} == {("0", "main"), ("1", "main")}
    for r in cpu_rows + rss_rows + sample_rows:
        assert int(r["metric"]["pid"]) in by_real and r["metric"]["host"] == by_real[int(r["metric"]["pid"])]["host"]
        assert r["metric"]["rank"] == str(by_real[int(r["metric"]["pid"])]["rank"])
    for r in cpu_rows:  # idle by now: the CPU counter stands still
        assert float(r["value"][1]) == pytest.approx(by_real[int(r["metric"]["pid"])]["cpu_s"], abs=0.05)
        assert float(r["value"][1]) > 0.2  # it spun 1.8 s of wall time (on a shared machine, less CPU)
    for r in rss_rows:
        assert float(r["value"][1]) == pytest.approx(by_real[int(r["metric"]["pid"])]["rss_bytes"], rel=0.05)
    for r in sample_rows:
        # The idle thread is still sampled at 100 Hz: the scrape (up to a second old) and the viewer's copy
        # (up to a flush behind the agent) differ by a few seconds of samples at most.
        scraped, reported = float(r["value"][1]), by_real[int(r["metric"]["pid"])]["samples"]
        assert abs(scraped - reported) <= 100 * 3, (scraped, reported)
        assert scraped > 100
