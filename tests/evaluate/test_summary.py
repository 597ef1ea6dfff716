from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from pipeline.evaluate import (
    RATE_METRICS,
    Predictions,
    choose_threshold,
    evaluate_splits,
    localization_metrics,
    to_jsonable,
    write_metrics,
)
from pipeline.evaluate.localization import LocalizationScores
from tests.evaluate.synth import make_predictions, patients_for


def _strict_loads(text: str):
    def reject(name):
        raise AssertionError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=reject)


def _splits(problem: str, n: int = 60):
    return (make_predictions(problem, n=n, seed=1, split="val"),
            make_predictions(problem, n=n, seed=2, split="test"))


def test_binary_document_layout(tmp_path):
    val, test = _splits("binary")
    loc = localization_metrics(LocalizationScores(np.array([0.3, 0.5]), np.array([1.0, 0.0])),
                               ["P01", "P02"], n_boot=50, seed=0, threshold=0.5)
    ev = evaluate_splits(val=val, test=test, problem="binary", rule="youden", n_boot=200, seed=3,
                         localization=loc)
    doc = ev.metrics
    t = choose_threshold(val.targets("binary")[:, 1], val.probs[:, 1], "youden")
    assert doc["threshold"] == {"rule": "youden", "value": round(t, 6), "positive_label": "opacity"}
    assert doc["bootstrap"] == {"n_boot": 200, "seed": 3, "level": 0.95, "unit": "patient",
                                "method": "percentile", "degenerate_method": "clopper-pearson"}
    for section in ("val", "test"):
        s = doc[section]
        assert s["n"] == 60 and s["n_patients"] == 20
        for m in RATE_METRICS:
            assert s[f"{m}_ci_low"] <= s[m] <= s[f"{m}_ci_high"], (section, m)
            assert s["valid_resamples"][m] == 200
            assert s[f"{m}_ci_method"] in ("bootstrap", "clopper-pearson"), (section, m)
        assert s["tp"] + s["fp"] + s["tn"] + s["fn"] == 60
        assert "per_class" not in s
    assert {"auroc", "precision", "recall", "f1", "accuracy", "iou", "iou_ci_low",
            "pointing_game"} <= doc["test"].keys()
    assert doc["test"]["iou"] == pytest.approx(0.4)
    path = tmp_path / "metrics" / "cxr.json"
    write_metrics(path, doc)
    assert _strict_loads(path.read_text()) == doc


def test_threshold_comes_from_val_never_from_test():
    val, test = _splits("binary")
    a = evaluate_splits(val=val, test=test, problem="binary", rule="f1", n_boot=20)
    flipped = replace(test, probs=test.probs[:, ::-1].copy())  # a very different test set
    b = evaluate_splits(val=val, test=flipped, problem="binary", rule="f1", n_boot=20)
    assert a.metrics["threshold"] == b.metrics["threshold"]
    assert a.metrics["val"] == b.metrics["val"]
    assert a.metrics["test"]["auroc"] != b.metrics["test"]["auroc"]


def test_multiclass_document():
    val, test = _splits("multiclass", n=45)
    doc = evaluate_splits(val=val, test=test, problem="multiclass", rule="youden", n_boot=100).metrics
    assert doc["threshold"] == {"rule": "argmax"}
    s = doc["test"]
    assert set(s["per_class"]) == {"a", "b", "c"}
    for c, block in s["per_class"].items():
        assert block["tp"] + block["fn"] == block["n_positive"]
        assert block["auroc_ci_low"] <= block["auroc"] <= block["auroc_ci_high"], c
    assert sum(v for row in s["confusion"].values() for v in row.values()) == 45
    assert sum(s["confusion"][c][c] for c in "abc") / 45 == pytest.approx(s["accuracy"], abs=1e-6)


def test_multilabel_document_with_fallback():
    val, test = _splits("multilabel", n=30)
    labels = tuple(lbl.replace("nodule", "").strip("|").replace("||", "|") for lbl in val.labels)
    val = replace(val, labels=labels)  # no validation positives for 'nodule'
    doc = evaluate_splits(val=val, test=test, problem="multilabel", rule="youden", n_boot=50).metrics
    assert doc["threshold"]["fallback"] == ["nodule"]
    assert doc["threshold"]["value"]["nodule"] == 0.5
    assert set(doc["test"]["per_class"]) == {"effusion", "nodule", "opacity"}
    assert doc["val"]["per_class"]["nodule"]["auroc"] is None  # undefined -> null


