"""The dashboard in a real browser: headless Chromium from the distribution's packages loads the page, and the levels
table is in the rendered page and visible on its screenshot. Skipped, saying why, where Chromium is not installed or
cannot start.

The screenshot stays in the test's tmp dir; with MACROWATCH_SCREENSHOT_DIR set it is copied there as dashboard.png
(the README's is made so: MACROWATCH_SCREENSHOT_DIR=docs pytest tests/runtime/test_dashboard_browser.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .dashboard_world import build, serve

pytestmark = pytest.mark.slow  # a browser as a subprocess

CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and os.access(p, os.X_OK)), None)
SCREENSHOT_DIR = "MACROWATCH_SCREENSHOT_DIR"
WINDOW = (1280, 900)
# The colours of the level states in the test store's levels table (dashpage.STATE_COLORS): failed, confirmed.
FAILED, CONFIRMED = (0xC2, 0x41, 0x0C), (0x1D, 0x4E, 0xD8)


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with nothing of its own to fetch (no updates, sync or background requests)."""
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                           *args], capture_output=True, text=True, timeout=120)


def test_a_browser_shows_the_levels_table(tmp_path: Path, monkeypatch):
    if CHROMIUM is None:
        pytest.skip("browser test skipped: headless Chromium is not installed (Debian: apt-get install chromium; "
                    ".ci/run installs it when run as root)")
    config, store_path = build(tmp_path, monkeypatch)
    server = serve(config, store_path)
    shot = tmp_path / "dashboard.png"
    try:
        dom = chromium(tmp_path / "profile", "--dump-dom", server.url + "/")
        if dom.returncode != 0 or "<html" not in dom.stdout:
            last = (dom.stderr.strip().splitlines() or ["no output"])[-1]
            pytest.skip(f"browser test skipped: headless Chromium cannot start here (exit {dom.returncode}: {last})")
        taken = chromium(tmp_path / "profile", f"--screenshot={shot}", server.url + "/")
    finally:
        server.stop()
    assert '<table id="levels-table">' in dom.stdout and ">spx-3000</a>" in dom.stdout and ">rut-1550</a>" in dom.stdout
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    if os.environ.get(SCREENSHOT_DIR):
        target = Path(os.environ[SCREENSHOT_DIR])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target / "dashboard.png")
    from PIL import Image  # matplotlib's own dependency

    with Image.open(shot) as image:
        assert image.size == WINDOW
        colors = {c for _n, c in image.convert("RGB").getcolors(maxcolors=1 << 20)}
    # The levels table is visible: its state badges are painted in the first screen.
    assert FAILED in colors and CONFIRMED in colors
