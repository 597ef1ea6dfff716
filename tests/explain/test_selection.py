"""Choosing the explanation method and layer on validation evidence (explain.methods/layer: auto)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.explain.selection import AUTO_METHODS, MIN_MASKED, Choice, candidate_layers, choose, select
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
    assert "pointing game" in choice.rule and "IoU" in choice.rule
    assert "pass the deletion check" in choice.rule
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


def _row(pointing, iou, *, flag=False, drop=0.1, name="m"):
    return {"method": name, "layer": "l", "pointing_game": pointing, "iou": iou, "deletion_flag": flag,
            "deletion_difference": drop}


def test_a_pointing_game_within_one_standard_error_lets_the_iou_decide():
    # cxr-like validation: 29 masked cases, best pointing 0.79 (SE 0.075)
    sharp = _row(0.76, 0.24, name="sharp")
    rows = [_row(0.79, 0.07, name="points"), sharp, _row(0.52, 0.30, name="worse-pointing")]
    best, rule = choose(rows, n_masked=29)
    assert best is sharp
    assert "one standard error (0.08)" in rule and "best pointing game (0.79)" in rule
    # outside the margin the pointing game wins, whatever the IoU
    best, _ = choose([_row(0.79, 0.07, name="points"), _row(0.66, 0.24)], n_masked=29)
    assert best["method"] == "points"
    # a flagged candidate is not chosen while another passes
    best, rule = choose([_row(1.0, 0.9, flag=True), _row(0.5, 0.1, name="faithful")], n_masked=29)
    assert best["method"] == "faithful" and rule.endswith("pass the deletion check")
    best, rule = choose([_row(1.0, 0.9, flag=True, name="a"), _row(0.5, 0.1, flag=True)], n_masked=29)
    assert best["method"] == "a" and "no candidate passed" in rule
    with pytest.raises(ValueError, match="no candidate"):
        choose([], n_masked=3)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.floats(0, 1)), st.one_of(st.none(), st.floats(0, 1)),
                          st.booleans(), st.floats(-1, 1)), min_size=1, max_size=12),
       st.integers(1, 200))
def test_the_choice_is_never_clearly_worse_at_pointing_and_prefers_faithful_maps(specs, n):
    rows = [_row(p, i, flag=f, drop=d, name=str(k)) for k, (p, i, f, d) in enumerate(specs)]
    best, _ = choose(rows, n_masked=n)
    pool = [r for r in rows if not r["deletion_flag"]] or rows
    assert best in pool
    def key(v):
        return -1.0 if v is None else v

    top = max(key(r["pointing_game"]) for r in pool)
    mine = key(best["pointing_game"])
    assert mine >= top - np.sqrt(max(top, 0) * (1 - max(top, 0)) / n) - 1e-9
    # no candidate as good at pointing has a higher IoU
    for r in pool:
        if key(r["pointing_game"]) >= mine and r is not best:
            assert key(r["iou"]) <= key(best["iou"])


@pytest.mark.parametrize(("rank", "tta"), [(2, "none"), (2, "flip_shift"), (3, "flip")])
def test_methods_of_one_gradient_pass_share_it_and_give_the_same_maps(rank, tta):
    """HiResCAM, LayerCAM and (3D) Grad-CAM read the same activations and gradients: computed
    together they are bit for bit what each method gives alone, with or without view averaging,
    over batches of mixed classes."""
    from pipeline.explain.gradcam import Explainer

    model = small_cnn(rank, size=16 if rank == 3 else 32, n_outputs=3, activation="softmax")
    images = np.random.default_rng(rank).uniform(0, 1, (5,) + model.inputs[0].shape[1:]).astype(np.float32)
    explainer = Explainer(model, layer="first")
    methods = ("hirescam", "layercam") + (("gradcam",) if rank == 3 else ())
    together = explainer.shared_maps(images, methods, batch_size=2, tta=tta)
    assert list(together) == list(methods)
    for method in methods:
        np.testing.assert_array_equal(together[method], explainer.maps(images, method=method,
                                                                        batch_size=2, tta=tta))
    not_shared = ("gradcam",) if rank == 2 else ("gradcam++",)  # 2D Grad-CAM is tf-explain's
    with pytest.raises(ValueError, match="compiled gradient pass"):
        explainer.shared_maps(images, ("layercam", *not_shared))


def test_selection_takes_one_gradient_pass_per_layer_for_the_methods_that_share_it(monkeypatch):
    from pipeline.explain.gradcam import Explainer

    passes: list[tuple[str, ...]] = []
    original = Explainer.activations_and_gradients

    def counted(self, images, class_index, layers):
        passes.append(tuple(layers))
        return original(self, images, class_index, layers)

    monkeypatch.setattr(Explainer, "activations_and_gradients", counted)
    model = small_cnn(3, size=16)
    images = np.random.default_rng(0).uniform(0, 1, (3, 16, 16, 16, 1)).astype(np.float32)
    choice = select(model, images, None, methods=("gradcam", "hirescam", "layercam"),
                    layers=("first", "last"), fraction=0.1, n_random=2, seed=0, batch_size=4)
    # the rows keep the candidates' order (method by method), although computed layer by layer
    assert [(c["method"], c["layer"]) for c in choice.candidates] == [
        (m, layer) for m in ("gradcam", "hirescam", "layercam") for layer in ("first", "last")]
    assert sorted(passes) == [("first",), ("last",)]  # one batch per layer, not three
