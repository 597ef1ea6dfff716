"""Test-time augmentation: exact views (2D and 3D, numpy and TensorFlow tensors) and the mean of a
model's probabilities over them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.evaluate.tta import (
    TTA_MODES,
    View,
    apply_view,
    check_tta_mode,
    iter_views,
    n_views,
    shift_pixels,
    tta_predict,
    view_specs,
)

_side = st.integers(2, 12)
_shapes = st.one_of(
    st.tuples(st.integers(1, 3), _side, _side, st.integers(1, 2)),                    # (N, H, W, C)
    st.tuples(st.integers(1, 2), st.integers(1, 4), _side, _side, st.integers(1, 2)),  # (N, D, H, W, C)
)
_batches = _shapes.flatmap(lambda shape: arrays(np.float32, shape, elements=st.floats(0, 1, width=32)))


def _dyadic(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Values k/16: sums and means over power-of-two counts are exact in float32."""
    return (np.random.default_rng(seed).integers(0, 17, size=shape) / 16).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(_batches)
def test_flip_mirrors_w_only_and_twice_is_identity(x):
    flipped = apply_view(x, View(flip=True))
    np.testing.assert_array_equal(flipped, x[..., ::-1, :])  # N, (D,) H and C untouched
    np.testing.assert_array_equal(apply_view(flipped, View(flip=True)), x)


@settings(max_examples=80, deadline=None)
@given(_batches, st.sampled_from(["dh", "dw"]), st.data())
def test_shift_moves_content_by_its_offset_and_fills_the_gap(x, field, data):
    axis = -3 if field == "dh" else -2
    side = x.shape[axis]
    k = data.draw(st.integers(1, side - 1))
    sign = data.draw(st.sampled_from([1, -1]))
    out = apply_view(x, View(**{field: sign * k}))
    assert out.shape == x.shape and out.dtype == x.dtype

    def take(a, start, stop):
        return np.take(a, np.arange(side)[start:stop], axis=axis)

    if sign > 0:  # towards higher indices: out[i + k] = x[i]
        np.testing.assert_array_equal(take(out, k, None), take(x, None, side - k))
        band, border = take(out, None, k), take(x, 0, 1)
    else:
        np.testing.assert_array_equal(take(out, None, side - k), take(x, k, None))
        band, border = take(out, side - k, None), take(x, side - 1, side)
    if x.ndim == 4:  # 2D: zeros, as ingest letterboxes
        np.testing.assert_array_equal(band, 0.0)
    else:  # 3D: the edge voxels repeated (ingest pads CT with air, not 0 after windowing)
        np.testing.assert_array_equal(band, np.broadcast_to(border, band.shape))
        np.testing.assert_array_equal(take(apply_view(x, View(**{field: sign * k}), fill="zero"),
                                           *((None, k) if sign > 0 else (side - k, None))), 0.0)


@settings(max_examples=40, deadline=None)
@given(_batches, st.sampled_from(TTA_MODES))
def test_views_per_mode_start_with_the_original(x, mode):
    specs = view_specs(mode, x.shape)
    assert len(specs) == n_views(mode) == {"none": 1, "flip": 2, "shift": 5, "flip_shift": 10}[mode]
    assert len(set(specs)) == len(specs) and specs[0] == View()
    views = list(iter_views(x, mode))
    assert views[0] is x  # the original, not a copy
    assert all(v.shape == x.shape for v in views)
    assert all(s.dh == 0 or abs(s.dh) == shift_pixels(x.shape[-3]) for s in specs)
    assert all(s.dw == 0 or abs(s.dw) == shift_pixels(x.shape[-2]) for s in specs)
    assert all(s.dh == 0 or s.dw == 0 for s in specs)  # one direction per view


@pytest.mark.parametrize(("side", "pixels"), [(16, 1), (28, 1), (32, 1), (64, 3), (128, 5), (224, 9),
                                              (512, 20)])
def test_shift_is_four_percent_of_the_side(side, pixels):
    assert shift_pixels(side) == pixels


@pytest.mark.parametrize("shape", [(2, 6, 8, 1), (2, 3, 6, 8, 2)], ids=["2d", "3d"])
def test_tensorflow_tensors_get_the_same_views(shape):
    import tensorflow as tf

    x = _dyadic(shape, 0)
    for view in view_specs("flip_shift", shape):
        out = apply_view(tf.constant(x), view)
        assert tf.is_tensor(out)
        np.testing.assert_array_equal(out.numpy(), apply_view(x, view))


def _left_half_mean_model(shape: tuple[int, ...]):
    """Deterministic binary 'model': P = mean of the left half (W < W/2) of the input."""
    import keras

    half = shape[-2] // 2
    inputs = keras.Input(shape[1:])
    outputs = keras.layers.Lambda(
        lambda t: keras.ops.mean(t[..., :half, :], axis=tuple(range(1, len(shape))))[:, None])(inputs)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("shape", [(3, 16, 16, 1), (2, 4, 16, 16, 1)], ids=["2d", "3d"])
def test_prediction_is_the_mean_probability_over_views(shape):
    model = _left_half_mean_model(shape)
    x = _dyadic(shape, 1)
    half = shape[-2] // 2
    axes = tuple(range(1, len(shape)))
    plain = np.asarray(model.predict_on_batch(x), dtype=np.float64)
    np.testing.assert_array_equal(tta_predict(model.predict_on_batch, x, mode="none"), plain)  # bit for bit
    # flip: mean of the left half and the (mirrored) right half = mean of the whole image
    np.testing.assert_array_equal(tta_predict(model.predict_on_batch, x, mode="flip")[:, 0],
                                  x.astype(np.float64).mean(axis=axes))
    for mode in TTA_MODES:
        seen = []

        def predict(batch, seen=seen):
            seen.append(batch.shape)
            return model.predict_on_batch(batch)

        got = tta_predict(predict, x, mode=mode)
        per_view = [np.asarray(v, np.float64)[..., :half, :].mean(axis=axes)[:, None]
                    for v in iter_views(x, mode)]
        np.testing.assert_array_equal(got, np.mean(per_view, axis=0))
        assert seen == [x.shape] * n_views(mode)  # one inference batch per view, never stacked


def test_multiclass_rows_still_sum_to_one():
    def softmax_of_column_means(batch):
        logits = np.asarray(batch, np.float64)[..., 0].mean(axis=1)  # (N, W)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    x = _dyadic((4, 8, 8, 1), 2)
    probs = tta_predict(softmax_of_column_means, x, mode="flip_shift")
    assert probs.shape == (4, 8)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)


def test_bad_mode_and_shape_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"tta must be one of \['none', 'flip', 'shift', 'flip_shift'\]. "
                                         r"Received: 'rotate'"):
        check_tta_mode("rotate")
    with pytest.raises(ValueError, match="tta must be one of"):
        tta_predict(lambda b: b, np.zeros((1, 4, 4, 1)), mode="Flip")
    with pytest.raises(ValueError, match=r"\(N, H, W, C\) or \(N, D, H, W, C\). Received shape: \(4, 4\)"):
        view_specs("flip", (4, 4))
    with pytest.raises(ValueError, match=r"fill must be one of \['zero', 'edge'\]"):
        apply_view(np.zeros((1, 4, 4, 1)), View(dw=1), fill="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shift must be smaller than the side"):
        apply_view(np.zeros((1, 4, 4, 1)), View(dh=4))
