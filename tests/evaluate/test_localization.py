from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.evaluate import (
    LocalizationScores,
    binarize_map,
    iou,
    localization_metrics,
    localization_scores,
    mask_iou,
    pointing_hit,
)


def _case_2d():
    heat = np.zeros((4, 4))
    heat[0:2, 0:2] = 1.0
    heat[0, 2] = 0.4  # below 0.5 x max: not part of the binarised map
    mask = np.zeros((4, 4), np.uint8)
    mask[1:3, 1:3] = 1
    return heat, mask


def test_iou_by_hand_2d():
    heat, mask = _case_2d()
    # map {(0,0),(0,1),(1,0),(1,1)}, mask {(1,1),(1,2),(2,1),(2,2)}: 1 shared, 7 in the union
    assert iou(heat, mask) == pytest.approx(1 / 7)
    assert iou(heat, mask, threshold=0.3) == pytest.approx(1 / 8)  # (0,2) joins the map
    assert iou(heat, mask[..., None]) == pytest.approx(1 / 7)  # (H, W, 1) mask as in masks.npy
    assert pointing_hit(heat, mask) == 0.0  # the first maximum, (0, 0), is outside the mask
    heat[1, 1] = 2.0
    assert pointing_hit(heat, mask) == 1.0


def test_pointing_game_follows_the_maximum():
    heat, mask = _case_2d()
    heat[2, 2] = 5.0
    assert pointing_hit(heat, mask) == 1.0
    heat[3, 3] = 9.0
    assert pointing_hit(heat, mask) == 0.0


def test_iou_and_pointing_3d():
    heat = np.zeros((6, 8, 8))
    heat[2:4, 2:6, 2:6] = 0.9  # 32 voxels
    heat[3, 3, 3] = 1.0
    mask = np.zeros((6, 8, 8, 1), np.uint8)
    mask[2:4, 4:8, 2:6] = 1  # 32 voxels, 16 shared
    assert iou(heat, mask) == pytest.approx(16 / 48)
    assert pointing_hit(heat, mask) == 0.0  # peak (3,3,3): H index 3 < 4
    mask[3, 3, 3] = 1
    assert pointing_hit(heat, mask) == 1.0


def test_degenerate_maps_and_masks():
    mask = np.zeros((5, 5), np.uint8)
    mask[0, 0] = 1
    zero = np.zeros((5, 5))
    assert iou(zero, mask) == 0.0
    assert pointing_hit(zero, mask) == 0.0  # a flat zero map points nowhere, even at (0, 0)
    nan_map = np.full((5, 5), np.nan)
    assert iou(nan_map, mask) == 0.0 and pointing_hit(nan_map, mask) == 0.0
    empty = np.zeros((5, 5), np.uint8)
    assert np.isnan(pointing_hit(np.ones((5, 5)), empty))
    assert np.isnan(mask_iou(empty, empty))
    assert not binarize_map(-np.ones((3, 3))).any()


@pytest.mark.parametrize("heat,mask", [(np.zeros((4, 4)), np.zeros((4, 5))),
                                       (np.zeros(4), np.zeros(4)),
                                       (np.zeros((2, 2, 2, 2)), np.zeros((2, 2, 2, 2)))])
def test_shape_errors(heat, mask):
    with pytest.raises(ValueError, match="same 2D or 3D shape"):
        iou(heat, mask)


@pytest.mark.parametrize("threshold", [0.0, 1.5, -0.1])
def test_threshold_must_be_a_fraction(threshold):
    with pytest.raises(ValueError, match="fraction of the map's maximum"):
        binarize_map(np.ones((2, 2)), threshold)


masks2d = arrays(np.bool_, st.tuples(st.integers(1, 6), st.integers(1, 6)))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_iou_properties(data):
    a = data.draw(masks2d)
    b = data.draw(arrays(np.bool_, a.shape))
    v = mask_iou(a, b)
    assert np.isnan(v) == (not a.any() and not b.any())
    if not np.isnan(v):
        assert 0.0 <= v <= 1.0
        assert v == mask_iou(b, a)
    if a.any():
        assert mask_iou(a, a) == 1.0
        assert iou(a.astype(float), a) == 1.0  # a binary map binarises to itself


@settings(max_examples=60, deadline=None)
@given(heat=arrays(np.float64, (5, 6), elements=st.one_of(st.just(0.0), st.floats(1e-6, 10))),
       mask=arrays(np.bool_, (5, 6)), scale=st.sampled_from([2.0 ** e for e in range(-8, 9)]),
       t=st.floats(0.05, 1.0))
def test_iou_ignores_the_map_scale(heat, mask, scale, t):
    # Powers of two scale exactly, so no float rounding can move a value across the threshold
    # (values kept >= 1e-6: a subnormal map would underflow to all zero).
    assert iou(heat * scale, mask, t) == pytest.approx(iou(heat, mask, t), nan_ok=True)


def test_batched_matches_single_cases_across_chunks(monkeypatch):
    monkeypatch.setattr(sys.modules["pipeline.evaluate.localization"], "CHUNK", 4)
    rng = np.random.default_rng(0)
    heat = rng.random((11, 6, 7, 1))
    masks = rng.random((11, 6, 7, 1)) > 0.7
    masks[3] = False  # no lesion: not scored
    scores = localization_scores(heat, masks, threshold=0.6)
    assert scores.scored.tolist() == [i != 3 for i in range(11)]
    for i in range(11):
        assert scores.hit[i] == pytest.approx(pointing_hit(heat[i], masks[i]), nan_ok=True)
        if i != 3:  # an empty mask is not scored (NaN), although its plain IoU with a map is 0
            assert scores.iou[i] == pytest.approx(iou(heat[i], masks[i], 0.6))
    assert np.isnan(scores.iou[3]) and iou(heat[3], masks[3], 0.6) == 0.0


