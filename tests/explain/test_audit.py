"""Shortcut audit: heat shares and flags on hand-made maps, invariants, and a trained shortcut.

The end-to-end test trains two tiny CNNs on synthetic radiographs: one where a bright "L" marker
appears only in positive images (and the lesion is faint), one without the marker (a visible
lesion). Grad-CAM of the first must sit on the marker and raise the model-level warning; the
second must not be flagged.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.explain.audit import audit_shares, shortcut_audit
from pipeline.explain.shortcut_regions import (
    REGIONS,
    audit_regions,
    chance_levels,
    heat_shares,
    restrict_to_fov,
)
from tests.explain.test_fov import chest_radiograph, ct_phantom, plant_letter

SIZE = 64


def radiographs(n: int, *, seed: int, positive: np.ndarray, marker: bool, lesion: float,
                pad: int = 5) -> np.ndarray:
    """float32 ``(n, SIZE, SIZE, 1)``: chests, a lesion of amplitude ``lesion`` in positives and,
    with ``marker``, an "L" near a top corner of positives (left or right at random)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, SIZE, SIZE, 1), np.float32)
    for i in range(n):
        image, _ = chest_radiograph(SIZE, seed=int(rng.integers(2**31)), pad=pad,
                                    lesion=lesion if positive[i] else 0.0)
        if marker and positive[i]:
            top, left = int(rng.integers(6, 10)), int(rng.integers(8, 11))
            plant_letter(image, top, left if rng.random() < 0.5 else SIZE - left - 5, size=6)
        out[i, ..., 0] = image
    return out


def _region_maps(regions, name: str) -> np.ndarray:
    """Maps with all their heat on region ``name`` (a flat 1 there)."""
    return regions.masks()[name].astype(np.float32)


@pytest.fixture(scope="module")
def marked():
    """Eight radiographs with an "L" each, and their audit regions."""
    images = radiographs(8, seed=0, positive=np.ones(8, bool), marker=True, lesion=0.0)
    return images, audit_regions(images, "2d")


# --- shares --------------------------------------------------------------------------------------

def test_flat_map_scores_the_chance_level(marked):
    images, regions = marked
    flat = np.ones(images.shape[:-1], np.float32)
    for region in regions.masks().values():
        assert np.allclose(heat_shares(flat, region), chance_levels(region))
    assert (chance_levels(regions.marker) > 0).all() and (chance_levels(regions.marker) < 0.05).all()


def test_heat_on_the_marker_flags_every_case(marked):
    images, regions = marked
    report = audit_shares(_region_maps(regions, "marker"), regions)
    assert all(case["marker"] == pytest.approx(1.0) and "marker" in case["flags"] for case in report["cases"])
    summary = report["summary"]
    assert summary["marker"]["flagged"] and summary["marker"]["n_flagged"] == 8
    assert summary["warning"].startswith("The model may be reading markers")
    assert "marker" in summary["flagged_regions"]


def test_heat_in_the_lungs_is_not_flagged(marked):
    images, regions = marked
    maps = np.zeros(images.shape[:-1], np.float32)
    maps[:, 28:44, 16:28] = 1.0  # the left lung
    report = audit_shares(maps, regions)
    assert report["summary"]["warning"] is None and report["summary"]["n_flagged"] == 0
    for case in report["cases"]:
        assert case["flags"] == [] and all(case[name] == 0 for name in REGIONS)


def test_heat_outside_the_body_and_on_the_border(marked):
    images, regions = marked
    maps = np.zeros(images.shape[:-1], np.float32)
    maps[:, 52:, 6:14] = 1.0  # the bottom left corner, beside the chest, mostly in the band
    report = audit_shares(maps, regions)
    assert report["summary"]["flagged_regions"] == ["border", "outside_body"]
    assert report["summary"]["warning"] == ("The model may be reading the image border and what lies "
                                            "outside the body, not anatomy")


