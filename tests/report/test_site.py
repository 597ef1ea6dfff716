"""The built site: structure, escaping, CSP, offline links, zip round trip, atomic rebuilds."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.report import CaseRecord, build_report
from tests.report.conftest import (
    CARD,
    HOT_ZYX,
    LABELS,
    METRICS,
    SHAPE_3D,
    SPECS_2D,
    build_2d,
    case_2d,
    case_3d,
    gaussian,
    volume_3d,
)
from tests.report.htmlscan import scan


def pages(root: Path) -> list[Path]:
    return sorted(root.rglob("*.html"))


def test_writes_index_and_one_page_per_case(report_2d: Path, report_3d: Path) -> None:
    assert sorted(p.name for p in (report_2d / "cases").iterdir()) == [f"{s[0]}.html" for s in SPECS_2D]
    assert sorted(p.name for p in (report_3d / "cases").iterdir()) == ["S1001.html", "S1002.html",
                                                                       "S1003.html"]
    index = scan(report_2d / "index.html")
    rows = [e for e in index.find("tr") if "data-id" in e.attrs]
    assert [r.attrs["data-id"] for r in rows] == [s[0] for s in SPECS_2D]
    assert {a.attrs["href"] for a in index.find("a")} >= {f"cases/{s[0]}.html" for s in SPECS_2D}
    outcomes = {r.attrs["data-id"]: r.attrs["data-outcome"] for r in rows}
    assert outcomes == {"S0001": "correct", "S0002": "incorrect", "S0003": "incorrect",
                        "S0004": "correct", "S0005": "unknown"}
    assert {r.attrs["data-id"] for r in rows if r.attrs["data-low"] == "1"} == {"S0005"}
    assert not list(report_2d.parent.glob(".*")), "no staging folders left behind"


def test_index_shows_metrics_with_cis_card_and_review_groups(report_2d: Path) -> None:
    text = " ".join(scan(report_2d / "index.html").text)
    for expected in ("AUROC", "0.910", "0.840 to 0.960", "Sensitivity (recall)", "0.600 to 0.930",
                     "Specificity", "0.700 to 0.950", "Expected calibration error",
                     "Operating threshold", "0.500", "resnet18", "96 × 128 × 1",
                     "none (trained from scratch)", "ab" * 32, "Research use only",
                     "not where disease is", "False positives", "False negatives",
                     "Most confident true positives", "Least certain predictions"):
        assert expected in text, expected
    page = scan(report_2d / "index.html")
    fp = page.by_id("group-false-positives")
    assert fp.tag == "section"
    cards = [a.attrs["href"] for a in page.find("a")]
    # FP S0002, FN S0003, TP S0001 and the uncertain S0005 each get a review card + a table link.
    for sid in ("S0001", "S0002", "S0003", "S0005"):
        assert cards.count(f"cases/{sid}.html") == 2, sid
    assert cards.count("cases/S0004.html") == 1


def test_case_page_shows_decision_threshold_truth_and_caveat(report_2d: Path) -> None:
    text = " ".join(scan(report_2d / "cases" / "S0002.html").text)
    for expected in ("Case S0002", "opacity", "0.71", "0.500 (chosen on the validation set)",
                     "Incorrect", "false positive", "not where", "disease is", "Heatmap opacity",
                     "Keyboard shortcuts", "Research use only"):
        assert expected in text, expected
    unknown = " ".join(scan(report_2d / "cases" / "S0005.html").text)
    assert "not known (no reference label for this study)" in unknown
    assert "Low confidence" in unknown and "treat it as uncertain" in unknown


def test_2d_case_embeds_full_resolution_image_and_heatmap(report_2d: Path) -> None:
    from pipeline.report.imaging import unpack_png

    page = scan(report_2d / "cases" / "S0001.html")
    data = json.loads(page.by_id("image-data").text)  # drawn by the page's script (case.js)
    np.testing.assert_array_equal(unpack_png(data["base"], (96, 128)), case_2d(SPECS_2D[0], seed=0).image)
    heat = unpack_png(data["heat"], (96, 128))
    assert heat[30, 40] == 255 and heat[85, 115] == 0  # opacity follows the heatmap
    assert unpack_png(data["outline"], (96, 128)).any()
    assert page.by_id("image-2d").tag == page.by_id("heat-2d").tag == "canvas"
    assert page.by_id("opacity").attrs["type"] == "range"


def _png(uri: str):
    import io

    return io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))


def test_3d_case_embeds_the_volume_heatmap_and_mask(report_3d: Path) -> None:
    page = scan(report_3d / "cases" / "S1001.html")
    (block,) = [s for s in page.find("script") if s.attrs.get("type") == "application/json"]
    data = json.loads(block.text)
    assert data["shape"] == list(SHAPE_3D) and data["spacing"] == [5.0, 2.0, 2.0]
    from pipeline.report.imaging import unpack_png

    unpack = lambda s: unpack_png(s, SHAPE_3D)  # noqa: E731
    np.testing.assert_array_equal(unpack(data["base"]), volume_3d(len("S1001")))
    heat = unpack(data["heat"])
    assert np.unravel_index(np.argmax(heat), SHAPE_3D) == HOT_ZYX
    assert data["start"] == list(HOT_ZYX)  # viewer opens at the heatmap peak
    np.testing.assert_array_equal(unpack(data["mask"]), gaussian(SHAPE_3D, HOT_ZYX, 2.5) > 0.6)
    assert len(data["lut"]) == 768
    for view in ("axial", "coronal", "sagittal"):
        assert page.by_id(f"slice-{view}").attrs["type"] == "range"
    no_heat = json.loads([s for s in scan(report_3d / "cases" / "S1003.html").find("script")
                          if s.attrs.get("type") == "application/json"][0].text)
    assert no_heat["heat"] is None


@pytest.mark.parametrize("which", ["2d", "3d"])
def test_hostile_strings_are_escaped_never_markup(which: str, report_2d: Path, report_3d: Path) -> None:
    root = report_2d if which == "2d" else report_3d
    for path in pages(root):
        page = scan(path)
        scripts = page.find("script")
        executable = [s for s in scripts if s.attrs.get("type") is None]
        assert len(executable) == 1, path  # only our own hashed script
        assert all(s.attrs.get("type") in (None, "application/json") for s in scripts)
        assert not any("__xss" in s.text for s in scripts)
        assert not any(e.attrs.get("onerror") for e in page.elements)
        assert not any(e.tag == "img" and e.attrs.get("src") == "x" for e in page.elements)
        raw = path.read_text(encoding="utf-8")
        assert "<script>window" not in raw and "<b>demo</b>" not in raw
    text = " ".join(scan(root / "cases" / ("S0001.html" if which == "2d" else "S1001.html")).text)
    assert "<script>window.__xss=1</script>" in text  # shown to the reader as text
    if which == "2d":
        assert "DOE^JANE<script>window.__xss=3</script>" in text
        index_text = " ".join(scan(root / "index.html").text)
        assert "cxr <b>demo</b>" in index_text and "<script>window.__xss=1</script>" in index_text


def test_strict_csp_allows_only_the_inline_script_and_style_by_hash(report_2d: Path,
                                                                      report_3d: Path) -> None:
    for path in pages(report_2d) + pages(report_3d):
        page = scan(path)
        (meta,) = [m for m in page.find("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
        policy = dict(d.strip().split(" ", 1) for d in meta.attrs["content"].split(";"))
        assert policy["default-src"] == "'none'"
        assert policy["img-src"] == "data:"
        assert policy["base-uri"] == "'none'" and policy["form-action"] == "'none'"
        assert "unsafe" not in meta.attrs["content"]
        (script,) = [s for s in page.find("script") if s.attrs.get("type") is None]
        (style,) = page.find("style")
        assert policy["script-src"] == _hash(script.text)
        assert policy["style-src"] == _hash(style.text)
        first_resource = min(i for i, e in enumerate(page.elements)
                             if e.tag in ("style", "script", "img", "link", "svg"))
        assert page.elements.index(meta) < first_resource  # the policy precedes everything it guards


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_no_external_urls_or_absolute_links(report_2d: Path, report_3d: Path) -> None:
    for path in pages(report_2d) + pages(report_3d):
        raw = path.read_text(encoding="utf-8")
        assert not re.search(r"(?i)\b(https?|ftp|wss?|file)://", raw), path
        assert not re.search(r"(?i)url\(|@import|\bfetch\(|XMLHttpRequest|WebSocket", raw), path
        for link in scan(path).links():
            assert link.startswith("data:") or not re.match(r"(?i)[a-z][a-z0-9+.-]*:|/", link), link


def _check_links_resolve(root: Path) -> int:
    checked = 0
    for path in pages(root):
        for link in scan(path).links():
            if link.startswith(("data:", "#")):
                continue
            assert (path.parent / link).resolve().is_file(), f"{path.name}: {link}"
            checked += 1
    return checked


def test_zip_round_trip_keeps_every_link_working(report_2d: Path, tmp_path: Path) -> None:
    archive = shutil.make_archive(str(tmp_path / "report"), "zip", root_dir=report_2d.parent,
                                  base_dir=report_2d.name)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "elsewhere")
    extracted = tmp_path / "elsewhere" / report_2d.name
    # index -> 5 cases (table) + 4 review cards; each case -> index + prev/next.
    assert _check_links_resolve(extracted) == 9 + 5 + 8
    for a, b in zip(pages(report_2d), pages(extracted), strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_build_is_deterministic_and_replaces_the_old_report(tmp_path: Path) -> None:
    out = tmp_path / "cxr"
    out.mkdir()
    (out / "stale.html").write_text("old")
    build_2d(out)
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert Path("stale.html") not in first
    build_2d(out)
    second = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert first == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cxr"]


def test_a_bad_case_midway_leaves_the_previous_report_untouched(report_2d: Path, tmp_path: Path) -> None:
    out = tmp_path / "cxr"
    build_2d(out)
    before = (out / "index.html").read_bytes()

    def cases():
        yield case_2d(SPECS_2D[0])
        yield case_2d(SPECS_2D[1], sample_id="../escape")

    with pytest.raises(ValueError, match="sample_id"):
        build_report(out, task_name="cxr", kind="2d", labels=LABELS, cases=cases())
    assert (out / "index.html").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cxr"]


def test_cases_are_streamed_not_collected(tmp_path: Path) -> None:
    """Each case page is on disk before the next record is even produced (one look-ahead)."""
    written: list[int] = []
    staging = tmp_path

    def cases():
        for i in range(4):
            pages_so_far = list(staging.glob(".cxr.*/cases/*.html"))
            written.append(len(pages_so_far))
            yield case_2d((f"S{i:04d}", "test", "normal", "normal", 0.1, None), seed=i)

    build_report(tmp_path / "cxr", task_name="cxr", kind="2d", labels=LABELS, cases=cases())
    assert written == [0, 0, 1, 2]


def test_derives_categories_and_handles_no_metrics_or_card(tmp_path: Path) -> None:
    specs = [("S1", "test", "normal", "opacity", 0.8, None), ("S2", "test", "opacity", "normal", 0.2, None)]
    build_report(tmp_path / "r", task_name="t", kind="2d", labels=LABELS,
                 cases=(case_2d(s, heatmap=None, mask=None) for s in specs))
    page = scan(tmp_path / "r" / "index.html")
    rows = {e.attrs["data-id"]: e.attrs["data-category"] for e in page.find("tr") if "data-id" in e.attrs}
    assert rows == {"S1": "false positive", "S2": "false negative"}
    text = " ".join(page.text)
    assert "No test metrics were provided." in text and "No model card was provided." in text
    assert "No heatmap was computed for this case" in " ".join(scan(tmp_path / "r/cases/S1.html").text)


def test_multiclass_without_threshold_uses_the_runner_up_margin(tmp_path: Path) -> None:
    labels = ["a", "b", "c"]
    case = CaseRecord(sample_id="S9", split="test", true_label="c", predicted_label="b",
                      probability=0.45, probabilities={"a": 0.15, "b": 0.45, "c": 0.40},
                      image=np.zeros((8, 8), np.uint8))
    build_report(tmp_path / "r", task_name="t", kind="2d", labels=labels, cases=[case])
    page = scan(tmp_path / "r" / "index.html")
    (row,) = [e for e in page.find("tr") if "data-id" in e.attrs]
    assert float(row.attrs["data-margin"]) == pytest.approx(0.05)
    assert row.attrs["data-low"] == "1" and row.attrs["data-outcome"] == "incorrect"
    assert page.by_id("group-other-errors").tag == "section"
    text = " ".join(" ".join(page.text).split())
    assert "when the two most likely labels are within 0.10 of each other" in text
    assert "uncertain band" not in text  # no threshold, no band


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"kind": "4d"}, "kind must be one of"),
    ({"labels": ["a", "a"]}, "labels must be distinct"),
    ({"low_confidence_margin": 0.0}, "low_confidence_margin"),
    ({"highlight_limit": 0}, "highlight_limit"),
    ({"positive_label": "zebra"}, "positive_label must be one of"),
    ({"task_name": ""}, "task_name"),
])
def test_bad_arguments_are_refused(kwargs: dict, match: str, tmp_path: Path) -> None:
    args = dict(task_name="t", kind="2d", labels=LABELS, cases=[])
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_report(tmp_path / "r", **args)
    assert not (tmp_path / "r").exists()


def test_3d_report_refuses_2d_images_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"image must be a 3D uint8 array"):
        build_report(tmp_path / "r", task_name="t", kind="3d", labels=LABELS,
                     cases=[case_2d(SPECS_2D[0])])
    with pytest.raises(ValueError, match="duplicate sample_id 'S1'"):
        build_report(tmp_path / "r", task_name="t", kind="3d", labels=LABELS,
                     cases=[case_3d("S1"), case_3d("S1")])


READER_METRICS = {
    "auroc": 0.99, "auroc_ci_low": 0.98, "auroc_ci_high": 1.0, "auroc_ci_method": "bootstrap",
    "specificity": 1.0, "specificity_ci_low": 0.935, "specificity_ci_high": 1.0,
    "specificity_ci_method": "clopper-pearson", "recall": 0.9, "recall_ci_low": 0.8,
    "recall_ci_high": 0.97, "recall_ci_method": "bootstrap", "n": 91, "fn": 4, "fp": 0, "tn": 55,
    "tp": 32, "iou": 0.17, "iou_ci_low": 0.13, "iou_ci_high": 0.22, "pointing_game": 0.0,
    "pointing_game_ci_low": 0.0, "pointing_game_ci_high": 0.23, "pointing_game_ci_method": "clopper-pearson",
    "pointing_game_chance": 0.03, "energy_in_mask": 0.09, "energy_in_mask_ci_low": 0.08,
    "energy_in_mask_ci_high": 0.11, "energy_chance": 0.03, "localization_valid_resamples": 1000,
    "n_localized": 14, "deletion_win_rate": 0.98, "deletion_flag": False, "threshold": 0.5,
}


@pytest.fixture(scope="module")
def reader_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2D report with exact intervals, heatmap measures and a 64 x 64 model input."""
    out = tmp_path_factory.mktemp("reader") / "cxr"
    build_report(out, task_name="cxr", kind="2d", labels=LABELS,
                 cases=(case_2d(s, seed=i) for i, s in enumerate(SPECS_2D)),
                 card={"input_shape": [64, 64, 1]}, metrics=READER_METRICS)
    return out