def test_memmapped_3d_inputs(tmp_path):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "h.npy", rng.random((3, 4, 5, 6)).astype(np.float32))
    np.save(tmp_path / "m.npy", (rng.random((3, 4, 5, 6, 1)) > 0.5).astype(np.uint8))
    h = np.load(tmp_path / "h.npy", mmap_mode="r")
    m = np.load(tmp_path / "m.npy", mmap_mode="r")
    scores = localization_scores(h, m)
    assert scores.iou == pytest.approx([iou(h[i], m[i]) for i in range(3)])


def test_localization_metrics_mean_and_patient_bootstrap():
    scores = LocalizationScores(iou=np.array([0.2, 0.4, np.nan, 0.6, 0.8, 0.5]),
                                hit=np.array([1.0, 0.0, np.nan, 1.0, 1.0, 0.0]))
    patients = ["P01", "P01", "P02", "P03", "P04", "P04"]
    out = localization_metrics(scores, patients, n_boot=300, seed=0, threshold=0.5)
    assert out["iou"] == pytest.approx(0.5)
    assert out["pointing_game"] == pytest.approx(0.6)
    assert out["n_localized"] == 5 and out["n_localized_patients"] == 3
    assert out["iou_ci_low"] <= out["iou"] <= out["iou_ci_high"]
    assert out["pointing_game_ci_low"] <= 0.6 <= out["pointing_game_ci_high"]
    assert out["localization_valid_resamples"] == 300 and out["iou_threshold"] == 0.5
    assert localization_metrics(scores, patients, n_boot=300, seed=0, threshold=0.5) == out

    none = localization_metrics(LocalizationScores(np.array([np.nan]), np.array([np.nan])), ["P01"])
    assert np.isnan(none["iou"]) and none["n_localized"] == 0
    with pytest.raises(ValueError, match="one entry per case"):
        localization_metrics(scores, patients[:2])


def test_energy_share_of_exact_flat_and_offset_maps():
    mask = np.zeros((1, 6, 8, 8), np.uint8)
    mask[0, 2:4, 2:5, 2:5] = 1
    chance = mask.mean()
    exact = localization_scores(mask.astype(np.float32), mask)
    assert exact.energy[0] == pytest.approx(1.0) and exact.chance[0] == pytest.approx(chance)
    flat = localization_scores(np.ones_like(mask, np.float32), mask)
    assert flat.energy[0] == pytest.approx(chance)
    # brighter on the lesion but peaking elsewhere: pointing game misses, energy sees it
    offset = np.where(mask > 0, 0.8, 0.05).astype(np.float32)
    offset[0, 5, 7, 7] = 1.0
    scores = localization_scores(offset, mask)
    assert scores.hit[0] == 0.0 and scores.energy[0] > 5 * chance
    blank = localization_scores(np.zeros_like(mask, np.float32), mask)
    assert blank.energy[0] == 0.0
    empty = localization_scores(offset, np.zeros_like(mask))
    assert np.isnan(empty.energy[0]) and np.isnan(empty.chance[0])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_energy_share_is_a_fraction_and_ignores_scale(seed):
    rng = np.random.default_rng(seed)
    heat = rng.normal(size=(2, 5, 7)).astype(np.float32)
    mask = (rng.random((2, 5, 7)) > 0.7).astype(np.uint8)
    mask[:, 0, 0] = 1
    a = localization_scores(heat, mask)
    b = localization_scores(heat * 7.5, mask)
    assert np.all((a.energy >= 0) & (a.energy <= 1))
    assert np.allclose(a.energy, b.energy)


def test_localization_metrics_report_energy_and_its_chance_level():
    scores = LocalizationScores(iou=np.array([0.1, 0.3]), hit=np.array([0.0, 1.0]),
                                energy=np.array([0.2, 0.4]), chance=np.array([0.01, 0.03]))
    out = localization_metrics(scores, ["P1", "P2"], n_boot=200, seed=0)
    assert out["energy_in_mask"] == pytest.approx(0.3) and out["energy_chance"] == pytest.approx(0.02)
    assert out["energy_in_mask_ci_low"] <= 0.3 <= out["energy_in_mask_ci_high"]


def test_pointing_game_without_hits_gets_an_exact_interval_and_a_chance_level():
    """No heatmap peak in the lesion (0 of 14): the bootstrap reads 0.000 to 0.000; the exact
    interval does not, and both chance levels are the mean mask share."""
    n = 14
    scores = LocalizationScores(iou=np.full(n, 0.02), hit=np.zeros(n), energy=np.full(n, 0.01),
                                chance=np.linspace(0.001, 0.003, n))
    out = localization_metrics(scores, [f"P{i % 13}" for i in range(n)], n_boot=200, seed=0)
    assert out["pointing_game"] == 0.0 and out["pointing_game_ci_method"] == "clopper-pearson"
    assert out["pointing_game_ci_low"] == 0.0
    assert out["pointing_game_ci_high"] == pytest.approx(0.2316, abs=1e-3)  # exact 95%, 0 of 14
    assert out["iou_ci_method"] == out["energy_in_mask_ci_method"] == "bootstrap"
    assert out["pointing_game_chance"] == pytest.approx(0.002) == out["energy_chance"]
    some = localization_metrics(LocalizationScores(np.array([0.1, 0.3, 0.2]), np.array([1.0, 0.0, 1.0])),
                                ["P1", "P2", "P3"], n_boot=200, seed=0)
    assert some["pointing_game_ci_method"] == "bootstrap" and "pointing_game_chance" not in some
