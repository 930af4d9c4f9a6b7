"""`gradetop record` end to end, on real processes, with the GPU verdicts checked against what happened.

Each job's host side does one thing (tests/workloads/gpu_job.py) while the
fake GPU (tests/fake_pynvml.py, through the GRADETOP_NVML_MODULE hook) says
what the device does; the report must name the bottleneck with its numbers.
The no-driver test uses no fake: this machine has no NVIDIA driver.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import WORKLOADS, gradetop

pytestmark = pytest.mark.attach

TESTS = Path(__file__).parent
JOB = str(WORKLOADS / "gpu_job.py")


def fake_env(script: dict) -> dict:
    env = dict(os.environ)
    env["GRADETOP_NVML_MODULE"] = "fake_pynvml"
    env["GRADETOP_FAKE_GPU"] = json.dumps({"processes": "children", **script})
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return env


def record(tmp_path, mode: str, script: dict | None, seconds: float = 3.0):
    out = tmp_path / f"{mode}.gtop"
    env = fake_env(script) if script is not None else {**os.environ}
    env["GPU_JOB_SECONDS"] = str(seconds)
    result = gradetop("record", "-o", str(out), "--", "python", JOB, mode, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(gradetop("report", str(out), "--json").stdout)
    text = gradetop("report", str(out)).stdout
    return result, report, text


def train(report: dict) -> dict:
    return next(p for p in report["phases"] if p["name"] == "train" and p["source"] == "marker")


IDLE = {"timeline": [{"util": 0, "sm_active": 0, "power_mw": 80_000}]}
BUSY = {"timeline": [{"util": 97, "sm_active": 82, "power_mw": 650_000}]}
HALF = {"timeline": [{"util": 35, "sm_active": 20, "power_mw": 300_000}]}


@pytest.mark.parametrize("mode, script, kind, words", [
    ("input", IDLE, "input", ["input-bound: GPU 0 was idle", "of `train` while the main thread waited", "queue.get"]),
    ("host", IDLE, "host", ["host-bound: GPU 0 was idle", "ran Python"]),
    ("sync", HALF, "sync", ["sync-bound: the main thread waited on the GPU", "`value = loss.item()` at gpu_job.py:",
                            "GPU 0 was 35% utilised, SM active 20%"]),
    ("comm", IDLE, "communication", ["communication-bound: GPU 0 was idle", "torch.distributed collective"]),
    ("sync", BUSY, "gpu", ["GPU-bound (the good case): GPU 0 was 97% utilised, SM active 82%"]),
])
def test_verdict_names_what_the_gpu_waited_for(tmp_path, ptrace, mode, script, kind, words):
    _, report, text = record(tmp_path, mode, script)
    phase = train(report)
    assert phase["gpu_verdict_kind"] == kind, phase["gpu_verdict"]
    for w in words:
        assert w in phase["gpu_verdict"], phase["gpu_verdict"]
    # The evidence is in numbers: the idle share is a percentage the fields back up.
    assert phase["gpu_idle_s"] is not None and phase["gpu_util_mean"] is not None
    # The sampler may start late on a loaded machine: idle time is judged over the time it read.
    assert 0.3 * phase["duration_s"] < phase["gpu_read_s"] <= phase["duration_s"] + 0.01
    if script is IDLE:
        assert phase["gpu_idle_s"] > 0.9 * phase["gpu_read_s"] and phase["gpu_util_mean"] == 0
    assert phase["gpu_memory_peak_bytes"] == 512 * 1024**2
    assert "GPUs" in text and f"train: {phase['gpu_verdict'][:40]}" in text.replace("\n      ", " ")


def test_report_lists_devices_processes_energy_and_host(tmp_path, ptrace):
    _, report, text = record(tmp_path, "host", BUSY, seconds=2.0)
    (gpu,) = report["gpus"]
    assert gpu["index"] == 0 and gpu["uuid"].startswith("GPU-") and gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert gpu["memory_total_bytes"] == 80 * 1024**3 and gpu["memory_peak_bytes"] == 512 * 1024**2
    assert gpu["util_mean"] == pytest.approx(97, abs=1) and gpu["util_max"] == 97
    assert gpu["sm_active_mean"] == pytest.approx(82, abs=1)
    # 650 W for about the 2 s of the run (the sampler starts and stops with it).
    assert 650 * 1.5 < gpu["energy_j"] < 650 * 3.5
    assert report["gpu_status"] is None
    job = [p for p in report["gpu_processes"] if p["pid"] is not None]
    assert job and job[0]["memory_peak_bytes"] == 1024**3
    host = report["host_resources"]
    assert host["cpu"]["cores"] == os.cpu_count() and 0 <= host["cpu"]["mean_percent"] <= 100
    assert host["memory"]["total_bytes"] > host["memory"]["peak_used_bytes"] > 0
    assert set(host["disk"]) >= {"read_bytes", "write_bytes"} and set(host["net"]) >= {"recv_bytes", "sent_bytes"}
    assert isinstance(report["host"], str)  # the machine's name, as before
    assert "GPU 0 NVIDIA H100 80GB HBM3" in text and "Host" in text and "energy" in text


def test_no_driver_is_one_sentence_and_nothing_else_changes(tmp_path, ptrace, no_traceback):
    # No fake: the real pynvml on a machine without the NVIDIA driver.
    result, report, text = record(tmp_path, "host", None, seconds=1.5)
    no_traceback(result)
    sentence = "GPU: no NVIDIA driver found (libnvidia-ml.so.1 missing)"
    assert report["gpus"] == [] and report["gpu_status"] == sentence
    assert report["exit_code"] == 0 and report["samples"] > 50
    assert any(f["function"] == "main" for f in report["functions"])
    assert report["host_resources"] is not None and train(report)["gpu_verdict"] is None
    assert sentence in text and text.count("GPU: ") == 1


def test_a_gpu_lost_mid_run_and_an_unsupported_metric_are_said_and_recording_goes_on(tmp_path, ptrace, no_traceback):
    script = {"devices": [{"unsupported": ["power"]}, {}],
              "timeline": [{"until_s": 1.0, "util": 50}, {"util": 50, "lost": [1]}]}
    result, report, text = record(tmp_path, "host", script, seconds=2.5)
    no_traceback(result)
    assert [g["lost"] for g in report["gpus"]] == [False, True], (report["gpu_status"], result.stderr[-2000:])
    assert report["gpu_status"].startswith("GPU: 1 of 2 devices lost mid-run (GPU 1)")
    g0 = report["gpus"][0]
    assert g0["util_mean"] == pytest.approx(50, abs=1) and g0["energy_j"] is None  # power unsupported: energy absent
    assert report["samples"] > 100 and train(report)["gpu_util_mean"] == pytest.approx(50, abs=1)
    assert "(LOST)" in text and "GPU: 1 of 2 devices lost mid-run" in text
