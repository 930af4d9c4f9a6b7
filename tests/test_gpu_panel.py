"""The GPU panel at 80x24, keyboard only: key 8 shows it, it says what the GPUs do, and what is missing.

The profile is the recorded demo plus GPU and host readings from the fake
NVML over the demo's own time span (two devices: one with GPM, one without
and lost mid-run), so the processes table and the timeline have GPU data too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import fake_pynvml
from gradetop.collectors.gpu import GpuSampler
from gradetop.collectors.host import read_host
from gradetop.model.gpu_picture import gpu_picture
from gradetop.model.gpu_records import GpuBatch, HostReading
from gradetop.model.snapshot import load
from gradetop.tui.app import GradetopApp
from gradetop.tui.gpu_panel import GpuPanel, panel_lines
from gradetop.tui.processes import ProcessTable
from gradetop.model.source import FileSource
from gradetop.tui.timeline import TimelineView

DEMO = Path(__file__).parent / "data" / "demo.gtop"


def gpu_profile():
    profile = load(DEMO)
    pid = profile.meta.target_pid
    now = [0.0]
    fake_pynvml.configure({"devices": [{}, {"gpm": False}], "processes": [pid, 31337],
                           "timeline": [{"until_s": 5, "util": 20, "sm_active": 10, "mem_used": 3 * 1024**3,
                                         "power_mw": 200_000},
                                        {"util": 90, "sm_active": 75, "throttle": 4, "lost": [1]}]},
                          clock=lambda: now[0])
    records = []
    sampler = GpuSampler(records.append, lambda: [pid], nvml=fake_pynvml)
    assert sampler.open()
    start, end = profile.meta.start_time, profile.meta.end_time
    t = start
    while t < end:
        before = len(records)
        sampler.sample_once()
        records[before:] = [GpuBatch(t, r.devices, r.processes) if isinstance(r, GpuBatch) else r
                            for r in records[before:]]
        host = read_host()
        records.append(HostReading(t, (12.0, 80.0), *[getattr(host, f) for f in HostReading.__slots__[2:]]))
        t += 0.25
        now[0] += 10 * 0.25 * 5 / max(end - start, 1)  # the fake's 10 s timeline spans the demo
    for r in records:
        profile.ingest(r)
    return profile


def test_panel_lines_fit_80_columns_and_say_what_is_missing():
    picture = gpu_picture(gpu_profile())
    lines = [line.plain for line in panel_lines(picture, 78)]
    text = "\n".join(lines)
    assert "GPU 0 NVIDIA H100 80GB HBM3" in text and "GPU 1 NVIDIA H100 80GB HBM3  LOST" in text
    assert "SMs busy" in text and "no GPM on this device" in text  # which figure is which
    assert "kernel ran" in text and "throttle: power cap" in text
    assert "driver pid 31337 (not matched)" in text
    assert picture.sentence.startswith("GPU: 1 of 2 devices lost mid-run")
    assert "Host" in text and "2 cores" in text
    assert all(len(line) <= 78 for line in lines[1:]), [line for line in lines if len(line) > 78]


async def until(pilot, condition, what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def test_gpu_panel_in_the_app_at_80x24():
    profile = gpu_profile()
    pid = profile.meta.target_pid

    async def main():
        app = GradetopApp(FileSource(profile, str(DEMO)), refresh_s=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            panel = app.query_one(GpuPanel)
            await until(pilot, lambda: app.picture is not None, "a picture")
            assert panel.picture is None  # hidden (80x24 shows one panel): drawn when it comes up
            await pilot.press("8")
            await until(pilot, lambda: panel.picture is not None and panel.region.width > 0, "the GPU panel laid out")
            assert app.active_panel == "gpu" and panel.display and panel.has_focus
            assert panel.region.width == 80
            body = str(app.query_one("#gpu-body").render())
            assert "GPU 0" in body and "GPU: 1 of 2 devices lost" in body
            # Keyboard scrolling: the panel is taller than 24 rows.
            assert panel.max_scroll_y > 0
            await pilot.press("end")
            await until(pilot, lambda: panel.scroll_y == panel.max_scroll_y, "scrolled to the end")
            header = str(app.query_one("#header").render())
            assert "GPU0" in header or "GPU:" in header
            # The processes table has GPU columns with our process's memory on the GPUs.
            await pilot.press("6")
            table = app.query_one(ProcessTable)
            await until(pilot, lambda: table.row_count > 0, "process rows")
            labels = [str(c.label) for c in table.columns.values()]
            assert "GPUmem" in labels and "GPU%" in labels
            row = table.get_row(str(pid))
            assert row[labels.index("GPUmem")] in ("2.0G", "1.0G")
            # The timeline has a GPU utilisation lane per device.
            await pilot.press("3")
            await pilot.pause(0.1)
            lines = ["".join(seg.text for seg in line) for line in app.query_one(TimelineView)._lines]
            assert any(line.startswith("GPU0 util") for line in lines)
            assert any(line.startswith("GPU1 util") for line in lines)
            app.exit()

    asyncio.run(main())


def test_no_driver_is_one_sentence_in_the_header_and_the_panel():
    from gradetop.model.gpu_records import GpuStatus

    profile = load(DEMO)
    sentence = "GPU: no NVIDIA driver found (libnvidia-ml.so.1 missing)"
    profile.ingest(GpuStatus(profile.meta.start_time, "no-driver", sentence))

    async def main():
        app = GradetopApp(FileSource(profile, str(DEMO)), refresh_s=3600)
        async with app.run_test(size=(160, 48)) as pilot:
            panel = app.query_one(GpuPanel)
            await until(pilot, lambda: panel.picture is not None, "a GPU picture")
            app.update_header()
            await pilot.pause(0.05)
            assert sentence in str(app.query_one("#header").render())
            body = str(app.query_one("#gpu-body").render())
            assert body.count("GPU: ") == 1 and sentence in body and "Host" not in body
            app.exit()

    asyncio.run(main())


def test_panel_says_what_the_gpu_waited_for_per_phase_type_wrapped_not_cut():
    from gradetop.model.phase_costs import cost_phases
    from gradetop.model.phases import all_phases

    profile = gpu_profile()
    picture = gpu_picture(profile, costs=cost_phases(profile, all_phases(profile)))
    assert picture.verdicts and all(": " in v for v in picture.verdicts)
    lines = [line.plain for line in panel_lines(picture, 78)]
    start = lines.index("What the GPU waited for (per phase type)")
    section = " ".join(line.strip() for line in lines[start + 1:start + 12])
    assert picture.verdicts[0].split(": ", 1)[1][:60] in section
    assert all(len(line) <= 78 for line in lines[start:])


def test_gpus_that_appear_under_a_dialog_show_when_it_closes():
    """The panels' screen takes the layout's classes, also while a dialog is over it: the GPU panel is there
    when GPUs come during the help, and the dialog does not take the panels' layout."""
    from gradetop.tui.app import PictureReady

    async def main():
        app = GradetopApp(FileSource(gpu_profile(), str(DEMO)), refresh_s=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.picture is not None, "a picture")
            panels = app.screen
            assert not panels.has_class("no-gpu")
            app._has_gpu = False  # as before the first GPU reading
            app.apply_layout()
            assert panels.has_class("no-gpu")
            await pilot.press("question_mark")
            await until(pilot, lambda: app.screen is not panels, "the help")
            app.post_message(PictureReady(app.picture))  # the first picture with GPUs, under the help
            await until(pilot, lambda: not panels.has_class("no-gpu"), "the GPU panel back")
            assert not app.screen.has_class("no-gpu") and not app.screen.has_class("narrow")
            await pilot.press("escape")
            await pilot.press("8")
            panel = app.query_one(GpuPanel)
            await until(pilot, lambda: panel.region.width == 80, "the GPU panel laid out")
            app.exit()

    asyncio.run(main())
