"""Pushing to Pyroscope: a loopback HTTP endpoint takes /ingest as Pyroscope's API documents it,
decodes each pprof with protobuf, and checks its labels and that every sample went exactly once."""

from __future__ import annotations

import gzip
import json
import sys
import threading
import time
import urllib.parse
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from conftest import WORKLOADS
from gradetop.collectors.agent import Hub
from gradetop.collectors.pyroscope import PyroscopePusher
from gradetop.model.export import profile_pb2
from gradetop.model.profile import Profile, ProfileMeta
from gradetop.model.records import PhaseMark
from test_agent import feed, start_agent, stop


class Ingest:
    """A stand-in Pyroscope: keeps every /ingest request's query and decoded profile."""

    def __init__(self) -> None:
        self.pushes: list[tuple[dict, profile_pb2.Profile, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                url = urllib.parse.urlparse(self.path)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
                message = BytesParser(policy=HTTP).parsebytes(head + body)
                files = {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
                         for part in message.iter_parts()}
                profile = profile_pb2.Profile()
                profile.ParseFromString(gzip.decompress(files["profile"]))
                outer.pushes.append((dict(urllib.parse.parse_qsl(url.query)), profile,
                                     json.loads(files["sample_type_config"])))
                ok = url.path == "/ingest"
                self.send_response(200 if ok else 404)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def labels(profile: profile_pb2.Profile, sample) -> dict:
    s = profile.string_table
    return {s[label.key]: (s[label.str] if label.str else label.num) for label in sample.label}


def test_every_sample_is_pushed_once_with_its_labels():
    ingest = Ingest()
    profile = Profile(ProfileMeta(host="node7", command=["python", "train.py"], target_pid=100, start_time=999.0))
    hub = Hub(profile, every_s=0.1)
    pusher = PyroscopePusher(profile, ingest.url, every_s=0.3)
    hub.listeners.append(pusher.take)
    hub.start()
    pusher.start()
    try:
        profile.ingest(PhaseMark(1000.0, 101, 101, "B", "train"))
        for i in range(6):
            feed(profile, 1000.0 + i, pid=101)  # rank 1 (pid % 2)
            time.sleep(0.2)
        profile.ingest(PhaseMark(1010.0, 101, 101, "E", "train"))
    finally:
        hub.close()
        pusher.close()
        ingest.close()
    assert len(ingest.pushes) >= 2, "pushed every few tenths of a second, and once more at the end"
    wall_ns = in_phase_ns = 0
    for query, pprof, config in ingest.pushes:
        assert query["format"] == "pprof" and query["name"] == "gradetop{host=node7}"
        assert int(query["from"]) <= int(query["until"])
        assert set(config) == {"wall", "cpu"} and config["cpu"]["aggregation"] == "sum"
        types = [pprof.string_table[t.type] for t in pprof.sample_type]
        assert types == ["wall", "cpu"]
        for sample in pprof.sample:
            got = labels(pprof, sample)
            assert got["host"] == "node7" and got["rank"] == 1 and got["role"] == "child" and got["pid"] == 101
            wall_ns += sample.value[0]
            in_phase_ns += sample.value[0] if got.get("phase") == "train" else 0
    total = float(profile.timeline.w.astype(np.float64).sum())
    assert wall_ns == pytest.approx(total * 1e9, rel=1e-6)
    # A phase still open when a window is pushed ends at its thread's last sample, which it leaves out.
    assert in_phase_ns >= 0.95 * wall_ns
    assert pusher.pushed_samples == profile.timeline.samples == 300


def test_a_backend_that_is_away_is_one_notice_and_the_agent_goes_on():
    told = []
    profile = Profile(ProfileMeta(host="n"))
    pusher = PyroscopePusher(profile, "http://127.0.0.1:9", every_s=60, notify=told.append)
    hub = Hub(profile, every_s=60)
    hub.listeners.append(pusher.take)
    for i in range(3):
        feed(profile, 1000.0 + i)
        hub.flush()
        assert pusher.push() is False
    assert len(told) == 1 and "cannot push to Pyroscope" in told[0]
    assert pusher.failures == 3


def test_the_agent_pushes_a_real_workload(tmp_path, ptrace):
    ingest = Ingest()
    try:
        proc, _ = start_agent([sys.executable, str(WORKLOADS / "busy_forever.py")], {"RANK": "3"}, 0,
                              "--pyroscope", ingest.url, "--pyroscope-every", "1", "--duration", "5")
        proc.wait(timeout=60)
        stop(proc)
    finally:
        ingest.close()
    assert len(ingest.pushes) >= 2
    seen = [labels(p, s) for _, p, _ in ingest.pushes for s in p.sample]
    assert seen and {s["rank"] for s in seen} == {3} and {s["role"] for s in seen} == {"main"}
    assert all(s["host"] for s in seen)
