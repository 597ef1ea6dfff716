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


def test_index_shows_svg_figures_subgroup_table_and_thumbnails(browser, report_2d_performance: Path) -> None:
    """Issue 11: the figures and the subgroup table render, the thumbnails (one embedded image
    per case, referenced by <use>) show the overlay, and nothing breaks the CSP."""
    from PIL import Image
    from selenium.webdriver.common.by import By

    open_page(browser, report_2d_performance / "index.html")  # no console error, no CSP violation
    charts = browser.execute_script(
        "return Array.from(document.querySelectorAll('svg.chart')).map(function (s) {"
        "  var r = s.getBoundingClientRect(); return [s.id, r.width, r.height]; });")
    assert [c[0] for c in charts] == ["fig-roc", "fig-pr", "fig-calibration"]
    assert all(w > 250 and h > 250 for _, w, h in charts), charts
    drawn = browser.execute_script(
        "return Array.from(document.querySelectorAll('svg.chart g.series path'))"
        ".map(function (p) { return p.getTotalLength(); });")
    assert len(drawn) == 3 and min(drawn) > 100  # ROC, PR and reliability curves are drawn
    assert browser.execute_script("return document.querySelectorAll('svg.chart g.marker').length") == 2
    table = browser.find_element(By.ID, "subgroup-table")
    assert table.is_displayed()
    cells = [r.text for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert len(cells) == 2 and "0.74 to 0.97" in cells[0]
    assert "window.__xss=4" in cells[0]  # the hostile value is shown as text
    thumb = browser.find_element(By.CSS_SELECTOR, "#cases tr[data-id=S0001] svg.thumb")
    browser.execute_script("arguments[0].scrollIntoView()", thumb)
    assert thumb.size["width"] == 48 and thumb.size["height"] == 48
    pixels = np.asarray(Image.open(io.BytesIO(thumb.screenshot_as_png)).convert("RGB")).astype(int)
    assert pixels.std() > 10  # an image, not the black letterbox alone
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    assert np.any((red > green + 40) & (red > blue + 40))  # the heatmap's hot end is visible
    card = browser.find_element(By.CSS_SELECTOR, ".card svg.thumb")  # the same image, larger
    assert card.size["width"] == 96


# --- Case viewer controls (issue 11, case-image items): window/level, zoom and pan, R/L markers,
# CT opening at the hottest voxel with the model's field of view outlined, print stylesheet. ---

HOT_VOXEL = (9, 15, 19)  # one voxel hotter than a broad blob around (3, 5, 5) that holds more heat
FOV = ((2, 10), (3, 17), (4, 20))


@pytest.fixture(scope="module")
def viewer_reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2D case with a 12-bit ramp and a known orientation, and a CT case in HU whose hottest
    voxel is not on the slices with the most heat, with a field of view."""
    from pipeline.report import build_report, imaging
    from tests.report.conftest import LABELS, SPECS_2D, case_2d, case_3d, gaussian

    root = tmp_path_factory.mktemp("viewer")
    full = np.tile(np.linspace(0.0, 1.0, SHAPE_2D[1], dtype=np.float32), (SHAPE_2D[0], 1))
    shown = np.clip((full - 0.25) / 0.5, 0.0, 1.0)
    ramp = case_2d(SPECS_2D[0], sample_id="S2001", image=np.rint(shown * 255).astype(np.uint8),
                   intensity=imaging.radiograph_intensity(full, shown, bits=12), orientation=("L", "F"))
    build_report(root / "cxr", task_name="cxr", kind="2d", labels=LABELS, cases=[ramp])
    heat = np.minimum(0.6 * gaussian(SHAPE_3D, (3, 5, 5), 3.0) + gaussian(SHAPE_3D, HOT_VOXEL, 0.7), 1.0)
    hu = np.where(np.indices(SHAPE_3D)[2] < 12, -1000.0, 60.0).astype(np.float32)
    ct = case_3d("S3001", heatmap=heat, mask=None, field_of_view=FOV,
                 image=np.rint(np.clip((hu + 1350) / 1500, 0, 1) * 255).astype(np.uint8),
                 intensity=imaging.hu_intensity(hu, (-600.0, 1500.0)))
    build_report(root / "ct", task_name="ct", kind="3d", labels=LABELS, cases=[ct])
    return root


def canvas_pixel(driver, selector: str, x: int, y: int) -> list[int]:
    return driver.execute_script(
        "var c = document.querySelector(arguments[0]);"
        "return Array.from(c.getContext('2d').getImageData(arguments[1], arguments[2], 1, 1).data);",
        selector, x, y)


def set_range(driver, element_id: str, value: float) -> None:
    driver.execute_script(
        "var s = document.getElementById(arguments[0]); s.value = arguments[1];"
        "s.dispatchEvent(new Event('input', {bubbles: true}));", element_id, str(value))


def rect(driver, element_id: str) -> dict[str, float]:
    return driver.execute_script(
        "var r = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return {left: r.left, top: r.top, width: r.width, height: r.height};", element_id)


def test_2d_window_level_changes_pixel_values_and_resets(browser, viewer_reports: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(browser, viewer_reports / "cxr" / "cases" / "S2001.html")
    col = 40  # full = 40/127 = 0.315: grey 33 in the model's window (25%..75%), 80 over the full range
    model = round(np.clip((col / 127 - 0.25) / 0.5, 0, 1) * 255)
    assert abs(canvas_pixel(browser, "#image-2d", col, 10)[0] - model) <= 1  # opens at the model's window
    assert browser.find_element(By.ID, "wl-level-value").text == "50.0 %"
    set_range(browser, "wl-level", 50)
    set_range(browser, "wl-width", 100)
    grey = canvas_pixel(browser, "#image-2d", col, 10)
    assert abs(grey[0] - round(col / 127 * 255)) <= 1 and grey[0] == grey[1] == grey[2]
    overlay = browser.execute_script(
        "var c = document.querySelector('[data-role=overlay] .c-base');"
        "return c.getContext('2d').getImageData(arguments[0], 10, 1, 1).data[0];", col)
    assert overlay == grey[0]  # one base image, drawn in both panels
    ActionChains(browser).send_keys("r").perform()
    assert abs(canvas_pixel(browser, "#image-2d", col, 10)[0] - model) <= 1
    # Shift + drag across widens the window: the same pixel moves towards mid-grey
    stage = browser.find_element(By.CSS_SELECTOR, "[data-role=plain]")
    browser.execute_script("arguments[0].scrollIntoView()", stage)
    (ActionChains(browser).move_to_element(stage).key_down(Keys.SHIFT).click_and_hold()
     .move_by_offset(120, 0).release().key_up(Keys.SHIFT).perform())
    assert float(browser.find_element(By.ID, "wl-width").get_attribute("value")) > 50 + 20
    assert canvas_pixel(browser, "#image-2d", col, 10)[0] > model + 10


def test_2d_zoom_scales_pans_and_shows_actual_pixels(browser, viewer_reports: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    open_page(browser, viewer_reports / "cxr" / "cases" / "S2001.html")
    browser.execute_script("document.getElementById('pair').scrollIntoView()")
    fit = rect(browser, "image-2d")
    dpr = browser.execute_script("return window.devicePixelRatio")
    browser.find_element(By.ID, "zoom-in").click()
    zoomed = rect(browser, "image-2d")
    assert zoomed["width"] == pytest.approx(1.25 * fit["width"], rel=1e-3)
    assert rect(browser, "heat-2d")["width"] == pytest.approx(zoomed["width"], rel=1e-3)  # layers follow
    stage = browser.find_element(By.CSS_SELECTOR, "[data-role=plain]")
    ActionChains(browser).move_to_element(stage).click_and_hold().move_by_offset(-30, -20).release().perform()
    panned = rect(browser, "image-2d")
    assert panned["left"] == pytest.approx(zoomed["left"] - 30, abs=1)
    assert panned["top"] == pytest.approx(zoomed["top"] - 20, abs=1)
    shift = browser.execute_script(  # each layer's offset within its own panel: in step
        "return ['image-2d', 'heat-2d'].map(function (id) { var e = document.getElementById(id);"
        " return e.getBoundingClientRect().left - e.closest('.stage').getBoundingClientRect().left; });")
    assert shift[0] == pytest.approx(shift[1], abs=0.5)
    browser.execute_script(
        "var s = document.querySelector('[data-role=plain]'), r = s.getBoundingClientRect();"
        "s.dispatchEvent(new WheelEvent('wheel', {deltaY: -100, clientX: r.left + 10, clientY: r.top + 10,"
        " bubbles: true, cancelable: true}));")
    assert rect(browser, "image-2d")["width"] == pytest.approx(1.25 * panned["width"], rel=1e-3)
    browser.find_element(By.ID, "zoom").click()  # 1:1 = one image pixel per screen pixel
    assert rect(browser, "image-2d")["width"] * dpr == pytest.approx(SHAPE_2D[1], abs=0.5)
    assert browser.find_element(By.ID, "zoom").get_attribute("aria-pressed") == "true"
    assert "1:1" in browser.find_element(By.ID, "zoom-value").text
    browser.find_element(By.ID, "zoom-fit").click()
    assert rect(browser, "image-2d") == pytest.approx(fit)


def test_2d_orientation_markers_only_when_the_header_gives_them(browser, viewer_reports: Path,
                                                                 report_2d: Path) -> None:
    open_page(browser, viewer_reports / "cxr" / "cases" / "S2001.html")
    marks = browser.execute_script(
        "return ['top', 'bottom', 'left', 'right'].map(function (e) {"
        " var m = document.querySelector('[data-role=plain] .om-' + e); return m && m.textContent; });")
    assert marks == ["H", "F", "R", "L"]  # patient's right on the viewer's left
    open_page(browser, report_2d / "cases" / "S0001.html")
    assert browser.execute_script("return document.querySelectorAll('.stage .om').length") == 0
    note = browser.execute_script("return document.getElementById('orientation-note').textContent")
    assert "Orientation unknown" in note


def test_ct_opens_at_the_hottest_voxel_with_the_field_of_view_outlined(browser, viewer_reports: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(browser, viewer_reports / "ct" / "cases" / "S3001.html")
    label = lambda v: browser.find_element(By.ID, f"label-{v}").text  # noqa: E731
    d, h, w = SHAPE_3D
    z, y, x = HOT_VOXEL
    assert (label("axial"), label("coronal"), label("sagittal")) == (
        f"slice {z + 1} of {d}", f"slice {y + 1} of {h}", f"slice {x + 1} of {w}")
    boxes = browser.execute_script(
        "return ['axial', 'coronal', 'sagittal'].map(function (v) {"
        " var b = document.querySelector('#view-' + v + ' [data-role=overlay] .fov');"
        " return [b.style.left, b.style.top, b.style.width, b.style.height, b.hidden]; });")
    pct = lambda a, n: pytest.approx(100 * a / n, abs=1e-3)  # noqa: E731 (CSS keeps 6 digits)
    (z0, z1), (y0, y1), (x0, x1) = FOV
    expected = [(x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h),  # rows of coronal/sagittal: S to I
                (x0 / w, (d - z1) / d, (x1 - x0) / w, (z1 - z0) / d),
                (y0 / h, (d - z1) / d, (y1 - y0) / h, (z1 - z0) / d)]
    for got, want in zip(boxes, expected, strict=True):
        assert [float(v.rstrip("%")) for v in got[:4]] == [pct(v, 1) for v in want] and got[4] is False
    ActionChains(browser).send_keys(Keys.END).perform()  # axial slice 12: outside the field of view
    assert "outside the model's field of view" in label("axial")
    assert browser.execute_script("return document.querySelector('#view-axial .fov').hidden") is True
    browser.find_element(By.ID, "to-peak").click()
    assert label("axial") == f"slice {z + 1} of {d}"
    # window/level in HU: the bone preset turns the soft tissue (60 HU) from light grey to dark
    soft = canvas_pixel(browser, "#view-axial [data-role=plain] canvas", 20, 10)[0]
    assert soft == round((60 + 1350) / 1500 * 255)
    browser.find_element(By.XPATH, "//button[@class='wl-preset' and text()='Bone']").click()
    bone = canvas_pixel(browser, "#view-axial [data-role=plain] canvas", 20, 10)[0]
    assert bone == round((60 + 500) / 1800 * 255)
    assert browser.find_element(By.ID, "wl-level-value").text == "400 HU"



# --- 3D zoom and pan: per view, both panels together; Ctrl + wheel zooms, a plain wheel steps slices,
# a drag pans, a click without dragging picks the voxel under the pointer at any zoom. ---

def box(driver, selector: str) -> dict[str, float]:
    return driver.execute_script(
        "var r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return {left: r.left, top: r.top, width: r.width, height: r.height};", selector)


def voxel_xy(r: dict[str, float], row: int, col: int, rows: int, cols: int) -> tuple[float, float]:
    """Viewport (x, y) of the centre of pixel (row, col) of a view drawn in the box ``r``."""
    return r["left"] + (col + 0.5) / cols * r["width"], r["top"] + (row + 0.5) / rows * r["height"]


def click_at(driver, x: float, y: float, jiggle: tuple[int, int] | None = None) -> None:
    """A real mouse click at viewport (x, y); ``jiggle`` moves the pointer that far while held."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(x), int(y)).pointer_down()
    if jiggle:
        actions.pointer_action.move_to_location(int(x) + jiggle[0], int(y) + jiggle[1])
    actions.pointer_action.pointer_up()
    actions.perform()


def wheel(driver, selector: str, x: float, y: float, delta: float, ctrl: bool) -> None:
    driver.execute_script(
        "document.querySelector(arguments[0]).dispatchEvent(new WheelEvent('wheel', {deltaY: arguments[3],"
        " ctrlKey: arguments[4], clientX: arguments[1], clientY: arguments[2],"
        " bubbles: true, cancelable: true}));",
        selector, x, y, delta, ctrl)


def sliders(driver) -> list[int]:
    return driver.execute_script(
        "return ['axial', 'coronal', 'sagittal'].map(function (v) {"
        " return Number(document.getElementById('slice-' + v).value); });")


def hot_pixels(shot: np.ndarray, r: dict[str, float]) -> int:
    """Pixels at the hot end of the colour map inside the viewport box ``r`` (device scale 1)."""
    top, left = int(r["top"]) + 1, int(r["left"]) + 1
    region = shot[top:int(r["top"] + r["height"]) - 1, left:int(r["left"] + r["width"]) - 1]
    red, green, blue = region[..., 0], region[..., 1], region[..., 2]
    return int(np.count_nonzero((red > green + 60) & (red > blue + 60)))


def test_3d_zoom_pans_and_clicks_through_the_zoom(browser, report_3d: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    open_page(browser, report_3d / "cases" / "S1001.html")
    d, h, w = SHAPE_3D
    z, y, x = HOT_ZYX
    plain, over = "#view-axial [data-role=plain]", "#view-axial [data-role=overlay]"
    value = lambda: browser.find_element(By.ID, "zoom3d-value").text  # noqa: E731
    assert browser.execute_script(
        "var g = document.getElementById('zoom3d-controls'); return [g.getAttribute('role'),"
        " !!document.getElementById('zoom3d-in'), !!document.getElementById('zoom3d-out'),"
        " !!document.getElementById('zoom3d-fit')];") == ["group", True, True, True]
    assert value() == "axial view: fit"
    browser.execute_script("document.getElementById('view-axial').scrollIntoView()")
    set_opacity(browser, 100)
    stage = box(browser, over)
    fit = box(browser, over + " canvas.c-base")
    assert fit == pytest.approx(stage)
    marks = box(browser, over + " .om-top")
    hot_fit = hot_pixels(screenshot(browser), stage)
    assert hot_fit > 200

    # Ctrl + wheel zooms at the pointer: the hot voxel stays under it, both panels follow.
    hx, hy = voxel_xy(fit, y, x, h, w)
    wheel(browser, over, hx, hy, -100, True)
    wheel(browser, over, hx, hy, -100, True)
    zoomed = box(browser, over + " canvas.c-base")
    assert zoomed["width"] == pytest.approx(1.5625 * fit["width"], rel=1e-3)
    assert zoomed["height"] == pytest.approx(1.5625 * fit["height"], rel=1e-3)
    assert voxel_xy(zoomed, y, x, h, w) == pytest.approx((hx, hy), abs=1)
    assert value() == "axial view: 1.56×"
    assert sliders(browser) == [z, y, x]  # Ctrl + wheel does not step slices
    offsets = browser.execute_script(  # each panel's image relative to its own stage: in step
        "return [arguments[0], arguments[1]].map(function (s) { var st = document.querySelector(s),"
        " c = st.querySelector('canvas').getBoundingClientRect(), r = st.getBoundingClientRect();"
        " return [c.left - r.left, c.top - r.top, c.width]; });", plain, over)
    assert offsets[0] == pytest.approx(offsets[1], abs=0.5)
    assert box(browser, over + " .layer-heat") == pytest.approx(zoomed)  # the layers follow
    assert box(browser, over + " .om-top") == pytest.approx(marks)  # orientation letters stay put
    assert box(browser, over) == pytest.approx(stage)  # the stage itself does not grow
    hot_zoomed = hot_pixels(screenshot(browser), stage)
    assert hot_zoomed > 1.8 * hot_fit  # the hot spot is magnified (area x 2.44 before clipping)
    # a plain wheel still steps the slice and leaves the zoom alone
    wheel(browser, over, hx, hy, 100, False)
    assert sliders(browser)[0] == z + 1
    wheel(browser, over, hx, hy, -100, False)
    assert sliders(browser)[0] == z
    assert box(browser, over + " canvas.c-base") == pytest.approx(zoomed)

    # A drag pans both panels and does not move the crosshair.
    overlay = browser.find_element(By.CSS_SELECTOR, over)
    (ActionChains(browser).move_to_element(overlay).click_and_hold().move_by_offset(-30, -20)
     .release().perform())
    panned = box(browser, over + " canvas.c-base")
    assert panned["left"] == pytest.approx(zoomed["left"] - 30, abs=1)
    assert panned["top"] == pytest.approx(zoomed["top"] - 20, abs=1)
    assert box(browser, plain + " canvas.c-base")["left"] - box(browser, plain)["left"] == pytest.approx(
        panned["left"] - stage["left"], abs=0.5)
    assert sliders(browser) == [z, y, x]
    # Pan is clamped: the image never leaves the stage.
    (ActionChains(browser).move_to_element_with_offset(overlay, -150, -120).click_and_hold()
     .move_by_offset(300, 240).release().perform())
    clamped = box(browser, over + " canvas.c-base")
    assert clamped["left"] == pytest.approx(stage["left"], abs=0.5)
    assert clamped["top"] == pytest.approx(stage["top"], abs=0.5)
    (ActionChains(browser).move_to_element_with_offset(overlay, 150, 120).click_and_hold()
     .move_by_offset(-300, -240).release().perform())
    clamped = box(browser, over + " canvas.c-base")
    assert clamped["left"] + clamped["width"] == pytest.approx(stage["left"] + stage["width"], abs=0.5)
    assert clamped["top"] + clamped["height"] == pytest.approx(stage["top"] + stage["height"], abs=0.5)
    assert sliders(browser) == [z, y, x]

    # A click (a jiggle under 4 px included) picks the voxel under the pointer through the zoom.
    now = box(browser, over + " canvas.c-base")
    row, col = 15, 20
    cx, cy = voxel_xy(now, row, col, h, w)
    assert stage["left"] < cx < stage["left"] + stage["width"]
    assert stage["top"] < cy < stage["top"] + stage["height"]
    at_fit = (int((cy - fit["top"]) / fit["height"] * h), int((cx - fit["left"]) / fit["width"] * w))
    assert at_fit != (row, col)  # without the zoom the same point would be another voxel
    click_at(browser, cx, cy, jiggle=(2, 1))
    assert sliders(browser) == [z, row, col]
    assert box(browser, over + " canvas.c-base") == pytest.approx(now)  # a click does not pan

    # Keys act on the active view: 2 = coronal; + zooms it, axial keeps its own zoom.
    ActionChains(browser).send_keys("2").perform()
    assert value() == "coronal view: fit"
    cor = "#view-coronal [data-role=overlay]"
    browser.execute_script("document.getElementById('view-coronal').scrollIntoView()")
    cor_fit = box(browser, cor + " canvas.c-base")
    ActionChains(browser).send_keys("++=").perform()
    cor_zoom = box(browser, cor + " canvas.c-base")
    assert cor_zoom["width"] == pytest.approx(1.25 ** 3 * cor_fit["width"], rel=1e-3)
    assert value() == "coronal view: 1.95×"
    assert box(browser, over + " canvas.c-base")["width"] == pytest.approx(now["width"])
    # coronal rows run Superior -> Inferior: row r is axial slice d - 1 - r
    row, col = 3, 9
    cx, cy = voxel_xy(cor_zoom, row, col, d, w)
    click_at(browser, cx, cy)
    assert sliders(browser) == [d - 1 - row, 15, col]
    ActionChains(browser).send_keys("-").perform()
    cor_less = box(browser, cor + " canvas.c-base")
    assert cor_less["width"] == pytest.approx(1.25 ** 2 * cor_fit["width"], rel=1e-3)
    ActionChains(browser).send_keys("0").perform()
    assert box(browser, cor + " canvas.c-base") == pytest.approx(cor_fit)
    assert value() == "coronal view: fit"
    # limits: 8x at most, fit at least
    ActionChains(browser).send_keys("+" * 12).perform()
    assert box(browser, cor + " canvas.c-base")["width"] == pytest.approx(8 * cor_fit["width"], rel=1e-3)
    assert value() == "coronal view: 8.00×"
    ActionChains(browser).send_keys("-" * 12).perform()
    assert box(browser, cor + " canvas.c-base") == pytest.approx(cor_fit)

    # The buttons zoom the active view; Fit restores it.
    ActionChains(browser).send_keys("1").perform()
    browser.execute_script("document.getElementById('zoom3d-controls').scrollIntoView()")
    browser.find_element(By.ID, "zoom3d-out").click()
    assert value() == "axial view: 1.25×"
    browser.find_element(By.ID, "zoom3d-in").click()
    assert value() == "axial view: 1.56×"
    browser.find_element(By.ID, "zoom3d-fit").click()
    assert value() == "axial view: fit"
    assert box(browser, over + " canvas.c-base") == pytest.approx(box(browser, over))
    assert box(browser, plain + " canvas.c-base") == pytest.approx(box(browser, plain))
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors


def test_3d_zoom_keeps_the_field_of_view_box_on_the_image(browser, viewer_reports: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(browser, viewer_reports / "ct" / "cases" / "S3001.html")
    d, h, w = SHAPE_3D
    (z0, z1), (y0, y1), (x0, x1) = FOV
    over = "#view-sagittal [data-role=overlay]"
    browser.execute_script("document.getElementById('view-sagittal').scrollIntoView()")
    def marks() -> list[float]:
        edges = ("top", "bottom", "left", "right")
        return [v for e in edges for v in box(browser, over + " .om-" + e).values()]

    before = marks()
    ActionChains(browser).send_keys("3++").perform()
    stage, image = box(browser, over), box(browser, over + " canvas.c-base")
    fov = box(browser, over + " .fov")
    assert image["width"] == pytest.approx(1.5625 * stage["width"], rel=1e-3)
    # sagittal: columns are h (anterior -> posterior), rows run Superior -> Inferior
    assert fov["left"] == pytest.approx(image["left"] + y0 / h * image["width"], abs=0.5)
    assert fov["width"] == pytest.approx((y1 - y0) / h * image["width"], abs=0.5)
    assert fov["top"] == pytest.approx(image["top"] + (d - z1) / d * image["height"], abs=0.5)
    assert fov["height"] == pytest.approx((z1 - z0) / d * image["height"], abs=0.5)
    assert browser.execute_script(  # the dashed line stays one pixel wide at any zoom
        "return getComputedStyle(document.querySelector(arguments[0] + ' .fov')).borderTopWidth",
        over) == "1px"
    assert marks() == pytest.approx(before)  # orientation letters stay on the stage's edges
    # Shift + drag on a zoomed view is still window/level, not a pan
    width = float(browser.find_element(By.ID, "wl-width").get_attribute("value"))
    stage_el = browser.find_element(By.CSS_SELECTOR, over)
    (ActionChains(browser).move_to_element(stage_el).key_down(Keys.SHIFT).click_and_hold()
     .move_by_offset(120, 0).release().key_up(Keys.SHIFT).perform())
    assert float(browser.find_element(By.ID, "wl-width").get_attribute("value")) > width + 20
    assert box(browser, over + " canvas.c-base") == pytest.approx(image)
    assert sliders(browser) == list(HOT_VOXEL)  # nor a crosshair move
    ActionChains(browser).send_keys("0").perform()
    assert box(browser, over + " canvas.c-base") == pytest.approx(stage)
    fov = box(browser, over + " .fov")
    assert fov["left"] == pytest.approx(stage["left"] + y0 / h * stage["width"], abs=0.5)

def test_print_media_hides_the_controls(browser, viewer_reports: Path) -> None:
    open_page(browser, viewer_reports / "cxr" / "cases" / "S2001.html")
    shown = "return ['controls', 'wl-controls', 'zoom-controls', 'image-2d'].map(function (id) {" \
            " return getComputedStyle(document.getElementById(id)).display; })" \
            ".concat([getComputedStyle(document.querySelector('.keys')).display])"
    assert "none" not in browser.execute_script(shown)
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        assert browser.execute_script(shown) == ["none", "none", "none", "block", "none"]
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
