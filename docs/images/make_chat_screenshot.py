"""Render ``docs/images/chat.png``: a real conversation in the Textual chat, headless.

Runs the real agent (whatever backend ``auto`` finds: Ollama or the embedded GGUF model) and the
real tools, drives the app with Textual's Pilot, saves an SVG screenshot and converts it to PNG
with ``rsvg-convert`` (Debian ``librsvg2-bin``; only needed for this picture, not by Taller)::

    python docs/images/make_chat_screenshot.py [--out docs/images/chat.png]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from taller.tui import TallerApp

TRAIN = "train the autoencoder for 1 epoch"
SHOW = "show me reconstructions from the autoencoder"


async def ask(app: TallerApp, pilot, text: str, deadline: float) -> None:
    app.prompt.value = text
    await pilot.press("enter")
    await pilot.pause(0.5)
    while time.monotonic() < deadline:
        if app.screen.__class__.__name__ == "ConfirmScreen":
            await pilot.press("y")  # approve the training
        elif not app.running:
            break
        await pilot.pause(0.5)


async def converse(app: TallerApp, svg: Path, timeout: float) -> None:
    async with app.run_test(size=(120, 44)) as pilot:
        app.prompt.cursor_blink = False
        deadline = time.monotonic() + timeout
        while app.agent is None and time.monotonic() < deadline:
            await pilot.pause(0.2)
        await ask(app, pilot, TRAIN, deadline)
        # The run trains in the background while the chat stays free; wait for it to end.
        while time.monotonic() < deadline:
            rows = app.runs_panel.rows()
            if rows and rows[0].state != "running":
                break
            await pilot.pause(1.0)
        await ask(app, pilot, SHOW, deadline)
        await pilot.pause(1.0)
        svg.write_text(app.export_screenshot(title="taller chat"), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).with_name("chat.png")))
    parser.add_argument("--timeout", type=float, default=480)
    options = parser.parse_args()
    svg = Path(tempfile.mkdtemp()) / "chat.svg"
    app = TallerApp(images="halfcell", show_threads=True)
    asyncio.run(converse(app, svg, options.timeout))
    # The SVG names the Fira Code web font; a local monospace font renders the same grid.
    text = svg.read_text(encoding="utf-8").replace("Fira Code", "DejaVu Sans Mono")
    # librsvg drops the space that starts a styled run unless whitespace is preserved.
    text = text.replace("<svg ", '<svg xml:space="preserve" ', 1)
    svg.write_text(text, encoding="utf-8")
    if shutil.which("rsvg-convert") is None:
        raise SystemExit(f"rsvg-convert not found (apt-get install librsvg2-bin); the SVG is at {svg}")
    subprocess.run(["rsvg-convert", str(svg), "-o", options.out], check=True)
    print(f"wrote {options.out} (from {svg})")


if __name__ == "__main__":
    main()