def test_index_keeps_heatmap_measures_apart_with_chance_levels_and_warnings(reader_report: Path) -> None:
    raw = (reader_report / "index.html").read_text()
    metrics_part = raw[raw.index('id="metrics"'):raw.index('id="localization"')]
    heatmap_part = raw[raw.index('id="localization"'):raw.index('id="review"')]
    assert "Specificity" in metrics_part and "Pointing-game" not in metrics_part
    assert "Heatmap-lesion overlap (IoU)" not in metrics_part
    for expected in ("Pointing-game hit rate", "Heatmap share inside lesions", "Chance level",
                     "not defined", "0.030", "0.500", "Deletion check"):
        assert expected in heatmap_part, expected
    text = " ".join(scan(reader_report / "index.html").text)
    assert ("The heatmaps point at the lesion no more often than chance (pointing game 0.00, 95% CI "
            "0.000 to 0.230, vs 0.03 by chance): do not use them to locate findings.") in text
    assert "Most of each heatmap lies outside the annotated lesions" in text


def test_exact_intervals_carry_a_footnote_where_shown(reader_report: Path) -> None:
    raw = (reader_report / "index.html").read_text()
    metrics_part = raw[raw.index('id="metrics"'):raw.index('id="localization"')]
    assert re.search(r"0\.935 to 1\.000 <abbr class=\"ci-exact\"", metrics_part)
    assert "0.800 to 0.970 <abbr" not in metrics_part  # bootstrap intervals are not marked
    assert "Exact (Clopper-Pearson) interval: the bootstrap had no events" in metrics_part
    assert "Exact (Clopper-Pearson) interval" in raw[raw.index('id="localization"'):]
    case = (reader_report / "cases" / "S0001.html").read_text()
    assert "0.935 to 1.000 <abbr" in case and "Exact (Clopper-Pearson) interval" in case


