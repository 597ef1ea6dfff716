"""Index figures and subgroup table from the evaluate outputs (plot rows, ``subgroups`` section)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from pipeline.report.performance import (
    MAX_CURVES,
    OperatingMark,
    attribute_name,
    performance_figures,
    subgroup_table,
)
from tests.report.conftest import LABELS, SUBGROUP_XSS, performance_inputs


def test_binary_figures_mark_the_operating_point_and_state_the_areas() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(3)  # the same draw as performance_inputs(seed=3)
    y = rng.random(80) < 0.4
    p = np.clip(0.35 * y + 0.65 * rng.random(80), 0, 1)
    inputs = performance_inputs(seed=3)
    figures, notes = performance_figures(inputs["curves"], marks=inputs["operating_points"],
                                         prevalence={"opacity": 0.4})
    assert [f.key for f in figures] == ["roc", "pr", "calibration"] and notes == []
    roc, pr, cal = (ET.fromstring(f.svg) for f in figures)
    assert f"(AUROC) {roc_auc_score(y, p):.3f}" in roc.find("desc").text
    assert f"average precision {average_precision_score(y, p):.3f}" in pr.find("desc").text
    assert "threshold 0.500, sensitivity 0.800, specificity 0.850" in roc.find("desc").text
    assert "positive predictive value 0.770" in pr.find("desc").text
    for root in (roc, pr):
        (marker,) = [g for g in root.iter("g") if g.get("class") == "marker"]
        assert "".join(marker.find("text").itertext()) == "t = 0.50"
    assert "Prevalence 0.40" in " ".join(roc.itertext()) + " ".join(pr.itertext())
    assert [g.find("title").text for g in cal.iter("line") if g.get("class") == "guide"] == [
        "Perfect calibration"]
    assert len([c for c in cal.iter("circle")]) == len(inputs["curves"]["calibration"])


def test_marker_sits_on_the_roc_at_one_minus_specificity() -> None:
    rows = [{"class": "opacity", "fpr": x, "tpr": y} for x, y in ((0, 0), (0.15, 0.8), (1, 1))]
    (fig,), _ = performance_figures({"roc": rows}, marks={"opacity": OperatingMark(0.4, 0.8, 0.85)})
    root = ET.fromstring(fig.svg)
    vertex = re.findall(r"L([\d.]+) ([\d.]+)", root.find("g/path").get("d"))[0]
    ring = [g for g in root.iter("g") if g.get("class") == "marker"][0].find("circle")
    assert (ring.get("cx"), ring.get("cy")) == vertex


def test_multiclass_curves_are_one_per_class_and_capped() -> None:
    names = [f"class {i}" for i in range(MAX_CURVES + 2)]
    rows = [{"class": n, "fpr": x, "tpr": x} for n in names for x in (0.0, 1.0)]
    (fig,), notes = performance_figures({"roc": rows})
    root = ET.fromstring(fig.svg)
    assert len([g for g in root.iter("g") if g.get("class") == "series"]) == MAX_CURVES
    assert notes == [f"The ROC figure shows the first {MAX_CURVES} of {MAX_CURVES + 2} classes."]
    assert not [g for g in root.iter("g") if g.get("class") == "marker"]  # no thresholds given


def test_missing_curves_give_no_figures() -> None:
    assert performance_figures({}) == ([], [])
    assert performance_figures({"roc": [], "pr": None}) == ([], [])  # type: ignore[dict-item]


def test_subgroup_table_rows_notes_and_names() -> None:
    table = subgroup_table(performance_inputs()["subgroups"])
    assert table is not None and table.classes == ["opacity"]
    assert [(r.attribute, r.value, r.n) for r in table.rows] == [
        ("Modality", SUBGROUP_XSS, "41"), ("Modality", "CR", "30")]  # largest first
    row = table.rows[0]
    assert (row.auroc, row.auroc_ci) == ("0.88", "0.74 to 0.97")
    assert (row.sensitivity, row.sensitivity_ci) == ("0.83", "0.52 to 0.98")
    assert row.n_patients == "15" and row.n_positive == "12"
    text = " ".join(table.notes)
    assert "at least 10 test cases" in text and "Clopper-Pearson" in text and "bootstrap" in text
    assert "Modality: 1 value(s), 4 case(s)" in text and "5 case(s) without a value" in text
    assert "site (labels.csv) (57 distinct values" in text
    assert attribute_name("view_position") == "View position"
    assert attribute_name("attr_scanner_site") == "scanner site (labels.csv)"


def test_undefined_subgroup_metrics_read_not_available() -> None:
    section = {"classes": LABELS[1:], "attributes": {"modality": {"values": {"CT": {
        "n": 12, "n_patients": 4, "classes": {"opacity": {
            "n_positive": 0, "auroc": None, "auroc_ci_low": None, "auroc_ci_high": None,
            "sensitivity": None, "specificity": 0.9, "specificity_ci_low": 0.6,
            "specificity_ci_high": 1.0}}}}}}}
    (row,) = subgroup_table(section).rows
    assert (row.auroc, row.auroc_ci, row.sensitivity, row.sensitivity_ci) == ("n/a", "", "n/a", "")
    assert row.specificity_ci == "0.60 to 1.00"


@pytest.mark.parametrize("section", [None, {}, {"attributes": "x"}])
def test_no_subgroup_section_gives_no_table(section) -> None:
    assert subgroup_table(section) is None