def test_degenerate_test_split_gives_nulls_not_errors():
    val, test = _splits("binary", n=30)
    only_negative = replace(test, labels=("normal",) * 30)
    doc = evaluate_splits(val=val, test=only_negative, problem="binary", rule="youden",
                          n_boot=50).metrics
    assert doc["test"]["auroc"] is None and doc["test"]["recall"] is None
    assert doc["test"]["auroc_ci_low"] is None and doc["test"]["valid_resamples"]["auroc"] == 0
    assert doc["test"]["specificity"] is not None
    _strict_loads(json.dumps(doc))


def test_label_mismatch_and_jsonable():
    val, test = _splits("binary", n=12)
    with pytest.raises(ValueError, match="same labels"):
        evaluate_splits(val=val, test=replace(test, label_names=("x", "y")), problem="binary",
                        rule="youden")
    assert to_jsonable({"a": np.float32(0.1234567891), "b": [np.nan, np.inf, np.int64(3)],
                        "c": np.bool_(True)}) == {"a": 0.123457, "b": [None, None, 3], "c": True}


def test_specificity_without_false_positives_gets_an_exact_interval_not_a_point():
    """0 false positives among 55 negatives: the bootstrap reads 1.000 to 1.000; the exact
    95% interval is 0.935 to 1 and the document says which method made it."""
    val, _ = _splits("binary")
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(55, bool), np.ones(35, bool)]
    p = np.where(y, rng.uniform(0.0, 1.0, 90), 0.01)  # no negative is ever called positive
    test = Predictions(sample_ids=tuple(f"S{i:04d}" for i in range(90)), splits=("test",) * 90,
                       patients=patients_for(90, 3), labels=tuple(np.where(y, "opacity", "normal")),
                       probs=np.column_stack([1 - p, p]), label_names=("normal", "opacity"))
    doc = evaluate_splits(val=val, test=test, problem="binary", rule=0.5, n_boot=300, seed=1).metrics
    s = doc["test"]
    assert s["fp"] == 0 and s["tn"] == 55 and s["specificity"] == 1.0
    assert s["specificity_ci_method"] == "clopper-pearson"
    assert s["specificity_ci_low"] == pytest.approx(0.935, abs=5e-4)
    assert s["specificity_ci_high"] == 1.0
    assert s["precision"] == 1.0 and s["precision_ci_method"] == "clopper-pearson"
    assert s["precision_ci_low"] < 1.0
    # proportions with events keep the bootstrap; non-proportions never switch
    assert s["recall_ci_method"] == "bootstrap" and s["auroc_ci_method"] == "bootstrap"
    assert s["recall_ci_low"] < s["recall"] < s["recall_ci_high"]


def test_exact_intervals_per_class_and_for_multiclass_accuracy():
    val, test = _splits("multiclass", n=45)
    onehot = test.targets("multiclass").astype(float)
    perfect = replace(test, probs=0.9 * onehot + 0.05)  # every case right: accuracy 45 of 45
    s = evaluate_splits(val=val, test=perfect, problem="multiclass", rule="youden",
                        n_boot=100).metrics["test"]
    assert s["accuracy"] == 1.0 and s["accuracy_ci_method"] == "clopper-pearson"
    assert s["accuracy_ci_low"] == pytest.approx(0.9213, abs=1e-3)  # exact 95%, 45 of 45
    for name, block in s["per_class"].items():
        assert block["recall_ci_method"] == "clopper-pearson", name
        assert block["recall_ci_low"] < 1.0 == block["recall_ci_high"]


def test_no_resamples_stay_without_interval():
    val, test = _splits("binary", n=30)
    s = evaluate_splits(val=val, test=test, problem="binary", rule="youden", n_boot=0).metrics["test"]
    assert s["specificity_ci_low"] is None and s["specificity_ci_method"] == "bootstrap"