def test_counts_table_uses_readable_names(reader_report: Path) -> None:
    raw = (reader_report / "index.html").read_text()
    counts = raw[raw.index("Counts and settings behind these figures"):raw.index('id="localization"')]
    for name in ("False negatives", "False positives", "True negatives", "True positives",
                 "Test cases", "Bootstrap resamples behind the heatmap intervals",
                 "Cases with an annotated lesion"):
        assert f">{name}" in counts, name
    assert not re.search(r">(fn|fp|tn|tp|n|localization valid resamples|n localized)<", counts)


def test_case_page_says_which_label_the_heatmap_explains(reader_report: Path) -> None:
    missed = " ".join(scan(reader_report / "cases" / "S0003.html").text)  # false negative
    assert "Heatmap: evidence for opacity." in missed
    assert "The model's call was normal: the map shows what pushed the score towards opacity" in missed
    hit = " ".join(scan(reader_report / "cases" / "S0001.html").text)  # true positive
    assert "Heatmap: evidence for opacity." in hit and "The model's call was" not in hit


def test_explained_label_follows_the_explain_default() -> None:
    from pipeline.report.case_view import explained_label

    binary = case_2d(SPECS_2D[2])  # predicted normal, threshold 0.5
    assert explained_label(binary, "opacity") == "opacity"
    multi = CaseRecord(sample_id="S9", split="test", true_label="c", predicted_label="b",
                       probability=0.45, probabilities={"a": 0.15, "b": 0.45, "c": 0.40},
                       image=np.zeros((8, 8), np.uint8), heatmap=np.zeros((8, 8), np.float32))
    assert explained_label(multi, None) == "b"
    assert explained_label(case_2d(SPECS_2D[0], heatmap=None), "opacity") is None


