from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.evaluate import (
    OperatingPoint,
    ThresholdRule,
    UndefinedThresholdError,
    choose_operating_point,
    choose_threshold,
    parse_threshold_rule,
    validate_threshold_rule,
)

# Descending candidates: above-max, 0.8, 0.4, 0.35, 0.1 give TP 0,1,1,2,2 and FP 0,0,1,1,2.
Y = np.array([0, 0, 1, 1])
S = np.array([0.1, 0.4, 0.35, 0.8])


@pytest.mark.parametrize("rule,expected", [
    ("youden", 0.8),             # J = 0, .5, 0, .5, 0: tie between 0.8 and 0.35 -> the higher
    ("f1", 0.35),                # F1 = 0, 2/3, 1/2, 4/5, 2/3
    ("sensitivity@1.0", 0.35),   # highest threshold still catching both positives
    ("sensitivity@0.5", 0.8),
    ("specificity@1.0", 0.8),    # lowest threshold with no false positive
    ("specificity@0.5", 0.35),   # lowest threshold with at most one false positive
    (0.3, 0.3),
    ("0.3", 0.3),
])
def test_rules_by_hand(rule, expected):
    assert choose_threshold(Y, S, rule) == pytest.approx(expected)


def test_sensitivity_target_accepts_exact_fraction_despite_rounding():
    y = np.r_[np.ones(20), np.zeros(5)]
    s = np.r_[np.linspace(0.99, 0.6, 20), np.linspace(0.5, 0.1, 5)]
    t = choose_threshold(y, s, "sensitivity@0.95")
    assert t == pytest.approx(s[18])  # 19 of 20 positives: exactly 0.95
    assert (s[y == 1] >= t).mean() == pytest.approx(0.95)


def test_specificity_above_all_scores_when_negatives_tie_at_the_top(caplog):
    y = np.array([1, 0, 0])
    s = np.array([0.9, 0.9, 0.2])
    t = choose_threshold(y, s, "specificity@1.0")
    assert 0.9 < t <= 1.0
    assert not (s[y == 0] >= t).any()
    # A negative scored exactly 1.0 cannot be excluded by any threshold in [0, 1].
    with caplog.at_level(logging.WARNING):
        assert choose_threshold(np.array([1, 0]), np.array([1.0, 1.0]), "specificity@0.9") == 1.0
    assert "no threshold <= 1 reaches specificity" in caplog.text


@pytest.mark.parametrize("bad", ["foo", "sensitivity@1.5", "sensitivity@0", "specificity@",
                                 "youden@0.5", 0, 1, 1.5, -0.2, True, None, [0.5], "nan"])
def test_bad_rules_name_the_allowed_values(bad):
    with pytest.raises(ValueError, match=r"youden.*f1.*sensitivity@<x>.*specificity@<x>.*Received"):
        parse_threshold_rule(bad)
    with pytest.raises(ValueError, match="Received"):
        choose_threshold(Y, S, bad)


@pytest.mark.parametrize("value,normalised", [
    ("Youden", "youden"), (" f1 ", "f1"), ("sensitivity@0.95", "sensitivity@0.95"),
    ("SPECIFICITY@.9", "specificity@0.9"), (0.25, 0.25), ("0.25", 0.25), (1e-3, 0.001),
])
def test_validator_normalises(value, normalised):
    assert validate_threshold_rule(value) == normalised
    assert parse_threshold_rule(validate_threshold_rule(value)) == parse_threshold_rule(value)


def test_rule_round_trips_through_its_string():
    for text in ("youden", "f1", "sensitivity@0.95", "specificity@0.8"):
        assert str(parse_threshold_rule(text)) == text
    assert parse_threshold_rule(ThresholdRule("fixed", 0.4)).target == 0.4


@pytest.mark.parametrize("rule,y", [("youden", [0, 0]), ("youden", [1, 1]), ("f1", [0, 0]),
                                    ("sensitivity@0.9", [0, 0]), ("specificity@0.9", [1, 1])])
def test_undefined_rules_raise_a_typed_error(rule, y):
    with pytest.raises(UndefinedThresholdError, match="positive.*negative"):
        choose_threshold(np.array(y), np.array([0.2, 0.7]), rule)


def test_fixed_rule_needs_no_classes():
    assert choose_threshold(np.array([0, 0]), np.array([0.2, 0.7]), 0.6) == 0.6
    assert choose_threshold(np.array([]), np.array([]), 0.6) == 0.6


