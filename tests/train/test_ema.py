"""EMA of the weights on a one-layer model: validation, the checkpoint and the saved model use the
averages; training itself is untouched; a killed run resumes its averages. Under MirroredStrategy:
``mirrored_checks``, run by tests/train/test_distribute.py in its two-logical-CPU process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.config import TrainParams
from pipeline.train.callbacks import make_callbacks, read_best
from pipeline.train.card import load_model
from pipeline.train.ema import ema_pairs
from pipeline.train.objective import make_metrics
from pipeline.train.trainer import _optimizer

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 4


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, :1] + rng.normal(size=(64, 1)) > 0).astype(np.float32)
    return (x[:48], y[:48]), (x[48:], y[48:])


def _bce(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    kernel, bias = weights
    p = np.clip(1 / (1 + np.exp(-(x @ kernel + bias))), 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _probe():
    import keras

    class Probe(keras.callbacks.Callback):
        """Per epoch (after the other callbacks): logs, raw weights, EMA averages."""

        def __init__(self) -> None:
            super().__init__()
            self.logs, self.raw, self.ema = [], [], []

        def on_epoch_end(self, epoch, logs=None):
            self.logs.append(dict(logs))
            self.raw.append([np.array(v) for v in self.model.get_weights()])
            self.ema.append([keras.ops.convert_to_numpy(a) for _, a in ema_pairs(self.model.optimizer)])

    return Probe()


def _fit(out: Path, *, ema: bool, policy: str = "float32", seed: int = 1, extra=()):
    import keras

    (x, y), val = _data()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid", name="out")])
    tp = TrainParams(weights=None, ema=ema, ema_momentum=0.8, weight_decay=0.0)
    model.compile(optimizer=_optimizer(tp, lr=0.1, steps=EPOCHS * 6, warmup=0, policy=policy),
                  loss="binary_crossentropy", metrics=make_metrics("binary", 1))
    probe = _probe()
    callbacks = make_callbacks(checkpoint_dir=out, backup_dir=out / "backup", live=None, patience=0,
                               rule="loss", ema=ema, phase=1, chief=True)
    model.fit(x, y, batch_size=8, epochs=EPOCHS, validation_data=val, shuffle=False, verbose=0,
              callbacks=[*callbacks, probe, *extra])
    return model, probe


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])  # mixed_float16: LossScaleOptimizer
def test_validation_and_saved_model_use_the_ema_weights(tmp_path, policy):
    model, probe = _fit(tmp_path, ema=True, policy=policy)
    assert hasattr(model.optimizer, "inner_optimizer") == (policy == "mixed_float16")
    _, (xv, yv) = _data()
    for logs, raw, ema in zip(probe.logs, probe.raw, probe.ema, strict=True):
        assert logs["val_loss"] == pytest.approx(_bce(ema, xv, yv), rel=1e-5)
        assert abs(_bce(raw, xv, yv) - _bce(ema, xv, yv)) > 1e-3  # the two really differ
    best = read_best(tmp_path)
    saved = load_model(best.model_path).get_weights()
    for got, ema, raw in zip(saved, probe.ema[best.score.epoch - 1], probe.raw[best.score.epoch - 1],
                             strict=True):
        np.testing.assert_array_equal(got, ema)
        assert not np.array_equal(got, raw)
    for got, ema in zip(model.get_weights(), probe.ema[-1], strict=True):  # fit ends on the averages
        np.testing.assert_array_equal(got, ema)


def test_ema_leaves_the_training_trajectory_alone_and_changes_the_saved_model(tmp_path):
    _, plain = _fit(tmp_path / "plain", ema=False)
    _, averaged = _fit(tmp_path / "ema", ema=True)
    for a, b in zip(plain.raw, averaged.raw, strict=True):  # exact swaps: same raw weights
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    plain_saved = load_model(read_best(tmp_path / "plain").model_path).get_weights()
    ema_saved = load_model(read_best(tmp_path / "ema").model_path).get_weights()
    assert not np.array_equal(plain_saved[0], ema_saved[0])


def test_a_killed_run_resumes_with_its_averages(tmp_path):
    import keras

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:  # after the checkpoint and the backup of epoch 2
                raise KeyboardInterrupt

    whole, _ = _fit(tmp_path / "whole", ema=True)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "killed", ema=True, extra=[Kill()])
    resumed, probe = _fit(tmp_path / "killed", ema=True, seed=7)  # a new process, other init
    assert len(probe.logs) == EPOCHS - 2  # epochs 3 and 4 only
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert read_best(tmp_path / "killed").score == read_best(tmp_path / "whole").score


def mirrored_checks(strategy, out: Path) -> dict:
    """Under ``strategy`` (two replicas): a fit with EMA, its checkpoint and saved model; then
    FusedAdamW against Keras' AdamW with a schedule, EMA and weight decay. Run by
    tests/train/test_distribute.py in its MirroredStrategy process."""
    import keras

    from pipeline.train.optimizer import FusedAdamW
    from pipeline.train.schedule import warmup_cosine

    with strategy.scope():
        _, probe = _fit(out, ema=True)
    best = read_best(out)
    saved = load_model(best.model_path).get_weights()
    (x, y), (xv, yv) = _data()

    def weights_after_fit(cls):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, activation="relu"),
                                    keras.layers.Dense(1, activation="sigmoid")])
            schedule = warmup_cosine(0.05, total_steps=12, warmup_steps=2, min_lr_fraction=0.1)
            net.compile(optimizer=cls(schedule, weight_decay=0.1, use_ema=True, ema_momentum=0.8),
                        loss="binary_crossentropy", jit_compile=False)
        net.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)  # ends on the averages
        return net.get_weights()

    fused, reference = weights_after_fit(FusedAdamW), weights_after_fit(keras.optimizers.AdamW)
    return {
        "replicas": strategy.num_replicas_in_sync,
        "val_loss_is_ema": [abs(lg["val_loss"] - _bce(e, xv, yv)) < 1e-4
                            for lg, e in zip(probe.logs, probe.ema, strict=True)],
        "saved_is_ema": all(np.allclose(s, e) for s, e in zip(saved, probe.ema[best.score.epoch - 1],
                                                               strict=True)),
        "saved_is_raw": all(np.allclose(s, r) for s, r in zip(saved, probe.raw[best.score.epoch - 1],
                                                               strict=True)),
        "fused_vs_keras": max(float(np.abs(a - b).max()) for a, b in zip(fused, reference, strict=True)),
        "fused_moved": max(float(np.abs(a).max()) for a in fused),
    }
