"""Per-label heatmaps (multi-class and multi-label tasks): each case page can show the evidence
for every label, not only the most probable one.

The record checks, the page data (each map embedded once, the explained label first) and, in
headless Chromium, the "Heatmap for" selector and its ``l`` key in 2D and 3D: the map drawn moves
to the chosen label's hot spot and the page says which label it explains.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.report import CaseRecord, build_report
from pipeline.report.case_checks import validate
from tests.report.conftest import SHAPE_2D, SHAPE_3D, gaussian, image_2d, volume_3d
from tests.report.test_browser import browser, open_page  # noqa: F401  (the module's fixture)

LABELS = ["normal", "effusion", "nodule"]
#: Where each label's map is hot (2D: y, x; 3D: z, y, x).
SPOTS_2D = {"normal": (20, 20), "effusion": (70, 30), "nodule": (30, 100)}
SPOTS_3D = {"normal": (2, 4, 4), "effusion": (6, 14, 6), "nodule": (9, 6, 18)}
PROBS = {"normal": 0.1, "effusion": 0.2, "nodule": 0.7}  # nodule is the most probable


def _case_2d(sid: str = "S0001", **overrides) -> CaseRecord:
    maps = {k: gaussian(SHAPE_2D, yx, 6.0) for k, yx in SPOTS_2D.items()}
    fields = dict(sample_id=sid, split="test", true_label="effusion", predicted_label="nodule",
                  probability=0.7, probabilities=PROBS, threshold=None, image=image_2d(1),
                  heatmap=maps["nodule"], label_heatmaps=maps)
    fields.update(overrides)
    return CaseRecord(**fields)


def _case_3d(sid: str = "S1001") -> CaseRecord:
    maps = {k: gaussian(SHAPE_3D, zyx, 1.5) for k, zyx in SPOTS_3D.items()}
    return CaseRecord(sample_id=sid, split="test", true_label="nodule", predicted_label="nodule",
                      probability=0.7, probabilities=PROBS, threshold=None, image=volume_3d(3),
                      heatmap=maps["nodule"], label_heatmaps=maps, spacing=(5.0, 2.0, 2.0))


def _page_data(page: Path, element: str) -> dict:
    html = page.read_text(encoding="utf-8")
    found = re.search(rf'<script type="application/json" id="{element}">(.*?)</script>', html, re.S)
    assert found, f"no {element} on {page}"
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("label_maps")
    build_report(root / "2d", task_name="multi", kind="2d", labels=LABELS,
                 cases=[_case_2d("S0001"),
                        _case_2d("S0002", label_heatmaps={}, heatmap=gaussian(SHAPE_2D, (40, 60), 6.0))])
    build_report(root / "3d", task_name="multi3d", kind="3d", labels=LABELS, cases=[_case_3d()])
    return {"2d": root / "2d", "3d": root / "3d"}


def test_record_checks_name_the_bad_label_map() -> None:
    good = _case_2d()
    validate(good, kind="2d", labels=LABELS)
    with pytest.raises(ValueError, match=r"label_heatmaps has labels not in .*\['cat'\]"):
        validate(_case_2d(label_heatmaps={"cat": good.heatmap}), kind="2d", labels=LABELS)
    with pytest.raises(ValueError, match=r"label_heatmaps\['nodule'\] must have the image's shape"):
        validate(_case_2d(label_heatmaps={"nodule": np.zeros((4, 4), np.float32)}), kind="2d", labels=LABELS)
    bad = good.heatmap.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"label_heatmaps\['normal'\] has NaN"):
        validate(_case_2d(label_heatmaps={**good.label_heatmaps, "normal": bad}), kind="2d", labels=LABELS)
    with pytest.raises(ValueError, match="label_heatmaps needs heatmap"):
        validate(_case_2d(heatmap=None), kind="2d", labels=LABELS)


def test_page_embeds_each_label_map_once_with_the_explained_label_selected(reports) -> None:
    page = reports["2d"] / "cases" / "S0001.html"
    data = _page_data(page, "image-data")
    assert data["heat"] is None  # the explained label's map is among the per-label ones, not repeated
    assert [h["label"] for h in data["heats"]] == LABELS
    assert data["heat_selected"] == LABELS.index("nodule") and data["predicted"] == ["nodule"]
    html = page.read_text(encoding="utf-8")
    for entry in data["heats"]:
        assert html.count(entry["png"]) == 1
    assert re.search(r'<option value="2" selected>nodule \(most probable\)</option>', html)
    assert '<select id="heat-label">' in html and "<kbd>l</kbd>" in html
    # a case without per-label maps keeps the single map and no selector
    single = reports["2d"] / "cases" / "S0002.html"
    assert _page_data(single, "image-data")["heat"]
    assert '<select id="heat-label">' not in single.read_text(encoding="utf-8")
    volume = _page_data(reports["3d"] / "cases" / "S1001.html", "volume-data")
    assert volume["start"] == list(SPOTS_3D["nodule"])  # opens at the explained label's peak
    assert [h["peak"] for h in volume["heats"]] == [list(SPOTS_3D[k]) for k in LABELS]


def _alpha(driver, canvas_js: str, col: int, row: int) -> int:
    return driver.execute_script(
        f"var c = {canvas_js};"
        "return c.getContext('2d').getImageData(arguments[0], arguments[1], 1, 1).data[3];",
        col, row)


def test_2d_selector_and_key_swap_the_label_map(browser, reports) -> None:  # noqa: F811
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_page(browser, reports["2d"] / "cases" / "S0001.html")
    canvas = "document.getElementById('heat-2d')"

    def hot(label: str) -> int:
        y, x = SPOTS_2D[label]
        return _alpha(browser, canvas, x, y)

    assert hot("nodule") >= 250 and hot("effusion") < 10
    explains = browser.find_element(By.ID, "explains")
    Select(browser.find_element(By.ID, "heat-label")).select_by_visible_text("effusion")
    browser.execute_script("return new Promise(r => setTimeout(r, 50))")
    assert hot("effusion") >= 250 and hot("nodule") < 10
    assert explains.text.startswith("Heatmap: evidence for effusion.")
    assert "The model's call was nodule" in explains.text
    browser.find_element(By.TAG_NAME, "h1").click()  # focus off the select: keys reach the page
    ActionChains(browser).send_keys("l").perform()  # next label: nodule
    browser.execute_script("return new Promise(r => setTimeout(r, 50))")
    assert hot("nodule") >= 250 and hot("effusion") < 10
    assert browser.find_element(By.ID, "heat-label").get_attribute("value") == "2"
    assert explains.text == "Heatmap: evidence for nodule."


def test_3d_selector_moves_the_map_and_the_peak(browser, reports) -> None:  # noqa: F811
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_page(browser, reports["3d"] / "cases" / "S1001.html")
    d, h, w = SHAPE_3D
    label = lambda v: browser.find_element(By.ID, f"label-{v}").text  # noqa: E731

    def at(spot: tuple[int, int, int]) -> tuple[str, str, str]:
        z, y, x = spot
        return f"slice {z + 1} of {d}", f"slice {y + 1} of {h}", f"slice {x + 1} of {w}"

    assert (label("axial"), label("coronal"), label("sagittal")) == at(SPOTS_3D["nodule"])
    Select(browser.find_element(By.ID, "heat-label")).select_by_visible_text("effusion")
    browser.execute_script("return new Promise(r => setTimeout(r, 50))")
    browser.find_element(By.TAG_NAME, "h1").click()
    ActionChains(browser).send_keys("c").perform()  # to the peak of the label shown
    z, y, x = SPOTS_3D["effusion"]
    assert (label("axial"), label("coronal"), label("sagittal")) == at((z, y, x))
    axial = "document.querySelector('#view-axial .layer-heat')"
    assert _alpha(browser, axial, x, y) >= 250
    assert "evidence for effusion" in browser.find_element(By.ID, "explains").text