def test_empty_validation_set_is_undefined_not_a_crash():
    with pytest.raises(UndefinedThresholdError, match="0 positive and 0 negative"):
        choose_threshold(np.array([]), np.array([]), "youden")
    op = choose_operating_point("binary", np.zeros((0, 2), bool), np.zeros((0, 2)), "youden")
    assert op.thresholds == (0.5,) and op.fallback == (1,)


@pytest.mark.parametrize("y,s,match", [
    ([0, 2], [0.1, 0.2], "0/1"), ([0, 1], [0.1, 1.2], r"\[0, 1\]"), ([0, 1], [0.1, np.nan], "finite"),
    ([0, 1], [0.1], "equal length"),
])
def test_bad_inputs(y, s, match):
    with pytest.raises(ValueError, match=match):
        choose_threshold(np.array(y), np.array(s, dtype=float), "youden")


scores = st.lists(st.integers(0, 100), min_size=2, max_size=40).map(lambda v: np.array(v) / 100)
rules = st.sampled_from(["youden", "f1"]) | st.builds(
    lambda kind, x: f"{kind}@{x}", st.sampled_from(["sensitivity", "specificity"]),
    st.sampled_from([0.5, 0.8, 0.9, 0.95, 1.0]))


@settings(max_examples=150, deadline=None)
@given(scores=scores, data=st.data(), rule=rules)
def test_threshold_properties(scores, data, rule):
    y = np.array(data.draw(st.lists(st.integers(0, 1), min_size=len(scores), max_size=len(scores))))
    if y.all() or not y.any():
        y[0] = 1 - y[0]
    t = choose_threshold(y, scores, rule)
    assert 0.0 <= t <= 1.0
    pred = scores >= t
    kind, _, target = rule.partition("@")
    if kind == "sensitivity":
        assert pred[y == 1].mean() >= float(target) - 1e-9
        # ... and it is the highest such threshold: no higher score keeps that sensitivity
        higher = np.unique(scores[scores > t])
        assert all((scores[y == 1] >= h).mean() < float(target) - 1e-9 for h in higher)
    elif kind == "specificity" and scores.max() < 1.0:
        assert (~pred[y == 0]).mean() >= float(target) - 1e-9
    elif kind == "youden":
        j = pred[y == 1].mean() - pred[y == 0].mean()
        cands = [pred_j(scores, y, c) for c in np.unique(scores)] + [0.0] * int(scores.max() < 1)
        assert j >= max(cands) - 1e-12
    # The choice only depends on the data, not on its order.
    perm = np.random.default_rng(0).permutation(len(y))
    assert choose_threshold(y[perm], scores[perm], rule) == t


def pred_j(s: np.ndarray, y: np.ndarray, t: float) -> float:
    p = s >= t
    return p[y == 1].mean() - p[y == 0].mean()


def test_operating_point_binary_multiclass_multilabel(caplog):
    targets = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=bool)
    probs = np.stack([1 - S, S], axis=1)
    op = choose_operating_point("binary", np.stack([Y == 0, Y == 1], 1), probs, "youden")
    assert op.thresholds == (0.8,) and op.rule == "youden"
    np.testing.assert_array_equal(op.predict(probs)[:, 1], S >= 0.8)
    assert op.to_json(["neg", "pos"]) == {"rule": "youden", "value": 0.8, "positive_label": "pos"}

    mc = choose_operating_point("multiclass", targets, probs, "f1")
    assert mc == OperatingPoint("multiclass", "argmax")
    np.testing.assert_array_equal(mc.predict(np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])),
                                  [[0, 0, 1], [1, 0, 0]])

    ml_t = np.array([[1, 0], [0, 0], [1, 0], [0, 0]], dtype=bool)  # label 1 has no positives
    ml_p = np.array([[0.9, 0.1], [0.2, 0.3], [0.7, 0.2], [0.1, 0.4]])
    with caplog.at_level(logging.WARNING):
        ml = choose_operating_point("multilabel", ml_t, ml_p, "youden", fallback=0.5)
    assert ml.thresholds == (0.7, 0.5) and ml.fallback == (1,)
    assert "needs positive and negative" in caplog.text
    assert ml.to_json(["x", "y"]) == {"rule": "youden", "value": {"x": 0.7, "y": 0.5},
                                       "fallback": ["y"]}
    assert ml.predicted_labels(ml_p, ["x", "y"]) == ["x", "", "x", ""]
    with pytest.raises(UndefinedThresholdError):
        choose_operating_point("multilabel", ml_t, ml_p, "youden", fallback=None)
    with pytest.raises(ValueError, match="problem must be one of"):
        choose_operating_point("regression", ml_t, ml_p, "youden")
