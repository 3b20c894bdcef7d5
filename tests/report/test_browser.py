"""Headless Chromium opens the HTML report offline and renders it (skipped where Chromium is not installed)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

WIDTH, HEIGHT = 1280, 2000


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)


@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed (Debian: apt-get install -y chromium)")
def test_headless_chromium_renders_the_report(rendered, tmp_path):
    import numpy as np
    from PIL import Image

    out, _, _, _ = rendered
    shot = tmp_path / "shot.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
           f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", (out / "report.html").as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(shot) as im:
        assert im.size == (WIDTH, HEIGHT)
        rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    # not blank: the dark-blue header band, text and the red/blue summary boxes are all on the first screen
    assert rgb.std() > 20
    ink = (rgb.sum(axis=2) < 200).mean(axis=1)  # dark pixels per row
    assert (ink > 0.002).sum() > 200  # many rows carry text or figure lines
    header = rgb[:60, WIDTH // 2]
    assert (header[:, 2] > header[:, 0] + 60).all()  # the blue title band rendered (CSS applied)
    lower = rgb[HEIGHT // 2:]
    assert (lower.sum(axis=2) < 600).mean() > 0.01  # content continues below the fold of the summary
