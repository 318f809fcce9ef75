"""The browse page in headless Chromium: it loads, shows a source's thumbnails, pages to
older frames, and a click opens a frame. The screenshot is kept as a test artifact."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from .conftest import Gateway, frame_bytes, make_gateway

FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1100,800",
)  # fmt: skip
"""Chromium as root in a closed network: no sandbox, no background connections."""
ARTIFACTS = Path(os.environ.get("INRSTORE_TEST_ARTIFACTS", "/tmp/inrstore-test-artifacts"))


def _driver():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium") or "/usr/bin/chromium"
    driver_binary = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(browser).exists() and Path(driver_binary).exists()):
        pytest.skip("chromium and chromedriver are not installed")
    options = webdriver.ChromeOptions()
    for flag in FLAGS:
        options.add_argument(flag)
    options.binary_location = browser
    return webdriver.Chrome(service=Service(driver_binary), options=options)


def _wait(condition, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("the page did not get there in time")


def test_browse_page_pages_thumbnails_and_opens_a_frame(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    gateway: Gateway = make_gateway(tmp_path, "--shard-frames", "100", "--shard-seconds", "600")
    gateway.start()
    driver = _driver()
    try:
        for index in range(30):
            httpx.post(f"{gateway.url}/v1/frames", content=frame_bytes(index, 48),
                       params={"source": "porch", "captured_at": 1000 + index},
                       headers=gateway.auth("write")).raise_for_status()  # fmt: skip
        driver.get(gateway.url + "/")
        box = driver.find_element(By.ID, "token")
        box.send_keys(gateway.read)
        driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", box)
        tiles = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "figure.frame"))
        assert len(tiles) == 24
        _wait(lambda: driver.execute_script(
            "return [...document.images].filter(i => i.dataset.id && i.naturalWidth == 12).length"
        ) >= 4)  # fmt: skip
        driver.find_element(By.ID, "more").click()
        _wait(lambda: len(driver.find_elements(By.CSS_SELECTOR, "figure.frame")) == 30)
        assert not driver.find_element(By.ID, "more").is_displayed()
        driver.find_elements(By.CSS_SELECTOR, "figure.frame")[0].click()
        full = driver.find_element(By.ID, "full")
        _wait(lambda: driver.execute_script("return arguments[0].naturalWidth", full) == 48)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "browse.png"))
        assert (ARTIFACTS / "browse.png").stat().st_size > 0
    finally:
        driver.quit()
        gateway.stop()
