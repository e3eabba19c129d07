"""The Space in a real browser: Debian's chromium, driven by Playwright, types a prompt, clicks Generate
and finds the gallery filled with images whose pixels vary, then the Upscale and Inpaint tabs. With env
HFLDM_SCREENSHOTS=<folder> the screenshots of the three tabs are saved there (generate.png, upscale.png,
inpaint.png); with HFLDM_BROWSER_MODEL=<folder> the app serves that model instead of a tiny random one
(HFLDM_BROWSER_SR_MODEL, HFLDM_BROWSER_INPAINT_MODEL likewise for the Upscale and Inpaint tabs):
  HFLDM_BROWSER_MODEL=models/hfldm-emoji HFLDM_BROWSER_SR_MODEL=models/hfldm-emoji-sr \
  HFLDM_BROWSER_INPAINT_MODEL=models/hfldm-emoji-inpaint HFLDM_SCREENSHOTS=space/screenshots \
  pytest tests/space/test_space_browser.py
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from _space_fixtures import (
    IMAGE_SIZE,
    SpaceProcess,
    save_tiny_inpaint_pipeline,
    save_tiny_pipeline,
    save_tiny_sr_pipeline,
)

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")

LOADED_JS = "img => img.complete && img.naturalWidth > 0"
# For each gallery <img>: its natural size and the std of its pixels, read back through a canvas.
IMAGE_STATS_JS = """images => images.map(img => {
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(img, 0, 0);
    const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
    const values = rgba.filter((_, i) => i % 4 !== 3);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
    return {width: img.naturalWidth, height: img.naturalHeight, std: Math.sqrt(variance)};
})"""


def test_generate_in_the_browser(tmp_path):
    model = os.environ.get("HFLDM_BROWSER_MODEL") or save_tiny_pipeline(tmp_path / "model")
    side = None if os.environ.get("HFLDM_BROWSER_MODEL") else IMAGE_SIZE  # the tiny model's default size
    sr_model = os.environ.get("HFLDM_BROWSER_SR_MODEL") or save_tiny_sr_pipeline(tmp_path / "sr")
    inpaint_model = os.environ.get("HFLDM_BROWSER_INPAINT_MODEL") or save_tiny_inpaint_pipeline(
        tmp_path / "inpaint"
    )
    space = SpaceProcess(
        model, tmp_path, HFLDM_SR_MODEL=str(sr_model), HFLDM_INPAINT_MODEL=str(inpaint_model)
    )
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(space.url())
            check_error_message(page)
            prompt = "smiling cat with heart-eyes" if side is None else "cat face"  # a trained emoji name
            check_generate(page, side, prompt, tmp_path / "generate.png")
            check_upscale(page, tmp_path / "upscale.png")
            check_inpaint(page, side, tmp_path / "inpaint.png")
            browser.close()
    finally:
        space.stop()
    if os.environ.get("HFLDM_SCREENSHOTS"):
        target = Path(os.environ["HFLDM_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        for name in ("generate.png", "upscale.png", "inpaint.png"):
            shutil.copyfile(tmp_path / name, target / name)


def check_generate(page, side: int | None, prompt: str, screenshot: Path) -> None:
    """Type a prompt into the menu of names, click Generate: 4 images of side × side pixels (any side if
    None), not blank."""
    box = page.get_by_label("Prompt", exact=True)
    box.fill(prompt)
    box.press("Enter")
    page.get_by_role("button", name="Generate").click()
    images = page.locator("#gallery img")
    images.nth(3).wait_for(timeout=60_000)  # the default request makes 4 images
    page.wait_for_function(f"() => [...document.querySelectorAll('#gallery img')].every({LOADED_JS})")
    stats = images.evaluate_all(IMAGE_STATS_JS)
    assert len(stats) == 4
    assert all(s["width"] == s["height"] == (side or s["width"]) > 0 and s["std"] > 1.0 for s in stats)
    assert f"{prompt} #4" in page.locator("#gallery").inner_text()
    page.screenshot(path=str(screenshot))
    box = images.first.bounding_box()
    crop = PIL.Image.open(io.BytesIO(page.screenshot(clip=box))).convert("RGB")
    assert np.asarray(crop, dtype=float).std() > 1.0  # the image is drawn on screen, not blank


def check_error_message(page) -> None:
    """A negative prompt over the length limit is answered with the server's message in a toast."""
    negative = page.get_by_label("Negative prompt", exact=True)
    negative.fill("x" * 301)
    page.get_by_role("button", name="Generate").click()
    toast = page.locator('[data-testid="toast-text"]')
    toast.first.wait_for(timeout=30_000)
    assert "Negative prompt is 301 characters long; the limit is 300." in toast.first.inner_text()
    negative.fill("")
    toast.first.wait_for(state="hidden", timeout=30_000)  # toasts time out: keep the next screenshots clear


