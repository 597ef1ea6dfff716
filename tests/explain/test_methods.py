"""HiResCAM, LayerCAM and the multi-layer LayerCAM fusion: each against its reference formula,
2D and 3D, batched, and on a model whose evidence is known (the region model)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.explain import Explainer, compute_maps
from pipeline.explain.cam_rules import blend, cam_formula, finer_layer, fusion_layers
from pipeline.explain.maps import to_input_grid
from pipeline.explain.view import explanation_model
from tests.explain.nets import box, region_model, small_cnn, square_images


def _noise(rank: int, n: int, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n,) + (size,) * rank + (1,)).astype(np.float32)


def _reference(model, images: np.ndarray, layer: str, rule: str) -> np.ndarray:
    """The published formulas in float64 NumPy from one independent gradient of the logit."""
    view = explanation_model(model)
    probe = keras.Model(view.inputs, [view.get_layer(layer).output, view.outputs[0]])
    with tf.GradientTape() as tape:
        feature, logits = probe(tf.constant(images))
        score = logits[:, 0]
    a = feature.numpy().astype(np.float64)
    g = tape.gradient(score, feature).numpy().astype(np.float64)
    if rule == "hirescam":  # Draelos & Carin 2020: element-wise, no spatial averaging
        cam = (a * g).sum(axis=-1)
    else:  # LayerCAM, Jiang et al. 2021: positive gradients as per-location weights
        cam = (a * np.maximum(g, 0.0)).sum(axis=-1)
    return to_input_grid(np.maximum(cam, 0.0).astype(np.float32), images.shape[1:-1])


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("method", ["hirescam", "layercam"])
def test_method_matches_its_reference_formula(rank, method):
    size = 32 if rank == 2 else 16
    model = small_cnn(rank, size=size, seed=3)
    images = _noise(rank, 5, size, seed=4)
    layer = Explainer(model).layer
    ours = compute_maps(model, images, method=method, layer=layer, batch_size=2)  # several batches
    reference = _reference(model, images, layer, method)
    assert ours.shape == images.shape[:-1] and ours.dtype == np.float32
    informative = [i for i in range(len(images)) if reference[i].std() > 0]
    assert len(informative) >= 2
    assert min(_pearson(ours[i], reference[i]) for i in informative) > 0.999
    assert np.all((ours >= 0) & (ours <= 1))


@pytest.mark.graph  # the compiled gradient pass as production runs it: traced
@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("method", ["gradcam", "layercam"])
def test_compiled_maps_equal_tf_keras_vis(rank, method):
    """The default (auto) path computes 3D Grad-CAM and LayerCAM from our compiled gradient pass;
    tf-keras-vis computes the same maps, on several batches and on a multi-class model with a
    different class per image."""
    size = 32 if rank == 2 else 16
    images = _noise(rank, 5, size, seed=6)
    for model, classes in ((small_cnn(rank, size=size, seed=3), None),
                           (small_cnn(rank, size=size, n_outputs=3, activation="softmax", seed=4),
                            [0, 1, 2, 0, 1])):
        layer = Explainer(model).layer
        ours = compute_maps(model, images, method=method, layer=layer, class_index=classes, batch_size=2)
        vis = compute_maps(model, images, method=method, layer=layer, class_index=classes, batch_size=2,
                           backend="tf-keras-vis")
        assert ours.shape == images.shape[:-1] and (ours.reshape(5, -1).max(axis=1) > 0).sum() >= 3
        np.testing.assert_allclose(ours, vis, atol=1e-4)


def test_cam_formulas_on_known_numbers():
    acts = np.array([[[[1.0, 2.0]], [[3.0, 0.0]]]])  # (1, 2, 1, 2): two cells, two channels
    grads = np.array([[[[1.0, -1.0]], [[-1.0, 2.0]]]])
    # gradcam: channel weights = spatial mean of grads = (0, 0.5)
    np.testing.assert_allclose(cam_formula(acts, grads, "gradcam"), [[[1.0], [0.0]]])
    np.testing.assert_allclose(cam_formula(acts, grads, "hirescam"), [[[1 - 2], [-3 + 0]]])
    np.testing.assert_allclose(cam_formula(acts, grads, "layercam"), [[[1.0], [0.0]]])
    with pytest.raises(ValueError, match="rule must be"):
        cam_formula(acts, grads, "gradcam+")


@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("method", ["hirescam", "layercam", "layercam-fusion"])
def test_maps_land_on_the_evidence_and_ignore_the_distractor(rank, method):
    model = region_model(rank)
    images = square_images(rank, n=3)
    maps = compute_maps(model, images, method=method, layer="features")
    for heat in maps:
        assert heat[box(rank, "square")].mean() > 3 * heat[box(rank, "distractor")].mean()
        peak = np.unravel_index(np.argmax(heat), heat.shape)
        inside = all(s.start - 2 <= p < s.stop + 2 for p, s in zip(peak, box(rank, "square"), strict=True))
        assert inside


def test_fusion_layers_take_one_finer_and_the_coarser_resolutions():
    from pipeline.models import build_model

    model = build_model(kind="2d", backbone="resnet18", input_shape=(64, 64, 1), n_outputs=1,
                        activation="sigmoid", base_width=8)
    view = explanation_model(model)
    layers = fusion_layers(view, "conv4_block2_out")
    cells = [tuple(view.get_layer(n).output.shape[1:3]) for n in layers]
    assert layers[1] == "conv4_block2_out"
    assert cells == [(8, 8), (4, 4), (2, 2)]
    explainer = Explainer(model, layer="conv5_block2_out")
    assert fusion_layers(explainer.view, "conv5_block2_out")[-1] == "conv5_block2_out"


def test_fusion_is_the_mean_of_per_layer_layercam_maps():
    model = small_cnn(2, size=32, seed=5)
    images = _noise(2, 3, 32, seed=6)
    explainer = Explainer(model, layer="last")
    layers = explainer.fusion_layers
    per_layer = [compute_maps(model, images, method="layercam", layer=n) for n in layers]
    fused = explainer.maps(images, method="layercam-fusion")
    from pipeline.explain.maps import normalize

    np.testing.assert_allclose(fused, normalize(np.mean(per_layer, axis=0)), atol=1e-5)


def test_blend_is_the_rescaled_mean_of_the_rescaled_maps():
    coarse = np.array([[[2.0, 1.0], [0.0, 0.5]]], np.float32)  # maximum 2: rescaled to 1 first
    fine = np.array([[[0.25, 1.0], [1.0, 1.0]]], np.float32)
    blended = blend(coarse, fine)
    expected = (coarse / 2.0 + fine) / 2.0
    np.testing.assert_allclose(blended, expected / expected.max(), rtol=1e-6)
    assert blended[0, 1, 0] > 0.0  # heat in one map only stays, at a lower level
    assert np.unravel_index(blended[0].argmax(), (2, 2)) == (0, 1)  # the peak is where both are hot
    np.testing.assert_allclose(blend(np.zeros_like(coarse), fine), fine, rtol=1e-6)
    assert not blend(np.zeros_like(coarse), np.zeros_like(fine)).any()
    with pytest.raises(ValueError, match="same shape"):
        blend(coarse, fine[:, :1])


@pytest.mark.parametrize("rank", [2, 3])
def test_gradcam_layercam_blends_gradcam_with_layercam_one_resolution_finer(rank):
    size = 32 if rank == 2 else 16
    model = small_cnn(rank, size=size, seed=7)
    images = _noise(rank, 3, size, seed=8)
    explainer = Explainer(model, layer="last")
    assert explainer.finer.layer == "first" == finer_layer(explainer.view, "last")
    assert finer_layer(explainer.view, "first") == "first"  # already the finest
    blended = explainer.maps(images, method="gradcam-layercam", batch_size=2)
    expected = blend(compute_maps(model, images, method="gradcam", layer="last"),
                    compute_maps(model, images, method="layercam", layer="first"))
    np.testing.assert_allclose(blended, expected, atol=1e-5)
    assert blended.shape == images.shape[:-1] and np.isclose(blended.reshape(3, -1).max(axis=1), 1).all()
    averaged = explainer.maps(images, method="gradcam-layercam", tta="flip")  # views, then the blend
    expected = blend(explainer.maps(images, method="gradcam", tta="flip"),
                    explainer.finer.maps(images, method="layercam", tta="flip"))
    np.testing.assert_allclose(averaged, expected, atol=1e-5)


def test_finer_layer_of_a_resnet_is_the_previous_stage():
    from pipeline.models import build_model

    model = build_model(kind="2d", backbone="resnet18", input_shape=(64, 64, 1), n_outputs=1,
                        activation="sigmoid", base_width=8)
    view = Explainer(model).view
    assert finer_layer(view, "conv4_block2_out") == "conv3_block2_out"
    assert finer_layer(view, "conv3_block2_out") == "conv2_block2_out"


@pytest.mark.parametrize("rank", [2, 3])
def test_blended_maps_land_on_the_evidence(rank):
    model = region_model(rank)
    images = square_images(rank, n=3)
    maps = compute_maps(model, images, method="gradcam-layercam", layer="features")
    for heat in maps:
        assert heat[box(rank, "square")].mean() > 3 * heat[box(rank, "distractor")].mean()
