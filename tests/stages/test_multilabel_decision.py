"""Multi-label tasks: predict decides with the per-label thresholds that evaluate chose.

One decision rule (:class:`pipeline.evaluate.OperatingPoint`) serves evaluate, report and
predict. A tiny multi-label model is trained on PNG radiographs written here; predict on the test
split's source files must give the probabilities evaluate gave and the labels evaluate's recorded
operating point gives, not a fixed 0.5 per label.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.config import TaskParams
from pipeline.evaluate import OperatingPoint
from pipeline.evaluate.predictions import read_predictions
from pipeline.evaluate.run import run_evaluate
from pipeline.ingest import run_ingest
from pipeline.predict import run_predict
from pipeline.train.trainer import train
from tests.stages.conftest import FAST_TRAIN

LABELS = ("effusion", "nodule")
FINDINGS = ("", "effusion", "nodule", "effusion|nodule")


def _multilabel_folder(root: Path, n_patients: int = 20) -> Path:
    rng = np.random.default_rng(1)
    (root / "img").mkdir(parents=True)
    rows = [("path", "label", "patient_id")]
    for p in range(n_patients):
        for k in range(2):
            finding = FINDINGS[(p + k) % len(FINDINGS)]
            img = rng.integers(20, 90, size=(36, 36)).astype(np.uint8)
            if "effusion" in finding:
                img[26:34, 4:32] = 230  # a dense band at the base
            if "nodule" in finding:
                img[8:14, 20:26] = 250  # a round-ish bright spot
            rel = f"img/p{p}_{k}.png"
            Image.fromarray(img).save(root / rel)
            rows.append((rel, finding, f"P{p}"))
    with (root / "labels.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return root


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("multilabel")
    folder = _multilabel_folder(tmp / "raw")
    task = TaskParams.model_validate({
        "name": "ml2d", "kind": "2d", "labels": list(LABELS), "multilabel": True,
        "data": {"source": str(folder)},
        "ingest": {"image_size": [32, 32], "splits": {"val": 0.25, "test": 0.25}},
        "train": {**FAST_TRAIN, "backbone": "resnet18", "width": 8, "epochs": 3},
        "evaluate": {"bootstrap": 0, "threshold": "youden"},
        "explain": {"methods": ["gradcam"], "layer": "last"}})
    data = tmp / "interim"
    run_ingest(task, source=folder, out_dir=data, seed=0, salt="s", workers=1)
    train(task, data_dir=data, model_dir=tmp / "model", live_dir=None, backup_root=tmp / "backup", seed=0)
    metrics = tmp / "metrics.json"
    run_evaluate(task, data_dir=data, model_dir=tmp / "model", explain_dir=None, out_dir=tmp / "eval",
                 metrics_path=metrics, seed=0)
    with (data / "manifest.csv").open() as fh:
        manifest = list(csv.DictReader(fh))
    return {"tmp": tmp, "task": task, "raw": folder, "data": data, "metrics": metrics,
            "manifest": manifest, "predictions": read_predictions(tmp / "eval" / "predictions.csv")}


def _test_sources(run: dict) -> tuple[list[str], list[Path]]:
    rows = [r for r in run["manifest"] if r.get("split") == "test" and r.get("status", "ok") == "ok"]
    assert rows, "the fixture needs test cases"
    return [r["sample_id"] for r in rows], [run["raw"] / r["source_path"] for r in rows]


def test_operating_point_round_trips_through_the_metrics_file():
    point = OperatingPoint("multilabel", "youden", (0.31, 0.74))
    back = OperatingPoint.from_json("multilabel", LABELS, point.to_json(LABELS))
    assert back.thresholds == (0.31, 0.74) and back.rule == "youden" and back.fallback == ()
    assert back.decide(np.array([0.4, 0.7]), LABELS) == ("effusion", 0.7)
    # a label the file does not cover falls back to 0.5 and says so
    partial = OperatingPoint.from_json("multilabel", LABELS, {"rule": "f1", "value": {"nodule": 0.2}})
    assert partial.thresholds == (0.5, 0.2) and partial.fallback == (0,)
    assert OperatingPoint.from_json("binary", ("neg", "pos"), None).thresholds == (0.5,)
    with pytest.raises(ValueError, match="threshold must be in"):
        OperatingPoint.from_json("binary", ("neg", "pos"), {"value": 1.7})


def test_predict_uses_the_per_label_thresholds_evaluate_chose(multilabel_run, tmp_path):
    run = multilabel_run
    recorded = json.loads(Path(run["metrics"]).read_text())["threshold"]
    assert set(recorded["value"]) == set(LABELS)
    preds = run["predictions"]
    sample_ids, sources = _test_sources(run)
    index = {sid: i for i, sid in enumerate(preds.sample_ids)}
    probs = preds.probs[[index[s] for s in sample_ids]]

    # Thresholds that a fixed 0.5 cannot imitate on these cases: each label's first quartile.
    chosen = {n: float(np.quantile(probs[:, k], 0.25)) for k, n in enumerate(LABELS)}
    metrics = tmp_path / "metrics.json"
    doc = json.loads(Path(run["metrics"]).read_text())
    doc["threshold"] = {"rule": "youden", "value": chosen}
    metrics.write_text(json.dumps(doc))
    point = OperatingPoint.from_json("multilabel", LABELS, doc["threshold"])
    expected = point.predicted_labels(probs, LABELS)
    at_half = OperatingPoint("multilabel", "0.5", (0.5, 0.5)).predicted_labels(probs, LABELS)
    assert expected != at_half  # the check below can tell the two rules apart

    results = run_predict(Path(run["tmp"]) / "model", sources, tmp_path / "out", metrics_path=metrics)
    got = np.array([[r.probabilities[n] for n in LABELS] for r in results])
    np.testing.assert_allclose(got, probs, atol=2e-4)  # the same model and preprocessing as evaluate
    assert [r.predicted_label for r in results] == expected
    report = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert f"effusion {chosen['effusion']:.3f}" in report  # the page says which thresholds decided


def test_predict_with_evaluates_own_thresholds_matches_evaluate(multilabel_run, tmp_path):
    run = multilabel_run
    doc = json.loads(Path(run["metrics"]).read_text())
    point = OperatingPoint.from_json("multilabel", LABELS, doc["threshold"])
    sample_ids, sources = _test_sources(run)
    preds = run["predictions"]
    index = {sid: i for i, sid in enumerate(preds.sample_ids)}
    probs = preds.probs[[index[s] for s in sample_ids]]
    results = run_predict(Path(run["tmp"]) / "model", sources, tmp_path / "out",
                          metrics_path=Path(run["metrics"]))
    assert [r.predicted_label for r in results] == point.predicted_labels(probs, LABELS)


def test_predict_refuses_a_binary_threshold_for_a_multilabel_model(multilabel_run, tmp_path):
    _, sources = _test_sources(multilabel_run)
    with pytest.raises(ValueError, match="binary models only"):
        run_predict(Path(multilabel_run["tmp"]) / "model", sources[:1], tmp_path / "out", threshold=0.3)


def test_report_stage_shows_label_sets_and_cases_without_labels(multilabel_run, tmp_path):
    from pipeline.explain.run import run_explain
    from pipeline.report import NONE_PRESENT
    from pipeline.report.run import run_report

    run = multilabel_run
    tmp, task = Path(run["tmp"]), run["task"]
    run_explain(task, data_dir=run["data"], model_dir=tmp / "model", out_dir=tmp_path / "explain", seed=0)
    index = run_report(task, data_dir=run["data"], source_dir=run["raw"], model_dir=tmp / "model",
                       explain_dir=tmp_path / "explain", eval_dir=tmp / "eval",
                       metrics_path=Path(run["metrics"]), out_dir=tmp_path / "report")
    page = Path(index).read_text(encoding="utf-8") if Path(index).is_file() else \
        (Path(index) / "index.html").read_text(encoding="utf-8")
    truths = {r["label"] for r in run["manifest"] if r.get("split") == "test"}
    assert "" in truths and "effusion|nodule" in truths  # the fixture has both kinds of case
    assert NONE_PRESENT in page and "effusion|nodule" in page


def test_explain_writes_every_labels_map_and_pages_offer_them(multilabel_run, tmp_path):
    """``explain.per_label`` (default on): one map per label; the most probable label's equals
    the reported map; report and predict pages get the "Heatmap for" selector."""
    from pipeline.explain.run import run_explain
    from pipeline.explain.scores import predict as model_outputs
    from pipeline.train.card import load_trained

    run = multilabel_run
    tmp, task = Path(run["tmp"]), run["task"]
    # the fixture's "last" layer is 1 x 1 at 32 px (flat maps); a 4 x 4 map tells the labels apart
    task = task.model_copy(update={"explain": task.explain.model_copy(update={"layer": "auto:4"})})
    explained = run_explain(task, data_dir=run["data"], model_dir=tmp / "model", out_dir=tmp_path / "explain",
                            seed=0)
    assert explained.label_maps is not None and explained.label_maps.shape == (len(explained.rows), 2, 32, 32)
    model, _ = load_trained(tmp / "model", task)
    images = np.load(run["data"] / "images.npy", mmap_mode="r")
    x = np.stack([images[int(r["index"])] for r in explained.rows]).astype(np.float32) / 255.0
    top = model_outputs(model, x).argmax(axis=1)
    chosen = np.asarray(explained.label_maps)[np.arange(len(top)), top]
    np.testing.assert_allclose(chosen, np.asarray(explained.maps["gradcam"]), atol=1e-4)
    assert np.asarray(explained.maps["gradcam"]).max(axis=(1, 2)).mean() > 0.5  # not flat maps
    assert not np.allclose(np.asarray(explained.label_maps)[:, 0], np.asarray(explained.label_maps)[:, 1])

    from pipeline.report.run import run_report

    run_report(task, data_dir=run["data"], source_dir=run["raw"], model_dir=tmp / "model",
               explain_dir=tmp_path / "explain", eval_dir=tmp / "eval", metrics_path=Path(run["metrics"]),
               out_dir=tmp_path / "report")
    case_page = next((tmp_path / "report" / "cases").glob("*.html")).read_text(encoding="utf-8")
    assert '<select id="heat-label">' in case_page

    off = task.model_copy(update={"explain": task.explain.model_copy(update={"per_label": False})})
    assert run_explain(off, data_dir=run["data"], model_dir=tmp / "model", out_dir=tmp_path / "explain",
                       seed=0).label_maps is None  # and the earlier run's file is gone
    assert not (tmp_path / "explain" / "maps_gradcam_labels.npy").exists()

    _, sources = _test_sources(run)
    run_predict(tmp / "model", sources[:1], tmp_path / "pred", metrics_path=Path(run["metrics"]))
    page = next((tmp_path / "pred" / "cases").glob("*.html")).read_text(encoding="utf-8")
    assert '<select id="heat-label">' in page and ">effusion" in page and ">nodule" in page
