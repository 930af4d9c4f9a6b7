"""Regenerate the SVGs in screenshots/: gradetop watching its demo workflow, live.

    python screenshots/make_screenshots.py

Runs the demo at full scale, waits until training is under way, and has the
app save each main screen at 160x48 (everything at once) and 80x24 (tabs).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

from gradetop.collectors.window import StackOptions
from gradetop.tui.app import GradetopApp
from gradetop.collectors.session import Session, SessionOptions

HERE = Path(__file__).parent
DEMO = [sys.executable, "-m", "gradetop.demo"]
SHOTS_80 = [("1", "flame-80x24"), ("2", "top-80x24"), ("3", "timeline-80x24"), ("4", "phases-80x24"), ("5", "threads-80x24"), ("6", "processes-80x24"),
            ("7", "output-80x24"), ("8", "gpu-80x24")]


async def shoot(size: tuple[int, int], keys: list[tuple[str, str]], wait_s: float) -> None:
    source = Session.spawn(DEMO, SessionOptions(StackOptions(), save=False), mode="demo", capture_output=True)
    app = GradetopApp(source, refresh_s=0.5)
    try:
        async with app.run_test(size=size) as pilot:
            await pilot.pause(wait_s)
            for key, name in keys:
                await pilot.press(key)
                await pilot.pause(1.2)
                app.save_screenshot(f"{name}.svg", str(HERE))
                print(f"screenshots/{name}.svg")
    finally:
        # Never leave a demo behind.
        stopper = threading.Thread(target=source.stop_workflow, kwargs={"grace_s": 2.0})
        stopper.start()
        stopper.join()


def main() -> None:
    asyncio.run(shoot((160, 48), [("1", "overview-160x48"), ("3", "timeline-160x48")], wait_s=14))
    asyncio.run(shoot((80, 24), SHOTS_80, wait_s=14))


if __name__ == "__main__":
    main()
