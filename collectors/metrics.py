"""The agent's Prometheus endpoint: what the model knows of each process, at /metrics.

Computed at scrape time from a frozen picture of the profile (no lock held
while formatting), with the same functions `report` uses
(model.process_totals, model.phases), so a scrape and a report agree. Every
series is labelled host, pid (as its host knows it), rank ("" where the
process has none) and role (main: the process the agent follows; child).

    gradetop_process_cpu_seconds_total        counter  user + system CPU
    gradetop_process_resident_memory_bytes    gauge    RSS at the latest reading
    gradetop_process_read_bytes_total         counter  (where the kernel says)
    gradetop_process_written_bytes_total      counter
    gradetop_process_samples_total            counter  stack samples taken of it
    gradetop_process_sampling_coverage_ratio  gauge    share of its life sampled
    gradetop_phase_seconds_total              counter  wall seconds in each phase
                                                       (+ phase, source labels)
    gradetop_phase_instances_total            counter  instances of each phase

Uses prometheus_client's own exposition and HTTP server: the text format's
escaping and content negotiation are theirs to get right. Must never import
textual or rich.
"""

from __future__ import annotations

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from gradetop.model.phases import all_phases
from gradetop.model.process_totals import process_totals
from gradetop.model.profile import Profile
from gradetop.model.rules import parse_rules

LABELS = ["host", "pid", "rank", "role"]


class ProfileCollector(Collector):
    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def collect(self):
        picture = self.profile.freeze()
        totals = process_totals(picture)
        target = picture.meta.target_pid
        labels: dict[int, list[str]] = {}
        for pid, info in picture.processes.items():
            labels[pid] = [info.host or picture.meta.host, str(info.real_pid),
                           "" if info.rank is None else str(info.rank),
                           "main" if target is None or pid == target else "child"]
        cpu = CounterMetricFamily("gradetop_process_cpu_seconds", "User and system CPU seconds of the process",
                                  labels=LABELS)
        rss = GaugeMetricFamily("gradetop_process_resident_memory_bytes", "Resident memory of the process",
                                labels=LABELS)
        read = CounterMetricFamily("gradetop_process_read_bytes", "Bytes the process read from storage",
                                   labels=LABELS)
        written = CounterMetricFamily("gradetop_process_written_bytes", "Bytes the process wrote to storage",
                                      labels=LABELS)
        samples = CounterMetricFamily("gradetop_process_samples", "Stack samples taken of the process",
                                      labels=LABELS)
        coverage = GaugeMetricFamily("gradetop_process_sampling_coverage_ratio",
                                     "Share of the process's life its stack sampling covers", labels=LABELS)
        for pid, t in totals.items():
            where = labels[pid]
            cpu.add_metric(where, t.cpu_s)
            rss.add_metric(where, t.rss)
            if t.read_bytes >= 0:
                read.add_metric(where, t.read_bytes)
            if t.write_bytes >= 0:
                written.add_metric(where, t.write_bytes)
            samples.add_metric(where, t.samples)
            coverage.add_metric(where, t.coverage)
        yield from (cpu, rss, read, written, samples, coverage)
        yield from self._phases(picture, labels)

    def _phases(self, picture: Profile, labels: dict[int, list[str]]):
        options = picture.meta.options
        rules = parse_rules({"phase": options["phase_rules"]}) if options.get("phase_rules") else ()
        seconds = CounterMetricFamily("gradetop_phase_seconds", "Wall seconds spent in each phase",
                                      labels=LABELS + ["phase", "source"])
        count = CounterMetricFamily("gradetop_phase_instances", "Instances of each phase",
                                    labels=LABELS + ["phase", "source"])
        sums: dict[tuple, list[float]] = {}
        for p in all_phases(picture, rules):
            if p.pid not in labels:
                continue
            entry = sums.setdefault((p.pid, p.kind, p.source), [0.0, 0])
            entry[0] += p.duration
            entry[1] += 1
        for (pid, kind, source), (total, n) in sorted(sums.items()):
            seconds.add_metric(labels[pid] + [kind, source], total)
            count.add_metric(labels[pid] + [kind, source], n)
        yield seconds
        yield count


class MetricsServer:
    """prometheus_client's HTTP server on its own registry (not the process-wide default one)."""

    def __init__(self, profile: Profile, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ProfileCollector(profile))
        self.host, self.port = host, port
        self._server = None
        self._thread = None
        self.address: tuple[str, int] = (host, port)

    def start(self) -> "MetricsServer":
        self._server, self._thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        self.address = self._server.server_address[:2]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
