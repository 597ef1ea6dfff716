"""Grad-CAM / Grad-CAM++ / Score-CAM maps: shapes, ranges, localisation, library cross-check,
batching, mixed precision, class selection."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pipeline.explain import METHODS, Explainer, compute_maps
from pipeline.models import build_model
from tests.explain.nets import box, region_model, small_cnn, square_images


def _noise(rank: int, n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n,) + (size,) * rank + (1,)).astype(np.float32)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.fixture(scope="module")
def cnn2d():
    return small_cnn(2)


@pytest.fixture(scope="module")
def cnn3d():
    return small_cnn(3, size=16, n_outputs=3, activation="softmax")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("rank", [2, 3])
def test_maps_have_input_shape_and_unit_range(method, rank, cnn2d, cnn3d):
    model, size = (cnn2d, 32) if rank == 2 else (cnn3d, 16)
    images = _noise(rank, 3, size)
    maps = compute_maps(model, images, method=method, batch_size=2, max_n=8)
    assert maps.dtype == np.float32 and maps.shape == images.shape[:-1]  # (N, H, W) / (N, D, H, W)
    assert np.isfinite(maps).all() and maps.min() >= 0.0
    assert np.allclose(maps.reshape(3, -1).max(axis=1), 1.0)  # random nets: evidence somewhere


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("method", METHODS)
def test_map_peaks_on_the_region_the_model_uses(rank, method):
    model = region_model(rank)
    images = square_images(rank, n=2)
    maps = compute_maps(model, images, method=method)
    for heatmap in maps:
        peak = np.unravel_index(heatmap.argmax(), heatmap.shape)
        square = box(rank, "square")
        assert all(s.start <= p < s.stop for s, p in zip(square, peak, strict=True))
        assert heatmap[square].mean() > 0.7
        assert heatmap[box(rank, "distractor")].max() == 0.0  # bright, but outside what the model sees


def test_no_evidence_gives_blank_finite_map():
    model = region_model(2)
    images = square_images(2, n=2, square=False)  # only the distractor: the class score is flat
    for method in METHODS:
        maps = compute_maps(model, images, method=method)
        assert np.isfinite(maps).all() and (maps == 0).all()


def test_tf_explain_and_tf_keras_vis_agree():
    """The two libraries cross-check each other on the same model, layer and images."""
    model = small_cnn(2, seed=3)
    images = _noise(2, 6, 32, seed=1)
    explain = compute_maps(model, images, backend="tf-explain")
    vis = compute_maps(model, images, backend="tf-keras-vis")
    informative = [i for i in range(len(images)) if explain[i].std() > 0 and vis[i].std() > 0]
    assert len(informative) >= 4
    assert min(_pearson(explain[i], vis[i]) for i in informative) > 0.99
    # Multi-class, a different class per image (one gradient pass per class within a batch).
    softmax = small_cnn(2, n_outputs=3, activation="softmax", seed=4)
    classes = [0, 1, 2, 0, 1, 2]
    explain = compute_maps(softmax, images, class_index=classes, batch_size=4, backend="tf-explain")
    vis = compute_maps(softmax, images, class_index=classes, batch_size=4, backend="tf-keras-vis")
    informative = [i for i in range(len(images)) if explain[i].std() > 0]
    assert len(informative) >= 4 and min(_pearson(explain[i], vis[i]) for i in informative) > 0.99
    # And on a registry model (flat ResNet-18, in-model preprocessing), at another layer. Random
    # weights often give maps without a positive part (blank after ReLU); this seed's are not.
    keras.utils.set_random_seed(3)
    resnet = build_model(kind="2d", backbone="resnet18", input_shape=(64, 64, 1), n_outputs=1,
                         activation="sigmoid", base_width=16)
    images = _noise(2, 3, 64, seed=2)
    a = compute_maps(resnet, images, layer="conv4_block2_out", backend="tf-explain")
    b = compute_maps(resnet, images, layer="conv4_block2_out", backend="tf-keras-vis")
    assert a.std() > 0 and _pearson(a, b) > 0.99


def _gradcam_plus_plus_reference(model, images: np.ndarray, layer: str) -> np.ndarray:
    """Grad-CAM++ as the authors' code computes it (Chattopadhyay et al. 2018, adityac94/Grad_CAM_plus_plus),
    in NumPy from one gradient of the logit: alpha = g^2 / (2 g^2 + sum(A) g^3), weights =
    sum(alpha / sum(alpha) * relu(g)), cam = relu(sum_k w_k A_k); on the input grid like ours."""
    import tensorflow as tf

    from pipeline.explain.maps import to_input_grid
    from pipeline.explain.view import explanation_model

    view = explanation_model(model)
    probe = keras.Model(view.inputs, [view.get_layer(layer).output, view.outputs[0]])
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        feature, logits = probe(x)
        score = logits[:, 0]
    a, g = feature.numpy().astype(np.float64), tape.gradient(score, feature).numpy().astype(np.float64)
    spatial = tuple(range(1, a.ndim - 1))
    global_sum = a.sum(axis=spatial, keepdims=True)
    denom = 2 * g**2 + global_sum * g**3
    alphas = g**2 / np.where(denom != 0.0, denom, 1.0)
    norm = alphas.sum(axis=spatial, keepdims=True)
    alphas /= np.where(norm != 0.0, norm, 1.0)
    weights = (np.maximum(g, 0.0) * alphas).sum(axis=spatial, keepdims=True)
    cams = np.maximum((weights * a).sum(axis=-1), 0.0).astype(np.float32)
    return to_input_grid(cams, images.shape[1:-1])


@pytest.mark.parametrize("rank", [2, 3])
def test_gradcam_plus_plus_matches_the_reference_formula(rank):
    """Our Grad-CAM++ (tf-keras-vis, logit score with exp(score) == 1) is the published method: it
    matches the authors' formula computed independently. So a Grad-CAM++ map that fails the deletion
    check on a trained model is the method's behaviour (it weights every channel with *any*
    positive gradient, including channels whose net evidence is against the class), not a bug."""
    model = small_cnn(rank, size=32 if rank == 2 else 16, seed=3)
    images = _noise(rank, 4, 32 if rank == 2 else 16, seed=2)
    layer = Explainer(model).layer
    ours = compute_maps(model, images, method="gradcam++", layer=layer)
    reference = _gradcam_plus_plus_reference(model, images, layer)
    informative = [i for i in range(len(images)) if reference[i].std() > 0]
    assert len(informative) >= 2
    assert min(_pearson(ours[i], reference[i]) for i in informative) > 0.999


def test_tf_explain_averaging_is_wrong_for_volumes():
    """Why 3D Grad-CAM goes through tf-keras-vis: tf-explain averages gradients over two axes."""
    import tensorflow as tf
    from tf_explain.core.grad_cam import GradCAM

    rng = np.random.default_rng(0)
    output = tf.constant(rng.random((2, 3, 4, 5)), tf.float32)  # (D, H, W, C)
    grad = tf.constant(rng.normal(size=(2, 3, 4, 5)), tf.float32)
    correct = np.sum(output.numpy() * grad.numpy().mean(axis=(0, 1, 2)), axis=-1)
    got = GradCAM.ponderate_output(output, grad).numpy()
    assert got.shape == correct.shape and not np.allclose(got, correct, atol=1e-3)


@pytest.mark.parametrize(("rank", "method"),
                         [(2, "gradcam"), (2, "gradcam++"), (3, "gradcam"), (2, "scorecam")])
def test_batched_equals_one_at_a_time(rank, method, cnn2d, cnn3d):
    model, size = (cnn2d, 32) if rank == 2 else (cnn3d, 16)
    images = _noise(rank, 5, size, seed=4)
    explainer = Explainer(model)
    batched = explainer.maps(images, method=method, batch_size=4, max_n=8)
    single = np.concatenate([explainer.maps(images[i:i + 1], method=method, batch_size=1, max_n=8)
                             for i in range(len(images))])
    assert np.allclose(batched, single, atol=1e-4)


@pytest.mark.parametrize("rank", [2, 3])
def test_mixed_precision_model_is_explained_in_float32(rank, mixed_policy):
    size, n_outputs, activation = (32, 1, "sigmoid") if rank == 2 else (16, 3, "softmax")
    low = mixed_policy.removeprefix("mixed_")
    mixed = small_cnn(rank, size=size, n_outputs=n_outputs, activation=activation, seed=5)
    assert mixed.get_layer("last").compute_dtype == low
    keras.mixed_precision.set_global_policy("float32")
    full = small_cnn(rank, size=size, n_outputs=n_outputs, activation=activation, seed=6)
    full.set_weights(mixed.get_weights())
    images = _noise(rank, 2, size, seed=5)
    classes = np.asarray(full(images)).argmax(axis=1)  # 16-bit rounding may flip a close argmax
    for method in METHODS:
        got = compute_maps(mixed, images, method=method, class_index=classes, max_n=8)
        assert np.isfinite(got).all() and got.max() == pytest.approx(1.0)
        expected = compute_maps(full, images, method=method, class_index=classes, max_n=8)
        assert np.allclose(got, expected, atol=1e-4)
    assert mixed.get_layer("last").compute_dtype == low  # the trained model is untouched


def test_mixed_precision_registry_model(mixed_policy):
    keras.utils.set_random_seed(3)  # see test_tf_explain_and_tf_keras_vis_agree: maps not blank
    model = build_model(kind="2d", backbone="resnet18", input_shape=(64, 64, 1), n_outputs=1,
                        activation="sigmoid", base_width=16)
    images = _noise(2, 2, 64)
    for method in ("gradcam", "gradcam++"):
        maps = compute_maps(model, images, method=method)
        assert maps.shape == images.shape[:-1] and np.isfinite(maps).all()
        assert 0.0 <= maps.min() and maps.max() == pytest.approx(1.0)


def test_saturated_sigmoid_still_explained():
    """Grad-CAM differentiates the logit, so p == 1.0 in float32 does not blank the map."""
    model = region_model(2)
    dense = model.get_layer("predictions")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 20, bias])  # logit ~ +150: sigmoid is exactly 1.0
    images = square_images(2, n=1)
    assert float(model(images)[0, 0]) == 1.0
    maps = compute_maps(model, images)
    assert maps[0][box(2, "square")].mean() > 0.7


@pytest.mark.parametrize("rank", [2, 3])
def test_class_index_default_and_explicit(rank, cnn3d):
    model = cnn3d if rank == 3 else small_cnn(2, n_outputs=3, activation="softmax", seed=7)
    images = _noise(rank, 4, 16 if rank == 3 else 32, seed=7)
    predicted = np.asarray(model(images)).argmax(axis=1)
    explainer = Explainer(model)
    assert np.allclose(explainer.maps(images), explainer.maps(images, class_index=predicted), atol=1e-6)
    other = (predicted + 1) % 3
    assert not np.allclose(explainer.maps(images), explainer.maps(images, class_index=other), atol=1e-3)
    for bad in (3, -1, [0, 1], 1.5):
        with pytest.raises(ValueError, match="class_index must be"):
            explainer.maps(images, class_index=bad)


def test_argument_errors(cnn2d, cnn3d):
    images = _noise(2, 2, 32)
    with pytest.raises(ValueError, match="method must be one of"):
        compute_maps(cnn2d, images, method="lime")
    with pytest.raises(ValueError, match="tf-explain' computes 2D Grad-CAM only"):
        compute_maps(cnn3d, _noise(3, 1, 16), backend="tf-explain")
    with pytest.raises(ValueError, match="batch_size must be"):
        compute_maps(cnn2d, images, batch_size=0)
    with pytest.raises(ValueError, match="max_n must be"):
        compute_maps(cnn2d, images, method="scorecam", max_n=0)
    with pytest.raises(ValueError, match=r"images must have shape \(N, 32, 32, 1\)"):
        compute_maps(cnn2d, images[..., 0])
    with pytest.raises(ValueError, match="is not a layer"):
        compute_maps(cnn2d, images, layer="conv5_block2_out")


def test_model_saved_and_loaded_in_safe_mode(tmp_path, bfloat16_policy):
    from pipeline.train.card import load_model

    model = small_cnn(2, n_outputs=3, activation="softmax", seed=8)
    model.save(tmp_path / "model.keras")
    keras.mixed_precision.set_global_policy("float32")  # a fresh evaluate process
    loaded = load_model(tmp_path)
    images = _noise(2, 3, 32, seed=8)
    for method in ("gradcam", "scorecam"):
        expected = compute_maps(model, images, method=method, max_n=4)
        assert np.allclose(compute_maps(loaded, images, method=method, max_n=4), expected, atol=1e-5)


@pytest.mark.parametrize("backbone", ["mobilenetv3small", "efficientnetb0", "densenet121"])
def test_every_backbone_family_is_explained(backbone):
    """Families whose graphs hold bare ops (MobileNetV3's hard-swish ``x + 3``), Rescaling and
    Normalization layers or concatenations: the float32 logit copy matches the model, maps are
    finite and in [0, 1]."""
    keras.utils.set_random_seed(5)
    model = build_model(kind="2d", backbone=backbone, input_shape=(64, 64, 1), n_outputs=1,
                        activation="sigmoid", weights=None)
    images = _noise(2, 2, 64)
    explainer = Explainer(model, backbone=backbone)
    prob = np.asarray(model(images), np.float64)
    logits = np.asarray(explainer.view(images), np.float64)
    assert np.allclose(1 / (1 + np.exp(-logits)), prob, atol=1e-5)
    maps = explainer.maps(images, method="gradcam")
    assert maps.shape == images.shape[:-1] and np.isfinite(maps).all()
    assert 0.0 <= maps.min() and maps.max() <= 1.0
