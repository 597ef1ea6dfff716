from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

import pipeline.evaluate
from pipeline.evaluate import (
    PLOT_FILES,
    OperatingPoint,
    binary_metrics,
    calibration_rows,
    confusion_rows,
    pr_rows,
    roc_rows,
    write_plot_data,
)
from tests.evaluate.synth import make_predictions

TEMPLATES = Path(pipeline.evaluate.__file__).parent / "templates"


def test_binary_roc_and_pr_are_the_positive_class_and_match_sklearn():
    p = make_predictions("binary", n=50, seed=2)
    t = p.targets("binary")
    roc = roc_rows("binary", t, p.probs, p.label_names)
    assert {r["class"] for r in roc} == {"opacity"}
    fpr, tpr, thr = skm.roc_curve(t[:, 1], p.probs[:, 1])
    np.testing.assert_allclose([r["fpr"] for r in roc], fpr, atol=1e-6)
    np.testing.assert_allclose([r["tpr"] for r in roc], tpr, atol=1e-6)
    assert roc[0]["threshold"] is None and roc[1]["threshold"] == pytest.approx(thr[1], abs=1e-6)
    # Trapezoid area under the rows = AUROC
    assert np.trapezoid(tpr, fpr) == pytest.approx(skm.roc_auc_score(t[:, 1], p.probs[:, 1]))

    pr = pr_rows("binary", t, p.probs, p.label_names)
    recall = [r["recall"] for r in pr]
    assert recall == sorted(recall) and recall[0] == 0.0 and recall[-1] == 1.0
    assert pr[0]["threshold"] is None and all(r["threshold"] is not None for r in pr[1:])


def test_multiclass_curves_one_per_class_and_undefined_classes_left_out():
    p = make_predictions("multiclass", n=60, seed=4)
    t = p.targets("multiclass")
    assert {r["class"] for r in roc_rows("multiclass", t, p.probs, p.label_names)} == {"a", "b", "c"}
    t_no_c = t.copy()
    t_no_c[:, 0] |= t_no_c[:, 2]
    t_no_c[:, 2] = False
    assert {r["class"] for r in roc_rows("multiclass", t_no_c, p.probs, p.label_names)} == {"a", "b"}
    assert {r["class"] for r in pr_rows("multiclass", t_no_c, p.probs, p.label_names)} == {"a", "b"}


def test_confusion_rows():
    t = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=bool)
    pred = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=bool)
    rows = confusion_rows("multiclass", t, pred, ["a", "b", "c"])
    assert rows == [{"actual": "a", "predicted": "a"}, {"actual": "b", "predicted": "a"},
                    {"actual": "c", "predicted": "c"}, {"actual": "c", "predicted": "b"}]
    ml = confusion_rows("multilabel", t[:, :2], pred[:, :2], ["x", "y"])
    assert len(ml) == 8
    assert Counter((r["actual"], r["predicted"]) for r in ml)[("x=absent", "x=present")] == 1


def test_calibration_rows_are_the_ece_bins():
    p = make_predictions("binary", n=80, seed=6)
    t = p.targets("binary")
    rows = calibration_rows("binary", t, p.probs, p.label_names, n_bins=10)
    assert sum(r["count"] for r in rows) == 80
    assert all(r["bin_low"] <= r["mean_predicted"] <= r["bin_high"] for r in rows)
    ece = sum(r["count"] / 80 * abs(r["mean_predicted"] - r["observed_fraction"]) for r in rows)
    expected = binary_metrics(t[:, 1], p.probs[:, 1], 0.5, n_bins=10)["ece"]
    assert ece == pytest.approx(expected, abs=1e-5)
    ml = make_predictions("multilabel", n=30, seed=1)
    mrows = calibration_rows("multilabel", ml.targets("multilabel"), ml.probs, ml.label_names)
    assert Counter(r["class"] for r in mrows).keys() == set(ml.label_names)
    assert all(sum(r["count"] for r in mrows if r["class"] == c) == 30 for c in ml.label_names)


def test_write_plot_data(tmp_path):
    p = make_predictions("multiclass", n=30, seed=0)
    paths = write_plot_data(tmp_path / "plots", problem="multiclass", targets=p.targets("multiclass"),
                            probs=p.probs, label_names=p.label_names,
                            operating_point=OperatingPoint("multiclass", "argmax"))
    assert {k: v.name for k, v in paths.items()} == PLOT_FILES
    for path in paths.values():
        rows = json.loads(path.read_text())
        assert isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows)
    assert len(json.loads(paths["confusion"].read_text())) == 30


@pytest.mark.parametrize("name", ["class_curves.json", "class_curves_diagonal.json"])
def test_templates_use_the_dvc_anchors(name):
    text = (TEMPLATES / name).read_text()
    spec = json.loads(text)
    assert spec["data"] == {"values": "<DVC_METRIC_DATA>"}
    for anchor in ("<DVC_METRIC_X>", "<DVC_METRIC_Y>", "<DVC_METRIC_TITLE>"):
        assert anchor in text
    assert '"field": "class"' in text and '"field": "rev"' in text
