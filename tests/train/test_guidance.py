"""train.mask_guidance: the auxiliary localization loss where lesion masks exist."""

from __future__ import annotations

import logging
import shutil

import keras
import numpy as np
import pytest

from pipeline.train.card import load_model, read_card
from pipeline.train.guidance import (
    HEAD_NAME,
    guidance_loss,
    guidance_weights,
    make_guided_model,
    pool_factors,
    pool_padding,
)
from tests.explain.nets import small_cnn
from tests.train.test_trainer import run_train


def test_weights_keep_masked_and_negative_images_and_drop_unannotated_positives():
    nonempty = np.array([True, False, False, True])
    binary = np.array([[1.0], [1.0], [0.0], [0.0]])
    np.testing.assert_array_equal(guidance_weights(nonempty, binary, problem="binary"), [1, 0, 1, 1])
    onehot = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0], [1, 0, 0]], np.float32)  # first label = negative
    np.testing.assert_array_equal(guidance_weights(nonempty, onehot, problem="multiclass"), [1, 0, 1, 1])
    multi = np.array([[0, 1], [1, 1], [0, 0], [0, 0]], np.float32)
    np.testing.assert_array_equal(guidance_weights(nonempty, multi, problem="multilabel"), [1, 0, 1, 1])


def test_pool_factors_pad_inexact_grids_and_reject_impossible_ones():
    assert pool_factors((128, 128), (8, 8)) == (16, 16)
    assert pool_factors((32, 64, 64), (4, 8, 8)) == (8, 8, 8)
    assert pool_padding((128, 128), (8, 8)) == ((0, 0), (0, 0))
    # EfficientNet-like odd grid: 100 px -> 8 cells of 13 px over a 104 px padded grid
    assert pool_factors((100, 100), (8, 8)) == (13, 13)
    assert pool_padding((100, 100), (8, 8)) == ((2, 2), (2, 2))
    assert pool_padding((64,), (19,)) == ((6, 6),)  # 4 x 19 = 76
    with pytest.raises(ValueError, match="mask_guidance_layer"):
        pool_factors((8, 8), (16, 16))


def test_inexact_grid_targets_are_the_lesion_share_of_each_padded_cell():
    masks = np.zeros((1, 100, 100, 1), np.uint8)
    masks[0, 50:63, 50:63] = 1  # 13 x 13 px: padded by 2, exactly cell (4, 4)
    target = np.full((1, 8, 8, 1), -20.0, np.float32)
    target[0, 4, 4] = 20.0
    factors = pool_factors((100, 100), (8, 8))
    assert float(guidance_loss(target, masks, np.ones(1), factors)) < 1e-6
    assert float(guidance_loss(-target, masks, np.ones(1), factors)) > 0.1


@pytest.mark.parametrize("rank", [2, 3])
def test_loss_is_small_for_a_perfect_prediction_and_ignores_zero_weight_images(rank):
    cells = (4,) * rank
    masks = np.zeros((2, *(8,) * rank, 1), np.uint8)
    masks[(0, *(slice(0, 2),) * rank)] = 1  # image 0: the first cell is lesion
    target = np.zeros((2, *cells, 1), np.float32)
    target[(0, *(0,) * rank)] = 1.0
    perfect = np.where(target > 0, 20.0, -20.0).astype(np.float32)
    wrong = -perfect
    factors = (2,) * rank
    assert float(guidance_loss(perfect, masks, np.ones(2), factors)) < 1e-6
    assert float(guidance_loss(wrong, masks, np.ones(2), factors)) > 1.0
    # image 1 is wrong but weighted 0: only image 0 counts
    mixed = perfect.copy()
    mixed[1] = 20.0
    assert float(guidance_loss(mixed, masks, np.array([1.0, 0.0]), factors)) < 1e-6
    assert float(guidance_loss(mixed, masks, np.zeros(2), factors)) == 0.0


def test_guided_wrapper_learns_where_the_lesion_is_and_is_the_classifier_on_images():
    """The 1x1 head on the target layer learns the lesion's cell; called on images alone the
    wrapper returns exactly the classifier's output (validation, saving)."""
    rng = np.random.default_rng(0)
    n, size = 64, 32
    images = rng.uniform(0, 0.3, (n, size, size, 1)).astype(np.float32)
    masks = np.zeros((n, size, size, 1), np.uint8)
    for i in range(n):
        r, c = rng.integers(0, 2, 2) * 16
        images[i, r:r + 16, c:c + 16] += 0.6
        masks[i, r:r + 16, c:c + 16] = 1
    labels = np.ones((n, 1), np.float32)
    classifier = small_cnn(2, size=size, seed=1)
    model = make_guided_model(classifier, layer="last", weight=1.0)
    assert model.guidance_layer == "last"
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    x = (images, masks, np.ones(n, np.float32))
    before = float(model.evaluate(x, labels, verbose=0))
    model.fit(x, labels, epochs=15, batch_size=16, verbose=0)
    after = float(model.evaluate(x, labels, verbose=0))
    assert after < before
    np.testing.assert_allclose(model(images[:4]), classifier(images[:4]), atol=1e-6)
    head = model.head
    feats = keras.Model(classifier.inputs, classifier.get_layer("last").output)(images[:8])
    cell_logits = np.asarray(head(feats))[..., 0]  # (8, 16, 16)
    lesion = np.asarray(keras.ops.average_pool(masks[:8].astype(np.float32), 2, 2))[..., 0] > 0.5
    assert cell_logits[lesion].mean() > cell_logits[~lesion].mean() + 1.0


def test_training_with_guidance_saves_the_plain_classifier(tmp_path, tiny_data, caplog):
    caplog.set_level(logging.INFO, logger="pipeline.train.trainer")
    run_train(tmp_path, tiny_data, mask_guidance=0.5, mask_guidance_layer="auto:4")
    assert any("mask guidance on layer" in r.getMessage() for r in caplog.records)
    model = load_model(tmp_path / "model")
    assert len(model.inputs) == 1 and model.outputs[0].shape[-1] == 1
    assert HEAD_NAME not in {layer.name for layer in model.layers}
    assert read_card(tmp_path / "model")["params"]["mask_guidance"] == 0.5


def test_guidance_without_masks_is_off_with_a_warning(tmp_path, tiny_data, caplog):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    masks = np.load(data / "masks.npy")
    np.save(data / "masks.npy", np.zeros_like(masks))
    caplog.set_level(logging.WARNING, logger="pipeline.train.guidance")
    run_train(tmp_path, data, mask_guidance=0.5)
    assert any("no training image has a lesion mask" in r.getMessage() for r in caplog.records)
    assert load_model(tmp_path / "model").outputs[0].shape[-1] == 1
