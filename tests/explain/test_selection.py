"""Choosing the explanation method and layer on validation evidence (explain.methods/layer: auto)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.explain.selection import AUTO_METHODS, MIN_MASKED, Choice, candidate_layers, select
from tests.explain.nets import GEOMETRY, box, region_model, small_cnn, square_images


def _square_masks(rank: int, n: int) -> np.ndarray:
    masks = np.zeros((n,) + (GEOMETRY[rank]["size"],) * rank, np.uint8)
    masks[(slice(None), *box(rank, "square"))] = 1
    return masks


@pytest.mark.parametrize("rank", [2, 3])
def test_selection_prefers_a_faithful_localizing_candidate_and_records_the_evidence(rank):
    model = region_model(rank)
    images = square_images(rank, n=MIN_MASKED + 1)
    # two layers x two methods; the evidence decides
    choice = select(model, images, _square_masks(rank, len(images)), methods=("gradcam", "layercam"),
                    layers=("bright", "features"), fraction=0.1, n_random=3, seed=0, batch_size=4)
    assert isinstance(choice, Choice)
    assert len(choice.candidates) == 4
    chosen = [c for c in choice.candidates if c["chosen"]]
    assert len(chosen) == 1 and (chosen[0]["method"], chosen[0]["layer"]) == (choice.method, choice.layer)
    best = chosen[0]
    assert not best["deletion_flag"]
    assert best["pointing_game"] == max(c["pointing_game"] for c in choice.candidates
                                         if not c["deletion_flag"])
    assert best["pointing_game"] == 1.0
    assert "pointing game" in choice.rule and "pass the deletion check" in choice.rule
    record = choice.as_dict()
    assert record["split"] == "val" and record["n_masked"] == len(images)


def test_without_masks_the_largest_deletion_effect_wins():
    model = region_model(2)
    images = square_images(2, n=4)
    choice = select(model, images, None, methods=("gradcam", "hirescam"), layers=("features",),
                    fraction=0.1, n_random=3, seed=0, batch_size=4)
    best = max(choice.candidates, key=lambda c: c["deletion_difference"])
    assert choice.method == best["method"]
    assert "no lesion masks" in choice.rule
    assert all("pointing_game" not in c for c in choice.candidates)


def test_too_few_masks_do_not_drive_the_choice():
    model = region_model(2)
    images = square_images(2, n=4)
    masks = np.zeros((4, 32, 32), np.uint8)
    masks[0][box(2, "distractor")] = 1  # one (misleading) mask: below MIN_MASKED
    choice = select(model, images, masks, methods=("gradcam", "hirescam"), layers=("features",),
                    fraction=0.1, n_random=3, seed=0, batch_size=4)
    assert "no lesion masks" in choice.rule


def test_fusion_is_one_candidate_and_errors_are_clear():
    model = small_cnn(2, size=32)
    images = np.random.default_rng(0).uniform(0, 1, (3, 32, 32, 1)).astype(np.float32)
    choice = select(model, images, None, methods=AUTO_METHODS, layers=("first", "last"), fraction=0.1,
                    n_random=2, seed=0, batch_size=4)
    assert sum(c["method"] == "layercam-fusion" for c in choice.candidates) == 1
    assert len(choice.candidates) == 2 * (len(AUTO_METHODS) - 1) + 1
    with pytest.raises(ValueError, match="no validation case"):
        select(model, images[:0], None, methods=("gradcam",), layers=("last",), fraction=0.1,
               n_random=2, seed=0, batch_size=4)


def test_candidate_layers_are_the_coarsest_resolutions_fine_to_coarse():
    from pipeline.models import build_model

    model = build_model(kind="2d", backbone="resnet18", input_shape=(128, 128, 1), n_outputs=1,
                        activation="sigmoid", base_width=8)
    assert candidate_layers(model) == ("conv2_block2_out", "conv3_block2_out", "conv4_block2_out",
                                       "conv5_block2_out")
    assert candidate_layers(model, n=2) == ("conv4_block2_out", "conv5_block2_out")
    volume = build_model(kind="3d", backbone="resnet18_3d", input_shape=(16, 32, 32, 1), n_outputs=1,
                         activation="sigmoid", base_width=4)
    names = candidate_layers(volume)
    cells = [min(volume.get_layer(n).output.shape[1:4]) for n in names]
    assert len(names) >= 1 and min(cells) >= 2 and cells == sorted(cells, reverse=True)
