"""End to end in a real browser: `mnistlab serve` in a subprocess, Debian's
chromium driven headless through Selenium (with /usr/bin/chromedriver).

Draws digits with mouse strokes on the page's canvas and checks the
prediction the page shows; renders report.html and checks its embedded
images load. Skipped, with the reason, where selenium, chromium or
chromedriver is missing. Set MNISTLAB_SCREENSHOT_DIR to keep the screenshots.
"""

from __future__ import annotations

import math
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import digit_images

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.slow  # drives Chromium against a running `mnistlab serve`

selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")
if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip(f"no chromium/chromedriver at {CHROMIUM} / {CHROMEDRIVER} (apt-get install chromium "
                "chromium-driver)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1"]


# ------------------------------------------------------------------ helpers (also for docs screenshots)


def chrome(user_data_dir, width=1100, height=860):
    """A headless chromium with a fresh profile in `user_data_dir`."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument(f"--window-size={width},{height}")
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    return webdriver.Chrome(options=options, service=service)


class Server:
    """`python -m mnistlab serve RUN_DIR --port 0` in a subprocess; `url` once it listens."""

    def __init__(self, run_dir, timeout=90):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mnistlab", "serve", str(run_dir), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        lines: queue.Queue = queue.Queue()
        self.output: list[str] = []

        def pump():
            for line in self.proc.stdout:
                self.output.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        self.url = None
        while self.url is None:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.close()
                raise AssertionError("mnistlab serve did not start:\n" + "".join(self.output))
            found = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
            if found:
                self.url = found.group(1)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def draw(driver, canvas, strokes):
    """Draw polylines on `canvas`; points are (x, y) in 0..1 of its size."""
    w, h = canvas.size["width"], canvas.size["height"]

    def offset(p):  # Selenium offsets are from the element's centre
        return round((p[0] - 0.5) * w), round((p[1] - 0.5) * h)

    for stroke in strokes:
        chain = ActionChains(driver, duration=10)
        x, y = offset(stroke[0])
        chain.move_to_element_with_offset(canvas, x, y).click_and_hold()
        for p in stroke[1:]:
            nx, ny = offset(p)
            chain.move_by_offset(nx - x, ny - y)
            x, y = nx, ny
        chain.release().perform()


def strokes_ended(driver) -> int:
    return int(driver.execute_script("return document.body.dataset.strokes || '0'"))


def wait_for_answer(driver, strokes: int = 0, timeout=20):
    """The digit the page shows once it has seen `strokes` strokes end and its
    requests are done. (Waiting for the requests alone raced on a loaded machine:
    the answer to a half-drawn 0, asked for while drawing, read as 2 before
    the page had handled the pen's release.)"""
    WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: strokes_ended(d) >= strokes)

    def settled(d):
        # One script, so the page cannot change between reading the answer and
        # the busy flag. (Two WebDriver calls raced: they read a half-drawn 0's
        # answer, 2, then the final answer arrived and cleared busy before the
        # second call looked.)
        return d.execute_script(
            "return document.body.dataset.busy ? false"
            " : (document.getElementById('prediction').dataset.prediction ?? false)")

    return int(WebDriverWait(driver, timeout, poll_frequency=0.1).until(settled))


def full_page_png(driver) -> bytes:
    """A screenshot of the whole page, not just the window."""
    width = driver.execute_script("return document.documentElement.scrollWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
    })
    import base64

    return base64.b64decode(shot["data"])


def keep(name, png: bytes, tmp_path) -> Path:
    (tmp_path / name).write_bytes(png)
    folder = os.environ.get("MNISTLAB_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(png)
    return tmp_path / name


# Strokes in canvas units (0..1): a "1", a "7" and a "0" as a person would draw them.
ONE = [[(0.5, 0.15), (0.5, 0.85)]]
SEVEN = [[(0.25, 0.2), (0.75, 0.2), (0.42, 0.85)]]
ZERO = [[(0.5 + 0.2 * math.sin(t * math.pi / 12), 0.5 - 0.3 * math.cos(t * math.pi / 12)) for t in range(25)]]


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return digit_images.trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def server(run_dir):
    s = Server(run_dir)
    yield s
    s.close()


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    d = chrome(tmp_path_factory.mktemp("chromium-profile"))
    yield d
    d.quit()


# ------------------------------------------------------------------ tests


def test_drawing_a_digit_shows_the_prediction(server, driver, tmp_path):
    driver.get(server.url)
    WebDriverWait(driver, 20).until(lambda d: "run " in d.find_element(By.ID, "info").text)
    canvas = driver.find_element(By.ID, "pad")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#bars .bar-row")) == 10

    for strokes, digit in ((ONE, 1), (SEVEN, 7), (ZERO, 0)):
        driver.find_element(By.ID, "clear").click()
        assert driver.find_element(By.ID, "prediction").text == "–"
        before = strokes_ended(driver)
        draw(driver, canvas, strokes)
        assert wait_for_answer(driver, before + len(strokes)) == digit, f"drew a {digit}"
        assert driver.find_element(By.ID, "prediction").text == str(digit)
        top = driver.find_element(By.CSS_SELECTOR, "#bars .bar-row.top .name").text
        assert top == str(digit)
        preview = driver.find_element(By.ID, "preview")
        assert preview.get_attribute("src").startswith("data:image/png;base64,")
        assert driver.execute_script("return arguments[0].naturalWidth", preview) == 28
        assert driver.find_element(By.ID, "status").text == ""
    png = driver.get_screenshot_as_png()
    assert keep("serve.png", png, tmp_path).stat().st_size > 10_000


def test_uploading_a_picture(server, driver, tmp_path):
    driver.get(server.url)
    picture = digit_images.save(
        digit_images.pen_digit(4, size=(300, 420), mode="RGB", ink=(30, 30, 140), paper=(250, 246, 230)),
        tmp_path / "four.jpg",
    )
    driver.find_element(By.ID, "upload").send_keys(str(picture))
    assert wait_for_answer(driver) == 4
    driver.find_element(By.ID, "clear").click()
    assert driver.find_element(By.ID, "prediction").get_attribute("data-prediction") is None

    not_a_picture = tmp_path / "notes.png"
    not_a_picture.write_text("not a picture")
    driver.find_element(By.ID, "upload").send_keys(str(not_a_picture))
    WebDriverWait(driver, 20).until(lambda d: "not an image" in d.find_element(By.ID, "status").text)


def test_report_renders_with_its_images(run_dir, driver, tmp_path):
    from mnistlab.evaluation.evaluate import REPORT, evaluate_run

    if not (run_dir / REPORT).exists():
        evaluate_run(run_dir, dataset=digit_images.dataset())
    driver.set_window_size(1200, 900)
    driver.get((run_dir / REPORT).resolve().as_uri())
    images = driver.find_elements(By.TAG_NAME, "img")
    assert len(images) >= 3
    for img in images:
        assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 100
    rows = driver.find_elements(By.CSS_SELECTOR, "table tbody tr")
    assert len(rows) >= 12  # ten classes and two averages, then the confusions
    assert "test accuracy" in driver.find_element(By.CSS_SELECTOR, ".cards").text.lower()
    assert keep("report.png", full_page_png(driver), tmp_path).stat().st_size > 50_000