def test_chance_level_guards_against_large_regions(marked):
    images, regions = marked
    # Half of the heat outside the body, but that is barely more than a flat map would put there.
    report = audit_shares(np.ones(images.shape[:-1], np.float32), regions)
    assert report["summary"]["n_flagged"] == 0


def test_model_flag_needs_enough_cases(marked):
    images, regions = marked
    maps = np.zeros(images.shape[:-1], np.float32)
    maps[:, 28:44, 16:28] = 1.0
    maps[:2] = _region_maps(regions, "marker")[:2]  # two cases read the marker
    summary = audit_shares(maps, regions)["summary"]
    assert summary["marker"]["n_flagged"] == 2 and not summary["marker"]["flagged"]  # min_cases = 3
    summary = audit_shares(maps, regions, min_cases=2)["summary"]
    assert summary["marker"]["flagged"]  # 2 of 8 cases >= case_fraction 0.25
    summary = audit_shares(maps, regions, min_cases=2, case_fraction=0.5)["summary"]
    assert not summary["marker"]["flagged"]


def test_report_is_json_with_the_documented_schema(marked):
    images, regions = marked
    report = shortcut_audit(_region_maps(regions, "marker"), images, "2d", indices=range(100, 108))
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    case = report["cases"][0]
    assert set(case) == {"index", *REGIONS, "chance", "flags"} and case["index"] == 100
    summary = report["summary"]
    assert {"n_cases", "n_with_heat", *REGIONS, "n_flagged", "flagged_regions", "warning",
            "settings"} <= set(summary)
    assert set(summary["marker"]) == {"share", "chance", "n_cases", "n_flagged", "flagged_fraction",
                                      "flagged"}
    assert summary["settings"]["marker_margin"] == 2  # 3 % of 64 px


def test_ct_audit_has_no_marker_region():
    volume, body, _ = ct_phantom((6, 32, 32))
    volumes = np.stack([volume, volume])[..., None]
    maps = np.zeros((2, 6, 32, 32), np.float32)
    maps[0][~body] = 1.0  # heat on the air around the patient
    maps[1][:, 12:18, 10:22] = 1.0  # heat in the chest
    report = shortcut_audit(maps, volumes, "3d")
    assert report["summary"]["marker"] is None and report["cases"][0]["marker"] is None
    assert "outside_body" in report["cases"][0]["flags"] and report["cases"][1]["flags"] == []


# --- invariants ----------------------------------------------------------------------------------

_maps = arrays(np.float32, (3, 12, 12), elements=st.floats(0.0, 1.0, width=32))
_masks = arrays(bool, (3, 12, 12))


@settings(max_examples=60, deadline=None)
@given(_maps, _masks, _masks)
def test_heat_shares_invariants(maps, a, b):
    share_a, share_b = heat_shares(maps, a), heat_shares(maps, b)
    assert ((share_a >= 0) & (share_a <= 1)).all()
    has_heat = maps.reshape(3, -1).sum(axis=1) > 0
    assert np.allclose((share_a + heat_shares(maps, ~a))[has_heat], 1.0)  # complementary regions
    union = heat_shares(maps, a | b)
    assert (union <= share_a + share_b + 1e-9).all() and (union >= np.maximum(share_a, share_b) - 1e-9).all()
    assert (heat_shares(np.zeros_like(maps), a) == 0).all()
    assert np.allclose(heat_shares(3.0 * maps, a), share_a)  # scale-free


@settings(max_examples=15, deadline=None)
@given(_maps, st.integers(0, 2**16))
def test_audit_invariants(maps, seed):
    image, _ = chest_radiograph(12, seed=seed)
    images = np.stack([image] * 3)
    report = shortcut_audit(maps, images, "2d")
    for case, m in zip(report["cases"], maps, strict=True):
        for name in REGIONS:
            assert 0.0 <= case[name] <= 1.0 and 0.0 <= case["chance"][name] <= 1.0
        if not m.any():
            assert case["flags"] == [] and all(case[name] == 0 for name in REGIONS)
    blank = shortcut_audit(np.zeros_like(maps), images, "2d")["summary"]
    assert blank["n_with_heat"] == 0 and blank["n_flagged"] == 0 and blank["warning"] is None
    assert blank["border"]["share"] is None


