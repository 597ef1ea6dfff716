"""explain -> evaluate -> report -> predict on a k-fold ensemble (``train.folds: 2``): maps are the
mean of the members' maps, the metrics file and the report carry the cross-validation results,
predict uses the member-level layer the explain stage recorded."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from pipeline.dataset.cases import load_inputs
from pipeline.dataset.store import open_array
from pipeline.dataset.tables import read_table
from pipeline.evaluate.inference import predict_probs
from pipeline.evaluate.run import run_evaluate
from pipeline.explain import Explainer, average_maps
from pipeline.explain.averaged import view_averaged_maps
from pipeline.explain.run import run_explain
from pipeline.models import ensemble_members
from pipeline.predict import run_predict
from pipeline.report.run import run_report
from pipeline.train.card import load_model, read_card
from tests.stages.conftest import task_2d

TASK = task_2d(train={"folds": 2, "epochs": 1}, explain={"layer": "auto:8"})


@pytest.fixture(scope="module")
def staged(trained_2d_folds, tmp_path_factory):
    root, trained = tmp_path_factory.mktemp("folds_stages"), trained_2d_folds
    explained = run_explain(TASK, data_dir=trained["data"], model_dir=trained["model"],
                            out_dir=root / "explain", seed=0)
    evaluated = run_evaluate(TASK, data_dir=trained["data"], model_dir=trained["model"],
                             explain_dir=root / "explain", out_dir=root / "eval",
                             metrics_path=root / "metrics.json", seed=0)
    index = run_report(TASK, data_dir=trained["data"], source_dir=trained["raw"], model_dir=trained["model"],
                       explain_dir=root / "explain", eval_dir=root / "eval",
                       metrics_path=root / "metrics.json", out_dir=root / "report")
    return root, explained, evaluated, index


def test_explain_maps_are_the_mean_of_the_members_maps(trained_2d_folds, staged):
    _, explained, _, _ = staged
    model = load_model(trained_2d_folds["model"])
    layer = explained.faithfulness["layer"]
    assert layer == "conv2_block2_out"  # auto:8 on 32 px (8x8), resolved inside each member
    x = load_inputs(open_array(trained_2d_folds["data"] / "images.npy"),
                    np.array([int(r["index"]) for r in explained.rows[:4]]))
    tta = explained.faithfulness["tta"]  # each view's map is the members' mean, then views are averaged
    classes = np.zeros(len(x), np.int64)
    for method in explained.methods:
        explainers = [Explainer(m, layer=layer) for m in ensemble_members(model)]
        members = [e.maps(x, method=method, batch_size=8) for e in explainers]
        def ensemble_maps(b, method=method, explainers=explainers):
            return average_maps([e.maps(b, method=method, class_index=classes, batch_size=8)
                                 for e in explainers])

        expected = view_averaged_maps(ensemble_maps, x, tta)
        stored = np.asarray(explained.maps[method][:4])
        np.testing.assert_allclose(stored, expected, atol=1e-5)
        assert not np.allclose(members[0], members[1], atol=1e-3)
    assert {"gradcam", "gradcam++"} <= set(explained.faithfulness)


def test_evaluate_scores_the_ensemble_and_records_cross_validation(trained_2d_folds, staged):
    root, _, evaluated, _ = staged
    card = read_card(trained_2d_folds["model"])
    doc = json.loads((root / "metrics.json").read_text())
    cv = doc["cross_validation"]
    assert cv["folds"] == 2 and cv["oof_auroc"] == card["cross_validation"]["oof_auroc"]
    assert cv["ensemble_val_auroc"] == card["cross_validation"]["ensemble_val_auroc"]
    assert len(cv["member_val"]) == 2 and "members" not in cv
    rows = read_table(evaluated.predictions)
    data = trained_2d_folds["data"]
    manifest = {r["sample_id"]: int(r["index"]) for r in read_table(data / "manifest.csv")}
    probs = predict_probs(load_model(trained_2d_folds["model"]), open_array(data / "images.npy"),
                          np.array([manifest[r["sample_id"]] for r in rows]), batch_size=8)
    np.testing.assert_allclose([float(r["p_opacity"]) for r in rows], probs[:, 0], atol=1e-6)
    assert {r["split"] for r in rows} == {"val", "test"}


def test_report_says_the_model_is_a_cross_validated_ensemble(staged):
    _, _, _, index = staged
    page = index.read_text()
    assert "mean of 2 models trained by cross-validation" in page and "Out-of-fold AUROC" in page
    assert "cross_validation.oof_auroc" in page  # the model card section lists it


def test_predict_on_the_ensemble_uses_the_recorded_member_layer(trained_2d_folds, staged, tmp_path, caplog):
    root, explained, _, _ = staged
    raw = trained_2d_folds["raw"]
    inputs = [raw / read_table(raw / "labels.csv")[0]["path"]]
    with caplog.at_level(logging.INFO, logger="pipeline.predict"):
        results = run_predict(trained_2d_folds["model"], inputs, tmp_path / "out",
                              metrics_path=root / "metrics.json")
    assert f"heatmaps from layer {explained.faithfulness['layer']}" in caplog.text
    assert len(results) == 1 and 0.0 <= results[0].probability <= 1.0
    assert (tmp_path / "out" / "cases" / f"{results[0].sample_id}.html").is_file()