def test_confidence_badge_says_near_or_far_from_the_threshold(reader_report: Path) -> None:
    for path in pages(reader_report):
        assert not re.search(r">\s*(Clear|Unclear)\s*<", path.read_text()), path.name
    far = " ".join(scan(reader_report / "cases" / "S0001.html").text)
    assert "Far from the threshold" in far
    near = " ".join(scan(reader_report / "cases" / "S0005.html").text)
    assert "Low confidence: near the threshold" in near


def test_caption_says_what_the_model_saw(reader_report: Path, report_2d: Path) -> None:
    for path in pages(reader_report) + pages(report_2d):
        assert "windowed as the model saw it" not in path.read_text()
    text = " ".join(scan(reader_report / "cases" / "S0001.html").text)
    assert ("Original resolution (128 × 96 pixels), same window as the model's input (the model saw it "
            "resized to fit 64 × 64 pixels)") in text
    same = " ".join(scan(report_2d / "cases" / "S0001.html").text)  # card input 96 x 128 = image
    assert "Model input (128 × 96 pixels, as the model saw it)" in same


# --- Index figures, subgroup table and thumbnails (issue 11) ---


def test_index_has_roc_pr_and_reliability_figures_with_the_operating_point(
        report_2d_performance: Path) -> None:
    from tests.report.conftest import SUBGROUP_XSS

    page = scan(report_2d_performance / "index.html")
    charts = [e for e in page.find("svg") if "chart" in (e.attrs.get("class") or "").split()]
    assert [c.attrs["id"] for c in charts] == ["fig-roc", "fig-pr", "fig-calibration"]
    assert all(c.attrs["role"] == "img" and c.attrs["aria-labelledby"] for c in charts)
    ids = {e.attrs.get("id") for e in page.elements}
    for c in charts:
        assert set(c.attrs["aria-labelledby"].split()) <= ids
    text = " ".join(page.text)
    for expected in ("ROC curve (test set)", "Precision-recall curve (test set)",
                     "Reliability diagram (test set)", "Perfect calibration", "Chance (area 0.5)",
                     "t = 0.50", "threshold 0.500, sensitivity 0.800, specificity 0.850",
                     "True positive rate (sensitivity)", "Mean predicted probability"):
        assert expected in text, expected
    assert len([e for e in page.find("g") if e.attrs.get("class") == "marker"]) == 2  # ROC and PR
    # the confusion table (the stylesheet's .confusion style) at the operating threshold
    (table,) = [e for e in page.find("table") if e.attrs.get("class") == "confusion"]
    assert {"30", "5", "4", "21"} <= set(page.text)
    raw = (report_2d_performance / "index.html").read_text(encoding="utf-8")
    assert SUBGROUP_XSS not in raw and "window.__xss=4" in " ".join(page.text)