@settings(max_examples=40, deadline=None)
@given(_maps, _masks)
def test_restrict_to_fov(maps, fov):
    out = restrict_to_fov(maps, fov)
    assert out.dtype == np.float32 and not out[~fov].any()
    for m, o, f in zip(maps, out, fov, strict=True):
        if (m * f).max() > 1e-12:
            assert o.max() == pytest.approx(1.0)
            assert np.allclose(o, np.where(f, m, 0) / (m * f).max(), atol=1e-6)
        else:
            assert not o.any()


# --- errors --------------------------------------------------------------------------------------

def test_bad_arguments_are_rejected(marked):
    images, regions = marked
    maps = np.zeros(images.shape[:-1], np.float32)
    with pytest.raises(ValueError, match="grid"):
        shortcut_audit(maps[:, :32], images, "2d")
    with pytest.raises(ValueError, match="indices"):
        audit_shares(maps, regions, indices=[1, 2])
    with pytest.raises(ValueError, match="share_threshold"):
        audit_shares(maps, regions, share_threshold=1.0)
    with pytest.raises(ValueError, match="ratio_threshold"):
        audit_shares(maps, regions, ratio_threshold=0.5)
    with pytest.raises(ValueError, match="min_cases"):
        audit_shares(maps, regions, min_cases=0)
    with pytest.raises(ValueError, match="marker_margin"):
        audit_regions(images, "2d", marker_margin=-1)
    with pytest.raises(ValueError, match="same shape"):
        restrict_to_fov(maps, regions.body[:, :10])


# --- end to end: a model that reads the marker ---------------------------------------------------

def _train(images: np.ndarray, labels: np.ndarray, *, seed: int):
    """conv(8) -> max-pool -> conv(16) ``last`` -> global max -> sigmoid, a few epochs on CPU."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 1), name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="first")(inputs)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="last")(x)
    x = layers.GlobalMaxPooling2D(name="head_pool")(x)
    model = keras.Model(inputs, layers.Dense(1, activation="sigmoid", name="predictions")(x))
    model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    model.fit(images, labels.astype(np.float32), epochs=8, batch_size=8, verbose=0)
    return model


@pytest.mark.parametrize("marker", [True, False], ids=["marker-shortcut", "control"])
def test_audit_catches_a_model_that_reads_markers(marker):
    from pipeline.explain import Explainer

    labels = np.arange(96) % 2 == 1
    lesion = 0.1 if marker else 0.7  # faint with the marker (the marker is easier), visible without
    model = _train(radiographs(96, seed=1, positive=labels, marker=marker, lesion=lesion), labels, seed=0)
    positives = radiographs(16, seed=2, positive=np.ones(16, bool), marker=marker, lesion=lesion)
    negatives = radiographs(16, seed=3, positive=np.zeros(16, bool), marker=marker, lesion=lesion)
    p_pos, p_neg = model.predict(positives, verbose=0), model.predict(negatives, verbose=0)
    assert p_pos.mean() > 0.8 and p_pos.mean() - p_neg.mean() > 0.5  # both models learned their task

    report = shortcut_audit(Explainer(model, layer="last").maps(positives), positives, "2d")
    summary = report["summary"]
    if marker:
        unmarked = radiographs(16, seed=2, positive=np.ones(16, bool), marker=False, lesion=lesion)
        assert model.predict(unmarked, verbose=0).mean() < 0.5  # without its marker, no case is positive
        assert summary["marker"]["flagged"]
        assert summary["warning"].startswith("The model may be reading markers")
        assert sum("marker" in case["flags"] for case in report["cases"]) >= 12  # most positive cases
        assert summary["marker"]["share"] > 10 * summary["marker"]["chance"]
    else:
        assert summary["warning"] is None and summary["flagged_regions"] == []
        assert summary["n_flagged"] <= 2 and summary["marker"]["n_cases"] == 0  # no marker detected
