"""End-to-end: `sam2sod demo` driven in headless Chromium (Debian's package) by Playwright.

Marked `browser` (not in the default run): `make test-browser` installs chromium + the extras and runs it.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = os.environ.get("SAM2SOD_CHROMIUM", "/usr/bin/chromium")
pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::UserWarning")]


def _requirements() -> str | None:
    for module, extra in (("gradio", "demo"), ("playwright", "browser")):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[{extra}]', or run make test-browser)"
    if not (Path(CHROMIUM).is_file() or shutil.which("chromium")):
        return f"chromium not found at {CHROMIUM} (apt-get install chromium, or run make test-browser)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def demo_url(tiny_run, tmp_path):
    reason = _requirements()
    if reason:
        pytest.skip(reason)
    port = _free_port()
    log = open(tmp_path / "demo.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([sys.executable, "-m", "sam2sod.cli", "demo", "--checkpoint", str(tiny_run), "--port",
                             str(port), "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    log.flush()
                    pytest.fail(f"the demo did not start: {(tmp_path / 'demo.log').read_text()[-2000:]}")
                time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _png(page, selector: str) -> np.ndarray:
    src = page.locator(selector).get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(page.request.get(src).body())))


def _click_image(page, selector: str, fx: float, fy: float) -> None:
    """Click at fraction (fx, fy) of the picture an <img> shows (object-fit scale-down, centred)."""
    img = page.locator(selector)
    w, h, cw, ch = img.evaluate("e => { const r = e.getBoundingClientRect();"
                                " const s = Math.min(1, r.width / e.naturalWidth, r.height / e.naturalHeight);"
                                " return [r.width, r.height, e.naturalWidth * s, e.naturalHeight * s]; }")
    img.click(position={"x": (w - cw) / 2 + fx * cw, "y": (h - ch) / 2 + fy * ch})


def _upload(page, path: Path) -> None:
    page.locator("#upload input[type=file]").set_input_files(str(path))


def test_demo_in_a_real_browser(demo_url, tmp_path):
    from playwright.sync_api import sync_playwright

    rng = np.random.default_rng(0)
    img = (rng.random((150, 200, 3)) * 80).astype(np.uint8)
    img[40:110, 110:175] = (230, 40, 40)
    Image.fromarray(img).save(tmp_path / "upload.png")
    (tmp_path / "notes.png").write_text("this is a text file, not a PNG\n")
    exe = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1100})
            page.goto(demo_url)
            _upload(page, tmp_path / "upload.png")
            page.wait_for_selector("#saliency img", timeout=120_000)
            status = page.locator("#status textarea")
            assert status.input_value().startswith("prompt-free")
            before_src = page.locator("#saliency img").get_attribute("src")
            before = _png(page, "#saliency img")
            assert before.shape[:2] == (150, 200)
            _click_image(page, "#overlay img", 0.7, 0.5)  # on the red object
            page.wait_for_function("s => document.querySelector('#saliency img').src !== s", arg=before_src,
                                   timeout=120_000)
            assert "1 point(s) (1 fg, 0 bg)" in status.input_value()
            after = _png(page, "#saliency img")
            assert after.shape == before.shape and not np.array_equal(after, before), "the click changed the map"
            links = page.locator("#downloads a")
            assert links.count() >= 4
            names = [(links.nth(i).get_attribute("download") or "") + (links.nth(i).get_attribute("href") or "")
                     for i in range(links.count())]
            assert any("upload_saliency.png" in n for n in names), names
            shot = tmp_path / "demo_screenshot.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            print(f"screenshot: {shot}")

            # a failed upload over a good image: one plain sentence, the outputs cleared, clicks refused
            page.locator("#upload button[aria-label='Clear']").first.click()
            page.wait_for_function("() => !document.querySelector('#saliency img')", timeout=60_000)
            assert "image removed" in status.input_value()
            _upload(page, tmp_path / "notes.png")
            page.wait_for_function("() => document.querySelector('#status textarea').value.startsWith('error')",
                                   timeout=60_000)
            text = status.input_value()
            assert text.startswith("error: this file is not an image we can read: notes.png"), text
            assert page.locator("#saliency img").count() == 0 and page.locator("#overlay img").count() == 0
            assert "Could not preprocess" not in page.content()
        finally:
            browser.close()
