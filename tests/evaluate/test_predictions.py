from __future__ import annotations

import csv

import numpy as np
import pytest

from pipeline.evaluate import (
    as_probability_matrix,
    label_indicators,
    read_predictions,
    write_predictions,
)

IDS = dict(sample_ids=["S0a", "S0b", "S0c"], patients=["P01", "P01", "P02"],
           splits=["val", "test", "test"])


def _header(path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as fh:
        return next(csv.reader(fh))


def test_binary_round_trip_writes_both_columns(tmp_path):
    path = tmp_path / "preds.csv"
    write_predictions(path, **IDS, labels=["normal", "opacity", "normal"],
                      probs=np.array([0.1, 0.85, 0.3333333333]), label_names=["normal", "opacity"])
    assert _header(path) == ["sample_id", "split", "patient", "label", "p_normal", "p_opacity"]
    p = read_predictions(path)
    assert p.label_names == ("normal", "opacity")
    np.testing.assert_allclose(p.probs, [[0.9, 0.1], [0.15, 0.85], [0.666667, 0.333333]])
    np.testing.assert_array_equal(p.targets("binary"), [[1, 0], [0, 1], [1, 0]])
    test = p.select("test")
    assert test.sample_ids == ("S0b", "S0c") and test.patients == ("P01", "P02") and len(test) == 2
    np.testing.assert_allclose(test.probs[:, 1], [0.85, 0.333333])
    assert path.read_text().count("\n") == 4
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left no temp file


def test_multiclass_and_multilabel_round_trip(tmp_path):
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    write_predictions(tmp_path / "mc.csv", **IDS, labels=["a", "c", "b"], probs=probs,
                      label_names=["a", "b", "c"])
    mc = read_predictions(tmp_path / "mc.csv")
    np.testing.assert_allclose(mc.probs, probs)
    np.testing.assert_array_equal(mc.targets("multiclass").argmax(1), [0, 2, 1])

    write_predictions(tmp_path / "ml.csv", **IDS, labels=["a|c", "", "b"], probs=probs,
                      label_names=["a", "b", "c"])
    ml = read_predictions(tmp_path / "ml.csv")
    assert ml.labels == ("a|c", "", "b")
    np.testing.assert_array_equal(ml.targets("multilabel"), [[1, 0, 1], [0, 0, 0], [0, 1, 0]])


def test_label_indicators_reject_unknown_labels():
    with pytest.raises(ValueError, match=r"label must be one of \['a', 'b'\].*Received: 'z'"):
        label_indicators(["a", "z"], ["a", "b"], "multiclass")
    with pytest.raises(ValueError, match=r"joined by \|"):
        label_indicators(["a|z"], ["a", "b"], "multilabel")
    with pytest.raises(ValueError, match="problem must be one of"):
        label_indicators(["a"], ["a", "b"], "ranking")


@pytest.mark.parametrize("field,value", [
    ("sample_ids", ["S0a", "images/SMITH_JOHN.dcm", "S0c"]),
    ("patients", ["P01", "12345678", "P02"]),
    ("patients", ["P01", "DOE^JANE", "P02"]),
])
def test_refuses_identifiers_without_echoing_them(tmp_path, field, value):
    kwargs = {**IDS, field: value}
    with pytest.raises(ValueError, match="not pseudonyms") as info:
        write_predictions(tmp_path / "p.csv", **kwargs, labels=["a", "b", "a"],
                          probs=[0.1, 0.2, 0.3], label_names=["a", "b"])
    assert value[1] not in str(info.value)
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("probs,n_labels,match", [
    ([[0.2, 1.2]], 2, r"in \[0, 1\]"), ([[np.nan, 0.5]], 2, "finite"), ([0.2, 0.3], 3, "binary"),
    (np.zeros((2, 2)), 3, r"shape \(N, 3\)"), (np.zeros((2, 2, 1)), 2, "shape"),
])
def test_bad_probabilities(probs, n_labels, match):
    with pytest.raises(ValueError, match=match):
        as_probability_matrix(probs, n_labels)


def test_bad_columns(tmp_path):
    with pytest.raises(ValueError, match="same length"):
        write_predictions(tmp_path / "p.csv", **IDS, labels=["a", "b"], probs=[0.1, 0.2, 0.3],
                          label_names=["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        write_predictions(tmp_path / "p.csv", **IDS, labels=["a", "a", "a"], probs=[0.1, 0.2, 0.3],
                          label_names=["a", "a"])
    (tmp_path / "bad.csv").write_text("sample_id,label,p_a\nS01,a,0.5\n")
    with pytest.raises(ValueError, match="needs columns"):
        read_predictions(tmp_path / "bad.csv")
