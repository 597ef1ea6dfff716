"""The built site: structure, escaping, CSP, offline links, zip round trip, atomic rebuilds."""

from __future__ import annotations

import base64
import gzip
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
    HOT_ZYX,
    LABELS,
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
    from PIL import Image

    page = scan(report_2d / "cases" / "S0001.html")
    image = page.by_id("image-2d").attrs["src"]
    heat = page.by_id("heat-2d").attrs["src"]
    assert image.startswith("data:image/png;base64,") and heat.startswith("data:image/png;base64,")
    decoded = np.asarray(Image.open(_png(image)))
    np.testing.assert_array_equal(decoded, case_2d(SPECS_2D[0], seed=0).image)
    rgba = np.asarray(Image.open(_png(heat)))
    assert rgba.shape == (96, 128, 4)
    assert rgba[30, 40, 3] == 255 and rgba[85, 115, 3] == 0  # alpha follows the heatmap
    assert page.by_id("outline-2d").attrs["src"].startswith("data:image/png")
    assert page.by_id("opacity").attrs["type"] == "range"


def _png(uri: str):
    import io

    return io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))


def test_3d_case_embeds_the_volume_heatmap_and_mask(report_3d: Path) -> None:
    page = scan(report_3d / "cases" / "S1001.html")
    (block,) = [s for s in page.find("script") if s.attrs.get("type") == "application/json"]
    data = json.loads(block.text)
    assert data["shape"] == list(SHAPE_3D) and data["spacing"] == [5.0, 2.0, 2.0]
    unpack = lambda s: np.frombuffer(gzip.decompress(base64.b64decode(s)), np.uint8).reshape(SHAPE_3D)  # noqa: E731
    np.testing.assert_array_equal(unpack(data["image"]), volume_3d(len("S1001")))
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
