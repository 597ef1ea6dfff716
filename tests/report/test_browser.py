"""Real-browser checks: headless Chromium opens the report from file:// URLs.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium
chromium-driver``); the tests fail, never skip, when they are missing. No console errors are
allowed, and Content-Security-Policy violations are console errors.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.report.conftest import COLD_YX, HOT_YX, HOT_ZYX, SHAPE_2D, SHAPE_3D

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,1400", "--hide-scrollbars", "--force-device-scale-factor=1")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"the report browser test needs headless Chromium; missing {missing}. "
                    f"Install it with: {INSTALL}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver, path: Path) -> None:
    """Load ``path`` from a file:// URL, wait for its script, and fail on any console error."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop entries from earlier pages
    driver.get(path.as_uri())
    WebDriverWait(driver, 15).until(
        lambda d: d.execute_script("return document.body.getAttribute('data-ready')"))
    assert driver.execute_script("return document.body.getAttribute('data-ready')") == "1"
    errors = [e for e in driver.get_log("browser")
              if e["level"] in ("SEVERE", "ERROR") or "Content Security Policy" in e["message"]]
    assert not errors, errors
    assert driver.execute_script("return typeof window.__xss") == "undefined"


def screenshot(driver) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")).astype(int)


def set_opacity(driver, percent: int) -> None:
    driver.execute_script(
        "var s = document.getElementById('opacity'); s.value = arguments[0];"
        "s.dispatchEvent(new Event('input', {bubbles: true}));", str(percent))


def pixel_at(driver, element_id: str, yx: tuple[int, int], shape: tuple[int, int]) -> tuple[int, int]:
    """Screenshot (x, y) of image pixel ``yx`` of the element showing a ``shape`` image."""
    rect = driver.execute_script(
        "var r = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return [r.left, r.top, r.width, r.height, window.devicePixelRatio];", element_id)
    left, top, width, height, dpr = rect
    x = (left + (yx[1] + 0.5) / shape[1] * width) * dpr
    y = (top + (yx[0] + 0.5) / shape[0] * height) * dpr
    return int(x), int(y)


def patch(shot: np.ndarray, xy: tuple[int, int], r: int = 3) -> np.ndarray:
    x, y = xy
    return shot[y - r:y + r + 1, x - r:x + r + 1]


def test_every_page_loads_without_console_errors(browser, report_2d: Path, report_3d: Path) -> None:
    for root in (report_2d, report_3d):
        for path in sorted(root.rglob("*.html")):
            open_page(browser, path)


def test_index_from_a_zip_sorts_and_filters(browser, report_2d: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    archive = shutil.make_archive(str(tmp_path / "r"), "zip", report_2d.parent, report_2d.name)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "x")
    open_page(browser, tmp_path / "x" / report_2d.name / "index.html")

    def visible_ids() -> list[str]:
        return browser.execute_script(
            "return Array.from(document.querySelectorAll('#cases tbody tr'))"
            ".filter(r => !r.hidden).map(r => r.dataset.id);")

    assert visible_ids() == ["S0001", "S0002", "S0003", "S0004", "S0005"]
    prob = browser.find_element(By.CSS_SELECTOR, "th[data-key=prob] button")
    prob.click()
    assert visible_ids() == ["S0004", "S0003", "S0005", "S0002", "S0001"]
    prob.click()
    assert visible_ids()[0] == "S0001"
    header = browser.find_element(By.CSS_SELECTOR, "th[data-key=prob]")
    assert header.get_attribute("aria-sort") == "descending"
    Select(browser.find_element(By.ID, "f-outcome")).select_by_value("incorrect")
    assert sorted(visible_ids()) == ["S0002", "S0003"]
    assert "2 of 5" in browser.find_element(By.ID, "shown").text
    browser.find_element(By.ID, "f-reset").click()
    browser.find_element(By.ID, "f-low").click()
    assert visible_ids() == ["S0005"]
    browser.find_element(By.ID, "f-reset").click()
    browser.find_element(By.ID, "f-text").send_keys("s0003")
    assert visible_ids() == ["S0003"]
    browser.find_element(By.LINK_TEXT, "S0003").click()  # the relative link works from the zip copy
    assert browser.current_url.endswith("/cases/S0003.html")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Case S0003"


