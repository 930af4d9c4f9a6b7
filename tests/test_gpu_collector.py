"""The NVML sampler against the scripted fake (tests/fake_pynvml.py), and the GPU model it feeds.

Each test drives a fake clock, so the GPU timeline is exact; the fake uses
pynvml's own structs, constants and exception classes.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

import fake_pynvml
from gradetop.collectors.gpu import GpuSampler, driver_missing
from gradetop.collectors.gpu_pids import driver_pid_map, read_nspid
from gradetop.model.gpu import GpuModel
from gradetop.model.gpu_records import GpuBatch, GpuStatus
from gradetop.model.profile import Profile
from gradetop.model.snapshot import load, save


class Run:
    """A sampler on the fake, stepped by hand: `step(n)` takes n readings 0.25 s apart."""

    def __init__(self, script: dict, watched=(), **kwargs) -> None:
        self.now = 0.0
        fake_pynvml.configure(script, clock=lambda: self.now)
        self.records: list = []
        self.sampler = GpuSampler(self.records.append, lambda: watched, nvml=fake_pynvml, **kwargs)
        self.opened = self.sampler.open()

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            before = len(self.records)
            self.sampler.sample_once()
            # Batches carry wall-clock times; the model is fed the fake GPU's own time instead.
            self.records[before:] = [GpuBatch(self.now, r.devices, r.processes) if isinstance(r, GpuBatch) else r
                                     for r in self.records[before:]]
            self.now += 0.25

    @property
    def batches(self) -> list[GpuBatch]:
        return [r for r in self.records if isinstance(r, GpuBatch)]

    @property
    def statuses(self) -> list[GpuStatus]:
        return [r for r in self.records if isinstance(r, GpuStatus)]

    def model(self) -> GpuModel:
        model = GpuModel()
        for r in self.records:
            model.ingest(r)
        return model


def test_readings_come_in_si_units_with_identity():
    run = Run({"timeline": [{"util": 87, "mem_util": 40, "mem_used": 2 * 1024**3, "power_mw": 350_500,
                             "pcie_rx_kbs": 2000, "temp": 61, "sm_clock": 1755, "throttle": 4,
                             "sm_active": 71.5, "tensor_active": 30}]})
    assert run.opened
    run.step()
    d = run.batches[0].devices[0]
    assert (d.index, d.name) == (0, "NVIDIA H100 80GB HBM3") and d.uuid.startswith("GPU-")
    assert (d.util, d.mem_util, d.mem_used, d.mem_total) == (87, 40, 2 * 1024**3, 80 * 1024**3)
    assert d.power_w == pytest.approx(350.5) and d.power_limit_w == pytest.approx(700.0)  # from milliwatts
    assert d.pcie_rx_bps == 2000 * 1024  # from KB/s
    assert (d.temp_c, d.sm_clock_mhz, d.throttle) == (61, 1755, 4)
    assert d.mig == "disabled"
    run2 = Run({"timeline": [{"throttle": 0}]})
    run2.step()
    assert run2.batches[0].devices[0].throttle == 0  # no reason, not "unknown"
    # GPM needs two samples: the first reading already compares with the one taken at open.
    assert d.sm_active == pytest.approx(71.5) and d.tensor_active == pytest.approx(30)
    assert run.statuses[0].state == "ok" and "1 device (NVIDIA H100 80GB HBM3)" in run.statuses[0].message


def test_an_unsupported_metric_is_absent_not_zero_and_said_once():
    run = Run({"devices": [{"unsupported": ["power", "temp"], "gpm": False}], "timeline": [{"util": 50}]})
    run.step(4)
    devices = [b.devices[0] for b in run.batches]
    assert all(math.isnan(d.power_w) and math.isnan(d.temp_c) and math.isnan(d.sm_active) for d in devices)
    assert all(d.util == 50 for d in devices)
    said = [s for s in run.statuses if s.state == "unsupported"]
    assert len(said) == 2 and all(s.index == 0 for s in said)  # power draw, temperature: once each
    model = run.model()
    assert model.sentence().startswith("GPU 0: power draw not supported")
    window = model.window(0, 0, 1e12)
    assert window.energy_j is None and window.sm_active_mean is None  # absent, not zero watts or zero SM


def test_a_device_lost_mid_run_stops_its_readings_and_the_others_go_on():
    run = Run({"devices": [{}, {}], "timeline": [{"until_s": 1.0, "util": 60}, {"lost": [1]}]})
    run.step(8)
    per_device = [[d.index for d in b.devices] for b in run.batches]
    assert per_device[0] == [0, 1] and per_device[-1] == [0]
    lost = [s for s in run.statuses if s.state == "lost"]
    assert len(lost) == 1 and lost[0].index == 1 and "lost mid-run" in lost[0].message
    model = run.model()
    assert model.devices[1].lost and not model.devices[0].lost
    assert model.sentence() == "GPU: 1 of 2 devices lost mid-run (GPU 1); readings stop where each was lost"


@pytest.mark.parametrize("error, words", [
    ("LibraryNotFound", "GPU: no NVIDIA driver found (libnvidia-ml.so.1 missing)"),
    ("DriverNotLoaded", "GPU: the NVIDIA driver is installed but not loaded"),
    ("NoPermission", "GPU: permission denied opening NVML"),
])
def test_nvml_that_cannot_start_is_one_sentence(error, words):
    run = Run({"init_error": error})
    assert not run.opened
    assert [(s.state, s.message) for s in run.statuses][0][1] == words
    assert run.model().sentence() == words


def test_no_devices_is_said():
    run = Run({"devices": []})
    assert not run.opened
    assert run.statuses[-1].state == "no-devices" and "sees no devices" in run.statuses[-1].message


def test_a_missing_binding_is_said(monkeypatch):
    monkeypatch.setenv("GRADETOP_NVML_MODULE", "no_such_nvml_module")
    records = []
    sampler = GpuSampler(records.append)
    assert not sampler.open()
    assert records[0].state == "no-library" and "cannot load the NVML binding" in records[0].message


def test_processes_are_matched_by_pid_and_unmatched_ones_kept_and_said():
    run = Run({"processes": [4242, 777], "process_memory": 3 * 1024**2, "timeline": [{"util": 40}]}, watched=[4242])
    run.step(3)
    procs = run.batches[-1].processes
    assert {(p.pid, p.driver_pid) for p in procs} == {(4242, 4242), (-1, 777)}
    assert all(p.mem_bytes == 3 * 1024**2 for p in procs)
    assert any(p.sm_util == 40 for p in procs)
    unmatched = [s for s in run.statuses if s.state == "unmatched"]
    assert len(unmatched) == 1 and "driver pid 777" in unmatched[0].message and "host pids" in unmatched[0].message
    peaks = run.model().process_peaks()
    assert {(p["pid"], p["driver_pid"]) for p in peaks} == {(4242, 4242), (None, 777)}


def test_container_pids_map_through_nspid():
    # Our pid 12 is pid 12 here and 9012 in the host namespace (what the driver reports).
    nspid = {12: [9012, 12], 13: []}
    assert driver_pid_map([12, 13], read=lambda pid: nspid[pid]) == {12: 12, 9012: 12, 13: 13}
    import os
    assert read_nspid(os.getpid())[0] == os.getpid()


def test_no_permission_for_per_process_utilisation_keeps_memory():
    run = Run({"processes": [4242], "process_util_error": "NoPermission"}, watched=[4242])
    run.step(3)
    p = run.batches[-1].processes[0]
    assert p.mem_bytes > 0 and math.isnan(p.sm_util)
    said = [s for s in run.statuses if s.state == "no-permission"]
    assert len(said) == 1 and "per-process utilisation" in said[0].message


def test_mig_devices_are_listed():
    run = Run({"devices": [{"mig": 2}]})
    run.step()
    assert run.batches[0].devices[0].mig.startswith("enabled: 2 MIG devices (MIG-")


def test_rate_is_kept_between_1_and_10_hz():
    assert Run({}, rate_hz=100).sampler.interval == pytest.approx(0.1)
    assert Run({}, rate_hz=0.1).sampler.interval == pytest.approx(1.0)
    assert Run({}).sampler.interval == pytest.approx(0.25)


def test_window_integrates_energy_idle_and_utilisation():
    run = Run({"timeline": [{"until_s": 1.0, "util": 0, "power_mw": 100_000, "sm_active": 0},
                            {"util": 100, "power_mw": 300_000, "sm_active": 50}]})
    run.step(9)  # readings at 0 .. 2 s
    model = run.model()
    energy = model.window(0, 0, 2.0)
    # Readings at 0.25..1.0 s said 100 W / idle, from 1.25 s on 300 W / busy: each covers the 0.25 s before it.
    assert energy.energy_j == pytest.approx(3 * 0.25 * 100 + 4 * 0.25 * 300 + 0.25 * 100, rel=0.3)
    assert energy.idle_s == pytest.approx(1.0, abs=0.26)
    assert energy.util_mean == pytest.approx(50, abs=13)
    assert energy.sm_active_mean == pytest.approx(25, abs=7)
    assert energy.util_max == 100


def test_gpu_data_survives_a_snapshot(tmp_path):
    run = Run({"devices": [{}, {"unsupported": ["power"]}], "processes": [4242], "timeline": [{"util": 33}]},
              watched=[4242])
    run.step(5)
    profile = Profile()
    for r in run.records:
        profile.ingest(r)
    save(profile, tmp_path / "g.gtop")
    loaded = load(tmp_path / "g.gtop").gpu
    original = profile.gpu
    assert repr(loaded.devices) == repr(original.devices)  # NaN power limit: compare as written
    assert loaded.sentence() == original.sentence()
    for index in original.series:
        assert (loaded.series[index].util == original.series[index].util).all()
        assert len(loaded.processes[index]) == len(original.processes[index])
    assert loaded.process_peaks() == original.process_peaks()


def test_old_snapshots_without_gpu_data_open_with_a_sentence():
    model = GpuModel.from_dict(None)
    assert not model.devices and model.sentence() == "GPU: not recorded (no GPU sampler ran)"


def test_memory_stays_bounded_at_10_hz():
    run = Run({"devices": [{}, {}], "processes": [1, 2], "timeline": [{"util": 10}]}, watched=[1, 2])
    run.step()
    batch = run.batches[0]
    model = GpuModel()
    for i in range(15_000):  # 25 minutes
        model.ingest(GpuBatch(1000.0 + i * 0.1, batch.devices, batch.processes))
    # Past 10 minutes one reading a second is kept: ~600*10 + 900 + 2000 rows per device, not 15,000.
    assert len(model.series[0]) < 9_500
    assert len(model.processes[0]) < 2 * 9_500
    assert model.nbytes < 8 * 1024**2


def test_a_device_lost_before_the_first_reading_is_left_out_and_the_others_read():
    run = Run({"devices": [{}, {}], "timeline": [{"lost": [0]}]})
    assert run.opened
    run.step(2)
    assert [d.index for d in run.batches[-1].devices] == [1]
    said = [s for s in run.statuses if s.index == 0]
    assert said[0].state == "lost" and "GPU 0: cannot be read" in said[0].message


def test_when_no_driver_pid_matches_the_sentence_says_per_process_figures_are_missing():
    # Inside a container without the host's /proc: the driver's pids are not ours.
    run = Run({"processes": [9001]}, watched=[12])
    run.step(2)
    assert run.model().sentence().startswith("GPU: no process on the GPUs matched a watched one")


def test_timeline_lanes_fill_bins_between_readings_and_leave_gaps_blank():
    import numpy as np
    from types import SimpleNamespace
    from gradetop.model.gpu_picture import _binned

    series = SimpleNamespace(t=np.array([0.0, 1.0, 2.0, 3.0]), util=np.array([10, 20, np.nan, 40], np.float32))
    lane = _binned(series, 0.0, 4.0, 8)
    # Each bin takes the next reading (NVML's figure covers the period before it); NaN readings are
    # skipped; after the last reading nothing is known.
    assert lane[:7].tolist() == [10, 20, 20, 40, 40, 40, 40] and np.isnan(lane[7])


@pytest.mark.skipif(not driver_missing(), reason="this machine has an NVIDIA driver")
def test_without_a_driver_the_binding_is_not_even_loaded():
    """On this machine (no NVIDIA driver) the real sampler says so without importing pynvml: 0.017 s of CPU
    that every `record` on a machine without a GPU paid at its start."""
    code = ("import sys; from gradetop.collectors.gpu import GpuSampler\n"
            "records = []; assert not GpuSampler(records.append).open()\n"
            "print(records[0].state, 'pynvml' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "GRADETOP_NVML_MODULE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == ["no-driver", "False"], out.stderr
