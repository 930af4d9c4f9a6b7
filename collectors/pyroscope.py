"""Pushing the agent's profile to Pyroscope: pprof (model.export.pprof) every few seconds, at /ingest.

Every sample goes exactly once: the agent's Hub hands each flush's new
timeline rows here (the same rows it streams to viewers), and every
`every_s` seconds what came in is one pprof, POSTed to
`URL/ingest?name=gradetop{host=...}&from=...&until=...&format=pprof` as
multipart/form-data with the profile in a `profile` file field and a
`sample_type_config` telling Pyroscope our two sample types (wall and cpu,
nanoseconds, summed). Samples carry pid, tid, thread, role, phase, host and
rank labels (pprof string labels become Pyroscope's dynamic labels).

This follows the ingest API as Pyroscope's server API documentation gives
it (v1.2 to the latest docs; README names them). A push that fails is a
notice (once per kind of failure) and its window is dropped: the agent never
blocks on, nor buffers without bound for, a backend that is away. Must never
depend on textual or rich.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable

import numpy as np

from gradetop.collectors.background import Background
from gradetop.model.export.pprof import render
from gradetop.model.export.selection import Selection, profile_phases
from gradetop.model.profile import Profile
from gradetop.model.timeline import COLUMNS

SAMPLE_TYPES = {
    name: {"units": "samples", "aggregation": "sum", "display-name": f"{name}_nanoseconds", "sampled": False}
    for name in ("wall", "cpu")
}
"""pprof values here are nanoseconds, not counts: summed over time, never scaled by a sampling period."""
TIMEOUT_S = 10.0
MAX_PENDING_ROWS = 5_000_000
"""Past this (a backend away for long), the oldest rows are dropped rather than memory growing."""


def ingest_url(base: str, host: str, t0: float, t1: float) -> str:
    name = f"gradetop{{host={host}}}"
    query = urllib.parse.urlencode({"name": name, "from": int(t0), "until": int(np.ceil(t1)), "format": "pprof",
                                    "spyName": "gradetop"})
    return f"{base.rstrip('/')}/ingest?{query}"


def multipart(fields: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data request with file fields name -> (filename, data, type)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, (filename, data, kind) in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: {kind}\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class PyroscopePusher(Background):
    def __init__(self, profile: Profile, url: str, every_s: float = 10.0,
                 notify: Callable[[str], None] | None = None) -> None:
        super().__init__("gradetop-pyroscope")
        self.profile = profile
        self.url = url
        self.every_s = every_s
        self.notify = notify or (lambda line: None)
        self._rows: list[dict] = []
        self._pending = 0
        self._lock = threading.Lock()
        self._told: set[str] = set()
        self.pushes = 0
        self.pushed_samples = 0
        self.failures = 0

    def take(self, journal) -> None:
        """Called by the Hub at each flush (under the profile's lock): the new rows, as streamed."""
        if not journal.samples:
            return
        with self._lock:
            self._rows.extend(journal.samples)
            self._pending += sum(len(r["t"]) for r in journal.samples)
            while self._pending > MAX_PENDING_ROWS and len(self._rows) > 1:
                self._pending -= len(self._rows.pop(0)["t"])

    def run(self) -> None:
        while not self._stopping.wait(self.every_s):
            self.push()

    def close(self) -> None:
        """Stop, then push what is left (call after the Hub's last flush)."""
        self.stop()
        self.join(timeout=TIMEOUT_S + 5)
        self.push()

    def push(self) -> bool:
        with self._lock:
            parts, self._rows, self._pending = self._rows, [], 0
        if not parts:
            return True
        rows = {name: np.concatenate([np.asarray(p[name], dtype=dtype) for p in parts]) for name, dtype in COLUMNS.items()}
        order = np.lexsort((rows["t"], rows["tid"], rows["pid"]))
        rows = {k: v[order] for k, v in rows.items()}
        half = rows["w"].astype(np.float64) / 2
        t0, t1 = float((rows["t"] - half).min()), float((rows["t"] + half).max())
        picture = self.profile.freeze()
        phases = [p for p in profile_phases(picture) if p.end > t0 and p.start < t1]
        data = render(picture, Selection(rows, t0, t1, phases))
        body, kind = multipart({"profile": ("profile.pb.gz", data, "application/octet-stream"),
                                "sample_type_config": ("sample_type_config.json",
                                                       json.dumps(SAMPLE_TYPES).encode(), "application/json")})
        request = urllib.request.Request(ingest_url(self.url, picture.meta.host, t0, t1), data=body, method="POST",
                                         headers={"Content-Type": kind})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            self._fail(f"HTTP {exc.code}", f"Pyroscope at {self.url} refused a push (HTTP {exc.code} {exc.reason})")
            return False
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            self._fail(type(reason).__name__, f"cannot push to Pyroscope at {self.url} ({reason}); "
                                              "its samples stay in the agent's stream")
            return False
        self.pushes += 1
        self.pushed_samples += int(rows["n"].sum())
        return True

    def _fail(self, kind: str, line: str) -> None:
        self.failures += 1
        if kind not in self._told:
            self._told.add(kind)
            self.notify(line)


def check_url(url: str) -> str:
    """The base URL, or ValueError saying what is wrong with it."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"--pyroscope {url}: give a URL such as http://127.0.0.1:4040")
    return url