def check_upscale(page, screenshot: Path) -> None:
    """Open the Upscale tab, pick the example, click Upscale: an image of 2x the example's side, not blank."""
    page.get_by_role("tab", name="Upscale").click()
    page.locator("#sr-input").wait_for(timeout=30_000)
    page.get_by_role("button", name="Upscale", exact=True).wait_for(timeout=30_000)
    page.locator("#sr-examples .gallery-item").first.click()
    page.wait_for_function(f"() => [...document.querySelectorAll('#sr-input img')].some({LOADED_JS})")
    low = page.locator("#sr-input img").first.evaluate(f"img => ({LOADED_JS})(img) && img.naturalWidth")
    page.get_by_role("button", name="Upscale", exact=True).click()
    page.wait_for_function(
        f"() => [...document.querySelectorAll('#sr-output img')].some({LOADED_JS})", timeout=120_000
    )
    (stats,) = page.locator("#sr-output img").evaluate_all(IMAGE_STATS_JS)
    assert stats["width"] == stats["height"] == 2 * low and stats["std"] > 1.0
    page.screenshot(path=str(screenshot))


def check_inpaint(page, side: int | None, screenshot: Path) -> None:
    """Open the Inpaint tab, pick the example (it fills the editor, the Mask input and the prompt) and click
    Inpaint at once: an image of the model's side comes back, not blank (the screenshot). Then paint a
    stroke across the canvas with the mouse and click Inpaint again: a new image comes back."""
    page.get_by_role("tab", name="Inpaint").click()
    editor = page.locator("#inpaint-editor")
    editor.wait_for(timeout=30_000)
    page.locator("#inpaint-examples .tr-body, #inpaint-examples .gallery-item").first.click()
    canvas = editor.locator("canvas").first
    canvas.wait_for(timeout=30_000)
    page.wait_for_function(
        f"() => [...document.querySelectorAll('#inpaint-mask img')].some({LOADED_JS})", timeout=30_000
    )
    page.wait_for_timeout(1000)  # the example is drawn onto the canvas
    first = run_inpaint(page, side, previous=None)
    page.evaluate("window.scrollTo(0, 0)")  # the button's click scrolled down
    page.wait_for_timeout(500)
    page.screenshot(path=str(screenshot))
    brush = editor.get_by_role("button", name=re.compile("brush|draw", re.I))
    if brush.count():
        brush.first.click()
    box = canvas.bounding_box()
    y = box["y"] + box["height"] * 0.8  # below the example's centre mask
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    for fraction in (0.4, 0.5, 0.6, 0.7):
        page.mouse.move(box["x"] + box["width"] * fraction, y, steps=4)
    page.mouse.up()
    run_inpaint(page, side, previous=first)


def run_inpaint(page, side: int | None, previous: str | None) -> str:
    """Click Inpaint, wait for an output image other than `previous` (its src), check its side and that it
    is not blank; returns its src."""
    page.get_by_role("button", name="Inpaint", exact=True).click()
    new = f"img => ({LOADED_JS})(img) && img.src !== {json.dumps(previous)}"
    page.wait_for_function(
        f"() => [...document.querySelectorAll('#inpaint-output img')].some({new})", timeout=120_000
    )
    (stats,) = page.locator("#inpaint-output img").evaluate_all(IMAGE_STATS_JS)
    assert stats["width"] == stats["height"] == (side or stats["width"]) > 0 and stats["std"] > 1.0
    return page.locator("#inpaint-output img").first.get_attribute("src")
