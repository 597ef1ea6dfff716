"""validate stage on the tiny trained 2D model: an external cohort that is the internal test split
reproduces the test metrics exactly; a task without cohorts writes placeholders quickly."""

from __future__ import annotations

import csv
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipeline.validate.layout import EMPTY, PLOT_KINDS, ValidateLayout
from pipeline.validate.run import run_validate
from tests.stages.conftest import task_2d


def _layout(root: Path) -> ValidateLayout:
    return ValidateLayout(work=root / "data/external", eval=root / "eval/external",
                          metrics=root / "metrics/external", report=root / "reports/ext")


def _test_split_folder(trained: dict[str, Path], dest: Path) -> Path:
    """A dataset folder holding exactly the internal test split's labels.csv rows and files."""
    with open(trained["data"] / "manifest.csv", newline="") as fh:
        test_paths = {r["source_path"] for r in csv.DictReader(fh) if r["split"] == "test"}
    lines = (trained["raw"] / "labels.csv").read_text().splitlines()
    header, rows = lines[0], [r for r in lines[1:] if r.split(",")[0] in test_paths]
    for row in rows:
        for rel in filter(None, row.split(",")[::2]):  # path and mask columns
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(trained["raw"] / rel, dest / rel)
    (dest / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    return dest


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.title, self.headers, self.text, self._tag = "", [], [], ""

    def handle_starttag(self, tag, attrs):
        self._tag = tag

    def handle_data(self, data):
        if self._tag == "title":
            self.title += data
        if self._tag == "th":
            self.headers.append(data.strip())
        self.text.append(data)


@pytest.fixture(scope="module")
def identical(trained_2d, tmp_path_factory):
    from pipeline.evaluate.run import run_evaluate

    tmp = tmp_path_factory.mktemp("validate")
    task = task_2d()
    internal = run_evaluate(task, data_dir=trained_2d["data"], model_dir=trained_2d["model"],
                            explain_dir=None, out_dir=tmp / "eval", metrics_path=tmp / "metrics.json",
                            seed=5).metrics
    folder = _test_split_folder(trained_2d, tmp / "same_as_test")
    # the recalibration rides along: a section apart, while ``external`` stays the locked result
    cohort_task = task_2d(external={"same": {"source": str(folder)}},
                          evaluate={"recalibration": "temperature"})
    layout = _layout(tmp / "out")
    docs = run_validate(cohort_task, model_dir=trained_2d["model"], metrics_path=tmp / "metrics.json",
                        eval_dir=tmp / "eval", layout=layout, seed=5, salt="s", workers=1)
    return internal, docs["same"], layout


def test_a_cohort_identical_to_the_test_split_reproduces_the_test_metrics_exactly(identical):
    internal, doc, layout = identical
    assert doc["external"] == internal["test"]  # every metric, CI, count and resample count
    assert doc["locked"]["threshold"] == internal["threshold"]
    assert json.loads(layout.metrics_file("same").read_text()) == doc


def test_identical_cohort_is_paired_with_zero_difference(identical):
    _, doc, _ = identical
    diff = doc["difference"]
    assert diff["pairing"] == "paired" and diff["shared_patients"] == doc["external"]["n_patients"]
    assert diff["auroc"] == diff["auroc_ci_low"] == diff["auroc_ci_high"] == 0.0
    assert doc["calibration"]["drift"]["ece"] == 0.0
    assert doc["cohort_threshold"]["for_comparison_only"] is True


def test_outputs_plots_and_report_page(identical):
    _, doc, layout = identical
    for kind in PLOT_KINDS:
        rows = json.loads(layout.plot(kind, "same").read_text())
        assert rows
    roc_classes = {r["class"] for r in json.loads(layout.plot("roc", "same").read_text())}
    assert roc_classes == {"opacity: external same", "opacity: internal test"}
    page = _Text()
    page.feed((layout.page("same") / "index.html").read_text())
    assert "External validation" in page.title
    assert {"Internal test", "External: same"} <= set(page.headers)
    assert "For comparison only" in "".join(page.text)
    index = _Text()
    index.feed((layout.report / "index.html").read_text())
    assert "External validation" in index.title


def test_the_recalibration_reaches_the_document_and_the_page_beside_the_locked_result(identical):
    _, doc, layout = identical
    section = doc["recalibration"]
    assert section["for_comparison_only"] is True and section["method"] == "temperature"
    patients = doc["external"]["n_patients"]
    assert section["fitted_on"]["patients"] + section["measured_on"]["patients"] == patients
    if "skipped" not in section:  # the tiny test split may hold too few patients to split
        assert section["change"]["auroc"] == 0.0 and section["change"]["accuracy"] == 0.0
        assert section["parameters"]["temperature"] > 0
    page = _Text()
    page.feed((layout.page("same") / "index.html").read_text())
    assert "probabilities recalibrated on a slice of this cohort" in "".join(page.text)


def test_a_task_without_cohorts_writes_placeholders(tmp_path):
    layout = _layout(tmp_path)
    (layout.metrics / "stale.json").parent.mkdir(parents=True)
    (layout.metrics / "stale.json").write_text("{}")  # an earlier run's removed cohort
    layout.plots_dir("roc").mkdir(parents=True)
    (layout.plot("roc", "stale")).write_text("[]")
    layout.predictions_dir.mkdir(parents=True)
    layout.predictions("stale").write_text("sample_id\n")
    (layout.eval / ".gitignore").write_text("/predictions\n")  # DVC's, tracked by git
    assert run_validate(task_2d(), model_dir=tmp_path / "no_model", metrics_path=tmp_path / "none.json",
                        eval_dir=tmp_path / "none", layout=layout, seed=0, salt="s") == {}
    assert [p.name for p in layout.metrics.iterdir()] == [EMPTY]
    assert [p.name for p in layout.plots_dir("roc").iterdir()] == [EMPTY]
    assert not list(layout.predictions_dir.iterdir())
    assert (layout.eval / ".gitignore").read_text() == "/predictions\n"  # not the stage's to remove
    assert json.loads((layout.metrics / EMPTY).read_text()) == {}
    assert all(json.loads((layout.plots_dir(k) / EMPTY).read_text()) == [] for k in PLOT_KINDS)
    page = _Text()
    page.feed((layout.report / "index.html").read_text())
    assert "External validation" in page.title and "No external cohorts" in "".join(page.text)


def test_without_evaluates_metrics_it_fails_at_once_and_keeps_the_previous_outputs(trained_2d, tmp_path):
    """The locked threshold comes from evaluate's metrics for this model: without them, a clear
    error naming the file, raised before the model is loaded (a model folder with only its card
    is enough to get there) and before any earlier output is removed."""
    model_dir = tmp_path / "card_only"
    model_dir.mkdir()
    shutil.copy2(trained_2d["model"] / "model_card.json", model_dir / "model_card.json")
    layout = _layout(tmp_path / "out")
    (layout.metrics / "site.json").parent.mkdir(parents=True)
    (layout.metrics / "site.json").write_text('{"earlier": true}')
    task = task_2d(external={"site": {"source": str(tmp_path / "site")}})
    expected = r"needs .*missing\.json written by evaluate .* run the evaluate stage first"
    with pytest.raises(ValueError, match=expected):
        run_validate(task, model_dir=model_dir, metrics_path=tmp_path / "missing.json", eval_dir=tmp_path,
                     layout=layout, seed=0, salt="s")
    assert json.loads((layout.metrics / "site.json").read_text()) == {"earlier": True}
