"""The Sketch tab in a real browser (Debian's chromium driven by Playwright): draw strokes on the Sketchpad
with the mouse, click Draw, get an image of the model's size whose pixels vary; the empty canvas is refused
with the tab's message. With env HFLDM_SCREENSHOTS=<folder> the screenshot is saved there as sketch.png;
with HFLDM_BROWSER_SKETCH_MODEL=<folder> the tab serves that model instead of a tiny random one:
  HFLDM_BROWSER_SKETCH_MODEL=models/hfldm-emoji-sketch HFLDM_SCREENSHOTS=space/screenshots \
  pytest tests/space/test_space_sketch_browser.py
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from _space_fixtures import IMAGE_SIZE, SpaceProcess, save_tiny_pipeline

from tests.space.test_space_browser import IMAGE_STATS_JS, LOADED_JS
from tests.space.test_space_sketch import tiny_sketch_pipeline

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")


def draw_strokes(page, canvas) -> None:
    """A face: an outline square and two eye dots, drawn with the mouse on the Sketchpad's canvas."""
    box = canvas.bounding_box()
    at = lambda fx, fy: (box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)  # noqa: E731
    for path in (
        [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8), (0.2, 0.2)],
        [(0.35, 0.4), (0.37, 0.42)],
        [(0.63, 0.4), (0.65, 0.42)],
    ):
        page.mouse.move(*at(*path[0]))
        page.mouse.down()
        for point in path[1:]:
            page.mouse.move(*at(*point), steps=6)
        page.mouse.up()


def test_draw_a_sketch_and_get_an_image(tmp_path):
    model = os.environ.get("HFLDM_BROWSER_SKETCH_MODEL")
    if model is None:
        model = tmp_path / "sketch"
        tiny_sketch_pipeline().save_pretrained(model)
    side = None if os.environ.get("HFLDM_BROWSER_SKETCH_MODEL") else IMAGE_SIZE
    space = SpaceProcess(save_tiny_pipeline(tmp_path / "model"), tmp_path, HFLDM_SKETCH_MODEL=str(model))
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(space.url())
            page.get_by_role("tab", name="Sketch").click()
            pad = page.locator("#sketch-pad")
            pad.wait_for(timeout=30_000)
            page.locator("#sketch-button").click()  # nothing drawn yet
            page.get_by_text("Draw a sketch first").or_(
                page.get_by_text("The canvas is empty")
            ).first.wait_for(timeout=30_000)
            brush = pad.get_by_role("button", name=re.compile("brush|draw", re.I))
            if brush.count():  # "select the draw tool to start"
                brush.first.click()
            canvas = pad.locator("canvas").first
            canvas.wait_for(timeout=30_000)
            draw_strokes(page, canvas)
            page.locator("#sketch-button").click()
            page.wait_for_function(
                f"() => [...document.querySelectorAll('#sketch-output img')].some({LOADED_JS})",
                timeout=120_000,
            )
            (stats,) = page.locator("#sketch-output img").evaluate_all(IMAGE_STATS_JS)
            assert stats["width"] == stats["height"] == (side or stats["width"]) > 0 and stats["std"] > 1.0
            page.screenshot(path=str(tmp_path / "sketch.png"))
            browser.close()
    finally:
        space.stop()
    if os.environ.get("HFLDM_SCREENSHOTS"):
        target = Path(os.environ["HFLDM_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "sketch.png", target / "sketch.png")