def test_index_shows_the_subgroup_table_with_intervals_and_caveats(report_2d_performance: Path) -> None:
    page = scan(report_2d_performance / "index.html")
    assert page.by_id("subgroup-table").tag == "table"
    text = " ".join(page.text)
    for expected in ("Performance by subgroup", "Modality", "CR", "0.88", "0.74 to 0.97",
                     "0.52 to 0.98", "Clopper-Pearson", "patient-level bootstrap",
                     "site (labels.csv)", "not a statistical test"):
        assert expected in text, expected


def test_index_without_curves_or_subgroups_says_so(report_2d: Path) -> None:
    text = " ".join(scan(report_2d / "index.html").text)
    assert "No curve data was provided." in text and "No subgroup metrics were provided." in text


@pytest.mark.parametrize("which", ["2d", "3d"])
def test_each_thumbnail_is_embedded_once_and_shown_in_the_case_table(
        which: str, report_2d_performance: Path, report_3d: Path) -> None:
    root = report_2d_performance if which == "2d" else report_3d
    page = scan(root / "index.html")
    defs = {e.attrs["id"]: e for e in page.find("g") if (e.attrs.get("id") or "").startswith("thumb-")}
    rows = [e.attrs["data-id"] for e in page.find("tr") if "data-id" in e.attrs]
    assert sorted(defs) == sorted(f"thumb-{sid}" for sid in rows)
    images = [e.attrs["href"] for e in page.find("image")]
    assert len(images) == len(rows)  # one data URI per case, no copies for the review cards
    assert all(uri.startswith("data:image/png;base64,") for uri in images)
    uses = [e.attrs["href"] for e in page.find("use")]
    for sid in rows:  # the table row's thumbnail, plus its review card if it has one
        assert 1 <= uses.count(f"#thumb-{sid}") <= 2
    assert not [e for e in page.find("img") if (e.attrs.get("src") or "").startswith("data:image/png")]
    assert not list(root.rglob(".thumbnails.part"))



