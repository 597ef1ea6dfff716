from __future__ import annotations

import numpy as np
import pytest

from pipeline.train import objective
from pipeline.train.distribute import resolve_strategy_name, scaled_lr
from pipeline.train.precision import resolve_precision
from pipeline.train.schedule import warmup_cosine


def test_targets_per_problem():
    rows = [{"label_index": "1"}, {"label_index": "0"}]
    np.testing.assert_array_equal(objective.targets_from_manifest(rows, problem="binary", n_labels=2),
                                  [[1.0], [0.0]])
    rows = [{"label_index": "2"}, {"label_index": "0"}]
    np.testing.assert_array_equal(
        objective.targets_from_manifest(rows, problem="multiclass", n_labels=3),
        [[0, 0, 1], [1, 0, 0]])
    rows = [{"label_index": "0|2"}, {"label_index": ""}]
    np.testing.assert_array_equal(
        objective.targets_from_manifest(rows, problem="multilabel", n_labels=3),
        [[1, 0, 1], [0, 0, 0]])


def test_class_weights_balance_the_classes():
    y = np.array([[0.0]] * 90 + [[1.0]] * 10)
    w = objective.class_weights(y, problem="binary")
    assert w[1] / w[0] == pytest.approx(9.0)
    assert 90 * w[0] == pytest.approx(10 * w[1])
    with pytest.raises(ValueError, match="use 'focal'"):
        objective.class_weights(np.zeros((3, 2)), problem="multilabel")


@pytest.mark.parametrize(("y", "problem", "ratio", "resolved"), [
    ([[0.0]] * 50 + [[1.0]] * 50, "binary", 1.0, "none"),
    ([[0.0]] * 60 + [[1.0]] * 40, "binary", 1.5, "none"),  # the threshold itself is balanced enough
    ([[0.0]] * 61 + [[1.0]] * 39, "binary", 61 / 39, "class_weights"),
    ([[1.0]] * 80 + [[0.0]] * 20, "binary", 4.0, "class_weights"),  # either class may be the minority
    (np.eye(3)[[0] * 40 + [1] * 40 + [2] * 20], "multiclass", 2.0, "class_weights"),
    (np.eye(3)[[0] * 30 + [1] * 30 + [2] * 25], "multiclass", 1.2, "none"),
    ([[1, 0], [1, 1], [0, 0], [0, 0], [0, 0], [0, 0]], "multilabel", 5.0, "none"),  # 5:1; unsupported
])
def test_auto_class_balance_uses_weights_above_the_ratio(y, problem, ratio, resolved):
    y = np.asarray(y, np.float32)
    assert objective.AUTO_BALANCE_RATIO == 1.5
    assert objective.class_ratio(y, problem=problem) == pytest.approx(ratio)
    assert objective.resolve_class_balance("auto", ratio=objective.class_ratio(y, problem=problem),
                                           problem=problem) == resolved


def test_explicit_class_balance_is_kept_and_unknown_names_are_refused():
    for name in ("none", "class_weights", "focal"):
        assert objective.resolve_class_balance(name, ratio=9.0, problem="binary") == name
    with pytest.raises(ValueError, match=r"class_balance must be one of \['none', 'class_weights', "
                                         r"'focal', 'auto'\]. Received: 'balanced'"):
        objective.resolve_class_balance("balanced", ratio=1.0, problem="binary")


@pytest.mark.parametrize("problem,balance,name", [
    ("binary", "none", "binary_crossentropy"), ("binary", "focal", "binary_focal_crossentropy"),
    ("multiclass", "none", "categorical_crossentropy"),
    ("multiclass", "focal", "categorical_focal_crossentropy"),
    ("multilabel", "focal", "binary_focal_crossentropy"),
])
def test_loss_follows_problem(problem, balance, name):
    loss = objective.make_loss(problem, class_balance=balance, label_smoothing=0.1, focal_gamma=2.0)
    assert loss.name == name
    assert objective.activation_for(problem) == ("softmax" if problem == "multiclass" else "sigmoid")


def test_focal_loss_downweights_easy_examples():
    import keras

    focal = objective.make_loss("binary", class_balance="focal", label_smoothing=0.0, focal_gamma=2.0)
    plain = objective.make_loss("binary", class_balance="none", label_smoothing=0.0, focal_gamma=0.0)
    y = np.array([[1.0]], np.float32)
    easy, hard = np.array([[0.95]], np.float32), np.array([[0.3]], np.float32)
    ratio_easy = float(focal(y, easy)) / float(plain(y, easy))
    ratio_hard = float(focal(y, hard)) / float(plain(y, hard))
    assert ratio_easy < ratio_hard / 10
    assert keras is not None


def test_precision_auto():
    assert resolve_precision("auto", devices=[{"device_type": "CPU"}]) == "float32"
    gpu = [{"device_type": "CPU"}, {"device_type": "GPU", "compute_capability": (8, 0)}]
    assert resolve_precision("auto", devices=gpu) == "mixed_float16"
    old = [{"device_type": "GPU", "compute_capability": (6, 1)}]
    assert resolve_precision("auto", devices=old) == "float32"
    assert resolve_precision("auto", devices=[{"device_type": "TPU"}]) == "mixed_bfloat16"
    assert resolve_precision("mixed_bfloat16") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("half")


def test_strategy_auto_and_lr_scaling():
    assert resolve_strategy_name("auto", n_gpus=0, tf_config="") == "default"
    assert resolve_strategy_name("auto", n_gpus=4, tf_config="") == "mirrored"
    cfg = '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}'
    assert resolve_strategy_name("auto", n_gpus=1, tf_config=cfg) == "multi_worker"
    with pytest.raises(ValueError, match="strategy must be one of"):
        resolve_strategy_name("horovod")
    assert scaled_lr(1e-3, 4, "linear") == pytest.approx(4e-3)
    assert scaled_lr(1e-3, 4, "sqrt") == pytest.approx(2e-3)
    assert scaled_lr(1e-3, 4, "none") == pytest.approx(1e-3)


def test_warmup_cosine_shape():
    s = warmup_cosine(1e-3, total_steps=100, warmup_steps=10, min_lr_fraction=0.01)
    lrs = [float(s(i)) for i in range(0, 101)]
    assert lrs[0] == pytest.approx(1e-5) and lrs[10] == pytest.approx(1e-3)
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:11], strict=True))  # warm-up rises
    assert all(a >= b for a, b in zip(lrs[10:-1], lrs[11:], strict=True))  # then decays
    assert lrs[100] == pytest.approx(1e-5, rel=1e-3)
