from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from pipeline.evaluate import (
    RATE_METRICS,
    choose_threshold,
    evaluate_splits,
    localization_metrics,
    to_jsonable,
    write_metrics,
)
from pipeline.evaluate.localization import LocalizationScores
from tests.evaluate.synth import make_predictions


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
                                "method": "percentile"}
    for section in ("val", "test"):
        s = doc[section]
        assert s["n"] == 60 and s["n_patients"] == 20
        for m in RATE_METRICS:
            assert s[f"{m}_ci_low"] <= s[m] <= s[f"{m}_ci_high"], (section, m)
            assert s["valid_resamples"][m] == 200
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