def test_2d_overlay_is_visible_where_the_heatmap_is(browser, report_2d: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    open_page(browser, report_2d / "cases" / "S0001.html")
    browser.execute_script("document.getElementById('heat-2d').scrollIntoView()")
    set_opacity(browser, 100)
    shown = screenshot(browser)
    set_opacity(browser, 0)
    hidden = screenshot(browser)
    hot = pixel_at(browser, "heat-2d", HOT_YX, SHAPE_2D)
    cold = pixel_at(browser, "heat-2d", COLD_YX, SHAPE_2D)
    plain_hot = pixel_at(browser, "image-2d", HOT_YX, SHAPE_2D)
    assert np.abs(patch(shown, hot) - patch(hidden, hot)).mean() > 40
    assert np.abs(patch(shown, cold) - patch(hidden, cold)).mean() < 3
    red, green, blue = patch(shown, hot).reshape(-1, 3).mean(axis=0)
    assert red > green + 40 and red > blue + 40  # the hot end of the colour map
    assert np.abs(patch(hidden, hot) - patch(hidden, plain_hot)).mean() < 3  # overlay off = original
    # keyboard: ']' raises the opacity, 'h' hides the heatmap
    ActionChains(browser).send_keys("]]").perform()
    assert browser.find_element(By.ID, "opacity").get_attribute("value") == "20"
    assert browser.find_element(By.ID, "opacity-value").text == "20%"
    ActionChains(browser).send_keys("h").perform()
    assert browser.execute_script("return document.getElementById('heat-2d').style.opacity") == "0"


def test_3d_slice_browser_keyboard_and_overlay(browser, report_3d: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    open_page(browser, report_3d / "cases" / "S1001.html")
    z, y, x = HOT_ZYX
    d, h, w = SHAPE_3D
    label = lambda v: browser.find_element(By.ID, f"label-{v}").text  # noqa: E731
    assert (label("axial"), label("coronal"), label("sagittal")) == (
        f"slice {z + 1} of {d}", f"slice {y + 1} of {h}", f"slice {x + 1} of {w}")
    def heat_alpha(view: str, col: int, row: int) -> int:
        return browser.execute_script(
            "var c = document.querySelector('#view-' + arguments[0] + ' .layer-heat');"
            "return c.getContext('2d').getImageData(arguments[1], arguments[2], 1, 1).data[3];",
            view, col, row)

    # The peak is drawn where it is in the volume; coronal/sagittal rows run Superior -> Inferior.
    assert heat_alpha("axial", x, y) >= 250
    assert heat_alpha("coronal", x, d - 1 - z) >= 250 and heat_alpha("coronal", x, z) < 200
    assert heat_alpha("sagittal", y, d - 1 - z) >= 250

    browser.execute_script("document.getElementById('view-axial').scrollIntoView()")
    overlay = browser.find_element(By.CSS_SELECTOR, "#view-axial [data-role=overlay]")
    browser.execute_script("arguments[0].id = 'axial-overlay'", overlay)
    set_opacity(browser, 100)
    shown = screenshot(browser)
    set_opacity(browser, 0)
    hidden = screenshot(browser)
    hot = pixel_at(browser, "axial-overlay", (y, x), (h, w))
    assert np.abs(patch(shown, hot, 2) - patch(hidden, hot, 2)).mean() > 40

    keys = ActionChains(browser)
    keys.send_keys("j").perform()
    assert label("axial") == f"slice {z + 2} of {d}"
    keys.send_keys("kk").perform()
    assert label("axial") == f"slice {z} of {d}"
    ActionChains(browser).send_keys("2").perform()
    assert "active" in browser.find_element(By.ID, "view-coronal").get_attribute("class")
    from selenium.webdriver.common.keys import Keys

    ActionChains(browser).send_keys(Keys.ARROW_DOWN).perform()
    assert label("coronal") == f"slice {y + 2} of {h}"
    ActionChains(browser).send_keys(Keys.END).perform()
    assert label("coronal") == f"slice {h} of {h}"
    ActionChains(browser).send_keys("c").perform()
    assert label("axial") == f"slice {z + 1} of {d}" and label("coronal") == f"slice {y + 1} of {h}"
    ActionChains(browser).send_keys("n").perform()
    assert browser.current_url.endswith("/cases/S1002.html")
