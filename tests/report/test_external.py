"""External validation pages: say so on every page, show internal and external side by side."""

from __future__ import annotations

from html.parser import HTMLParser

from pipeline.report.external import side_by_side_rows, write_cohort_index, write_cohort_page

INTERNAL = {"auroc": 0.95, "auroc_ci_low": 0.9, "auroc_ci_high": 0.99, "recall": 0.8, "ece": 0.03}
DOC = {
    "cohort": {"name": "site_b", "samples": 84, "quarantined_rows": 1, "quarantined_files": 0},
    "locked": {"threshold": {"rule": "youden", "value": 0.3, "positive_label": "opacity"}, "tta": "none"},
    "external": {"auroc": 0.81, "auroc_ci_low": 0.7, "auroc_ci_high": 0.9, "recall": 0.6, "ece": 0.1},
    "difference": {"pairing": "unpaired", "shared_patients": 0, "auroc": -0.14, "auroc_ci_low": -0.25,
                   "auroc_ci_high": -0.03},
    "calibration": {"external": {"ece": 0.1}, "internal_test": {"ece": 0.03},
                    "drift": {"ece": 0.07, "ece_ci_low": 0.01, "ece_ci_high": 0.12}},
    "cohort_threshold": {"for_comparison_only": True, "threshold": {"value": 0.2}, "recall": 0.75},
    "subgroups": {"attributes": {}},
}
CURVES = {"roc": [{"class": "opacity: external site_b", "fpr": 0.0, "tpr": 0.0},
                  {"class": "opacity: external site_b", "fpr": 1.0, "tpr": 1.0},
                  {"class": "opacity: internal test", "fpr": 0.0, "tpr": 0.5},
                  {"class": "opacity: internal test", "fpr": 1.0, "tpr": 1.0}],
          "calibration": []}


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.data: list[tuple[str, str]] = []
        self.csp = ""
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if a.get("http-equiv") == "Content-Security-Policy":
            self.csp = a["content"]
        for key in ("src", "href"):
            if a.get(key, "").startswith(("http:", "https:", "//")):
                self.external.append(a[key])

    def handle_data(self, data):
        if data.strip():
            self.data.append((self.tags[-1] if self.tags else "", data.strip()))

    def texts(self, tag: str) -> list[str]:
        return [d for t, d in self.data if t == tag]


def _parse(path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_cohort_page_says_external_validation_and_shows_both_columns(tmp_path):
    page = _parse(write_cohort_page(tmp_path / "site_b", task_name="cxr", cohort="site_b", doc=DOC,
                                    internal=INTERNAL, curves=CURVES))
    assert "External validation" in page.texts("title")[0]
    assert any("External validation" in h for h in page.texts("h1"))
    headers = set(page.texts("th"))
    assert {"Internal test", "External: site_b", "Difference (external \u2212 internal)"} <= headers
    cells = page.texts("td")
    assert "0.950" in cells and "0.810" in cells and "-0.140" in cells
    assert "0.900 to 0.990" in page.texts("span") and "0.700 to 0.900" in page.texts("span")
    assert "default-src 'none'" in page.csp and not page.external
    assert any("unpaired" in t for t in page.texts("p"))
    assert page.tags.count("svg") == 1  # the ROC chart; no reliability rows given


def test_index_page_lists_cohorts_or_says_there_are_none(tmp_path):
    listed = _parse(write_cohort_index(tmp_path / "a", task_name="cxr", cohorts={"site_b": DOC}))
    assert "External validation" in listed.texts("title")[0]
    assert "site_b" in listed.texts("a")
    empty = _parse(write_cohort_index(tmp_path / "b", task_name="ct", cohorts={}))
    assert "External validation" in empty.texts("title")[0]
    assert any("No external cohorts" in t for t in empty.texts("p"))


def test_rows_skip_measures_absent_on_both_sides_and_mark_missing_differences():
    rows = side_by_side_rows(INTERNAL, DOC["external"], DOC["difference"])
    keys = [r["key"] for r in rows]
    assert keys == ["auroc", "recall", "ece"]
    assert rows[1]["difference"] == "not computed"


def test_markup_in_names_is_escaped(tmp_path):
    path = write_cohort_page(tmp_path / "x", task_name="<script>alert(1)</script>", cohort="x",
                             doc=DOC, internal=INTERNAL, curves={})
    assert "<script>alert(1)" not in path.read_text()


def test_a_recalibration_section_is_shown_for_comparison_only_and_absent_without_one(tmp_path):
    recal = {"for_comparison_only": True, "method": "platt", "share": 0.5,
             "fitted_on": {"patients": 14, "samples": 41}, "measured_on": {"patients": 14, "samples": 43},
             "parameters": {"slope": {"opacity": 0.8}, "intercept": {"opacity": -0.4}},
             "threshold_on_recalibrated_scale": 0.21,
             "held_out": {"locked": {"ece": 0.12, "brier": 0.09, "calibration_in_the_large": 0.08},
                          "recalibrated": {"ece": 0.05, "brier": 0.07, "calibration_in_the_large": -0.01}},
             "change": {"pairing": "paired", "ece": -0.07, "ece_ci_low": -0.12, "ece_ci_high": -0.01}}
    page = _parse(write_cohort_page(tmp_path / "r", task_name="cxr", cohort="site_b",
                                    doc={**DOC, "recalibration": recal}, internal=INTERNAL, curves={}))
    assert any("For comparison only: probabilities recalibrated" in h for h in page.texts("h2"))
    text = " ".join(page.texts("p"))
    assert "Platt recalibration fitted on 14 patients (41 cases)" in text
    assert "corresponds to 0.210 on the recalibrated scale" in text
    assert "the locked results above remain the estimate" in " ".join(text.split())
    assert {"Locked", "Recalibrated"} <= set(page.texts("th"))
    assert "-0.070" in page.texts("td") and "-0.120 to -0.010" in page.texts("span")
    skipped = _parse(write_cohort_page(
        tmp_path / "s", task_name="cxr", cohort="site_b", internal=INTERNAL, curves={},
        doc={**DOC, "recalibration": {**recal, "skipped": "too few patients"}}))
    assert any("Not computed: too few patients" in t for t in skipped.texts("p"))
    assert "Recalibrated" not in skipped.texts("th")
    plain = _parse(write_cohort_page(tmp_path / "p", task_name="cxr", cohort="site_b", doc=DOC,
                                     internal=INTERNAL, curves={}))
    assert not any("recalibrated" in h for h in plain.texts("h2"))
