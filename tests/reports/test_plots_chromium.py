"""The bias report's per-group figure as a reader sees it: the HTML page opened in headless Chromium at a 1280 px
window, with 2, 20 and 100 groups; rows are measured on the screenshot, not on the PNG the page embeds."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from reports.bias import classification_bias_report
from reports.render import render_report

from .conftest import THRESHOLDS

ZEBRA = (240, 242, 246)  # the shade of every other group's row in reports.plots.group_rates_png


def _page(tmp: Path, k: int) -> Path:
    rng = np.random.default_rng(k)
    labels, preds, groups = [], [], []
    for g in range(k):
        rate = 0.3 + 0.4 * g / max(k - 1, 1)
        for _ in range(40):
            y = int(rng.random() < rate)
            labels.append(y)
            preds.append(y if rng.random() < 0.85 else 1 - y)
            groups.append(f"identity term number {g:03d}")
    report = classification_bias_report(
        run_id=f"k{k}", train_labels=labels, train_groups={"identity": groups}, test_labels=labels,
        test_predictions=preds, test_groups={"identity": groups}, positive_label=1, thresholds=THRESHOLDS,
        action="warn", min_group_size=30)
    page = tmp / f"bias{k}.html"
    page.write_bytes(render_report(report, "html"))
    return page


def _bands(png: Path) -> list[tuple[int, int, int, int]]:
    """The shaded group rows on the screenshot: (top, bottom, left, right) of each band of ZEBRA pixels."""
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    shaded = np.all(np.abs(pixels - np.array(ZEBRA)) <= 1, axis=2)
    rows = shaded.sum(axis=1) > 300  # a band spans the four panels
    bands, top = [], None
    for y, on in enumerate([*rows, False]):
        if on and top is None:
            top = y
        elif not on and top is not None:
            xs = np.where(shaded[top:y].any(axis=0))[0]
            if y - top >= 4:  # a pixel line of a near colour (anti-aliasing, a table rule) is not a row
                bands.append((top, y, int(xs.min()), int(xs.max())))
            top = None
    return bands


@pytest.mark.parametrize("k", [2, 20, 100])
def test_group_figure_is_readable_in_chromium_at_1280_px(tmp_path: Path, k: int) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (.ci/run installs it)")
    page, shot = _page(tmp_path, k), tmp_path / f"bias{k}.png"
    height = 2400 + 70 * k  # the figure and the tables above it fit in one screenshot
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--disable-background-networking", "--disable-component-update", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'chromium'}", f"--screenshot={shot}",
                    f"--window-size=1280,{height}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    bands = _bands(shot)
    assert len(bands) == k // 2  # every other group shaded, each drawn as its own row
    for top, bottom, left, right in bands:
        assert bottom - top >= 18, (top, bottom)  # a row a 10 pt label fits in, as shown (not as drawn)
        assert left >= 0 and right < 1280 and right - left >= 800  # within the window, not shrunk to a strip