def test_index_with_figures_keeps_the_csp_offline_and_escaping_rules(report_2d_performance: Path) -> None:
    path = report_2d_performance / "index.html"
    raw = path.read_text(encoding="utf-8")
    page = scan(path)
    assert len([s for s in page.find("script") if s.attrs.get("type") is None]) == 1
    assert not any(k.startswith("on") or k == "style" for e in page.elements for k in e.attrs)
    assert not re.search(r"(?i)\b(https?|ftp|wss?|file)://|url\(|xmlns", raw)
    for link in page.links():
        assert link.startswith(("data:", "#", "cases/")), link
    (meta,) = [m for m in page.find("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert "img-src data:;" in meta.attrs["content"] and "unsafe" not in meta.attrs["content"]
    assert "<script>window" not in raw


def test_binary_operating_point_defaults_to_the_flat_metrics_and_confusion_is_passed(
        tmp_path: Path) -> None:
    from tests.report.conftest import METRICS, performance_inputs

    curves = performance_inputs()["curves"]
    metrics = {k: v for k, v in METRICS.items() if k != "confusion_matrix"}
    build_report(tmp_path / "r", task_name="t", kind="2d", labels=LABELS,
                 cases=[case_2d(SPECS_2D[0])], metrics=metrics, curves=curves,
                 confusion=[[7, 1], [2, 9]])
    page = scan(tmp_path / "r" / "index.html")
    text = " ".join(page.text)
    assert "threshold 0.500, sensitivity 0.800, specificity 0.850" in text  # METRICS' values
    (table,) = [e for e in page.find("table") if e.attrs.get("class") == "confusion"]
    cells = [e.attrs.get("class") for e in page.find("td") if "diag" in (e.attrs.get("class") or "")
             or "off" in (e.attrs.get("class") or "")]
    assert cells == ["num diag", "num off", "num off", "num diag"]
    assert {"7", "1", "2", "9"} <= set(page.text)


def test_a_low_threshold_flags_only_calls_in_its_log_odds_band(tmp_path: Path) -> None:
    """At a threshold of 0.096 (the cxr demo's Youden point), a band of 0.1 is 0.066-0.137: the
    index says so and flags only the call inside it; a clear negative (0.001) and a call at
    0.19, both within 0.1 of the threshold, are not flagged."""
    specs = [("L1", "test", "normal", "normal", 0.001, None),
             ("L2", "test", "opacity", "opacity", 0.12, None),
             ("L3", "test", "opacity", "opacity", 0.19, None)]
    out = build_report(tmp_path / "low", task_name="cxr", kind="2d", labels=LABELS,
                       cases=[case_2d(s, threshold=0.096) for s in specs], card=CARD,
                       metrics={**METRICS, "threshold": 0.096}, low_confidence_margin=0.1).parent
    def text(path: Path) -> str:
        return " ".join(" ".join(scan(path).text).split())

    index = text(out / "index.html")
    assert "lies in the uncertain band around the threshold, between 0.066 and 0.137" in index
    assert "two most likely labels" not in index  # a binary task has a threshold
    flagged = {sid for sid in ("L1", "L2", "L3")
               if "Low confidence" in text(out / "cases" / f"{sid}.html")}
    assert flagged == {"L2"}
    inside = text(out / "cases" / "L2.html")
    assert "uncertain band around the threshold (0.066 to 0.137), 0.02 from it" in inside
    clear = text(out / "cases" / "L1.html")
    assert "Far from the threshold" in clear
    assert "0.10 from the threshold (uncertain band 0.066 to 0.137)" in clear
