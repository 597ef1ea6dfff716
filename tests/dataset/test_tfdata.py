from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from pipeline.augment import DEFAULT_3D, Augmenter, resolve_spec
from pipeline.dataset.store import ArrayWriter, open_array
from pipeline.dataset.tfdata import benchmark_throughput, make_dataset

GEOMETRIC_2D = [{"transform": "Affine", "p": 1.0, "rotate": [-15, 15], "scale": [0.9, 1.1],
                 "translate_percent": [-0.1, 0.1]},
                {"transform": "HorizontalFlip", "p": 0.5}]
NOISY_2D = GEOMETRIC_2D + [{"transform": "RandomBrightnessContrast", "p": 1.0}]


def _write(path, samples: list[np.ndarray]) -> np.ndarray:
    with ArrayWriter(path, capacity=len(samples), item_shape=samples[0].shape, dtype="uint8") as writer:
        for sample in samples:
            writer.append(sample)
    return open_array(path)


def _labelled_store(tmp_path, n: int, item_shape: tuple[int, ...]) -> np.ndarray:
    """Row r is constant with value r + 1: the label can be read back from the pixels."""
    return _write(tmp_path / "images.npy", [np.full(item_shape, r + 1, np.uint8) for r in range(n)])


def _noise_store(tmp_path, n: int, item_shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(0)
    samples = [rng.integers(0, 256, item_shape, dtype=np.uint8) for _ in range(n)]
    return _write(tmp_path / "images.npy", samples)


def _patch_store(tmp_path, n: int, item_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Row r: a box of value 100 + r exactly under its mask, on a zero background."""
    rng = np.random.default_rng(1)
    images, masks = [], []
    for r in range(n):
        mask = np.zeros(item_shape, np.uint8)
        box = tuple(slice(int(s), int(s) + int(e)) for s, e in
                    ((rng.integers(0, size // 2), rng.integers(max(1, size // 4), size // 2))
                     for size in item_shape[:-1]))
        mask[box] = 1
        images.append(mask * np.uint8(100 + r))
        masks.append(mask)
    return _write(tmp_path / "images.npy", images), _write(tmp_path / "masks.npy", masks)


def _targets(indices: np.ndarray) -> np.ndarray:
    return np.stack([indices, -indices], axis=1).astype(np.float32)


def _epoch(ds) -> list[tuple[np.ndarray, ...]]:
    return [tuple(t.numpy() for t in batch) for batch in ds]


def _samples(ds) -> tuple[np.ndarray, ...]:
    batches = _epoch(ds)
    return tuple(np.concatenate(parts) for parts in zip(*batches, strict=True))


class CountingArray:
    """Array stand-in that records every read and refuses to be converted as a whole."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.keys = array, []
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        self.keys.append(key)
        return self.array[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was materialised")


def test_training_epoch_visits_each_sample_once_with_aligned_targets(tmp_path):
    images = _labelled_store(tmp_path, 37, (6, 5, 1))
    indices = np.random.default_rng(0).permutation(37)[:29]
    ds = make_dataset(images, _targets(indices), indices, batch_size=8, training=True, seed=0)
    batches = _epoch(ds)
    assert len(ds) == 4 and [len(x) for x, _ in batches] == [8, 8, 8, 5]  # nothing dropped, no repeat
    x, y = (np.concatenate(parts) for parts in zip(*batches, strict=True))
    assert x.dtype == np.float32 and x.shape == (29, 6, 5, 1) and y.dtype == np.float32 and y.shape == (29, 2)
    assert sorted(y[:, 0].astype(int)) == sorted(indices)  # each sample exactly once
    assert not np.array_equal(y[:, 0], indices)  # shuffled
    np.testing.assert_allclose(x * 255, np.broadcast_to(y[:, :1, None, None] + 1, x.shape), atol=1e-4)
    np.testing.assert_array_equal(y[:, 1], -y[:, 0])


def test_evaluation_keeps_the_order_of_indices_and_does_not_augment(tmp_path):
    images = _noise_store(tmp_path, 20, (8, 8, 1))
    indices = np.array([7, 3, 19, 0, 11, 4, 5])
    ds = make_dataset(images, _targets(indices), indices, batch_size=3, training=False, seed=0,
                      augmenter=Augmenter(NOISY_2D, kind="2d"), deterministic=False)
    x, y = _samples(ds)
    np.testing.assert_array_equal(y[:, 0], indices)
    np.testing.assert_array_equal(x, images[indices].astype(np.float32) / 255)


def test_order_and_augmentation_come_from_the_seed(tmp_path):
    images = _noise_store(tmp_path, 24, (16, 16, 1))
    indices = np.arange(24)

    def dataset(seed):
        return make_dataset(images, _targets(indices), indices, batch_size=5, training=True, seed=seed,
                            augmenter=Augmenter(NOISY_2D, kind="2d"))

    first, again, other = _epoch(dataset(3)), _epoch(dataset(3)), _epoch(dataset(4))
    for a, b in zip(first, again, strict=True):
        for part_a, part_b in zip(a, b, strict=True):
            np.testing.assert_array_equal(part_a, part_b)
    x1, y1 = _samples(dataset(3))
    x_other, y_other = (np.concatenate(p) for p in zip(*other, strict=True))
    assert not np.array_equal(y1, y_other)
    ds = dataset(3)
    (x_e1, y_e1), (x_e2, y_e2) = _samples(ds), _samples(ds)  # two epochs of one dataset
    np.testing.assert_array_equal(x_e1, x1)
    assert not np.array_equal(y_e1[:, 0], y_e2[:, 0])  # reshuffled
    by_label_e1 = {int(k): v for k, v in zip(y_e1[:, 0], x_e1, strict=True)}
    by_label_e2 = {int(k): v for k, v in zip(y_e2[:, 0], x_e2, strict=True)}
    assert sum(not np.array_equal(by_label_e1[k], by_label_e2[k]) for k in indices) > 20  # re-augmented


def test_content_does_not_depend_on_thread_scheduling(tmp_path):
    images = _noise_store(tmp_path, 30, (16, 16, 1))
    indices = np.arange(30)
    results = []
    for deterministic in (True, False):
        ds = make_dataset(images, _targets(indices), indices, batch_size=4, training=True, seed=9,
                          augmenter=Augmenter(NOISY_2D, kind="2d"), deterministic=deterministic)
        x, y = _samples(ds)
        results.append({int(k): v for k, v in zip(y[:, 0], x, strict=True)})
    assert results[0].keys() == results[1].keys()
    for k in results[0]:
        np.testing.assert_array_equal(results[0][k], results[1][k])


def _check_masks_follow_images(x, y, m) -> None:
    assert m.dtype == np.uint8 and m.shape == x.shape and set(np.unique(m)) <= {0, 1}
    for xi, yi, mi in zip(x, y, m, strict=True):
        on = mi.astype(bool)
        assert on.any()
        # The box value encodes the row: x, y and m are the same sample and moved together.
        assert abs(np.median(xi[on]) * 255 - (100 + yi[0])) < 1
        assert (xi[~on] < 0.5 * (100 + yi[0]) / 255).mean() > 0.97


def test_masks_stay_aligned_through_augmentation(tmp_path):
    images, masks = _patch_store(tmp_path, 24, (32, 32, 1))
    indices = np.arange(3, 24)
    ds = make_dataset(images, _targets(indices), indices, batch_size=6, training=True, seed=1, masks=masks,
                      return_masks=True, augmenter=Augmenter(GEOMETRIC_2D, kind="2d"))
    x, y, m = _samples(ds)
    assert not np.array_equal(m, masks[y[:, 0].astype(int)])  # the masks were transformed
    _check_masks_follow_images(x, y, m)


def test_3d_volumes_with_masks_and_default_augmentation(tmp_path):
    images, masks = _patch_store(tmp_path, 10, (4, 16, 16, 1))
    indices = np.arange(10)
    geometric = [entry for entry in DEFAULT_3D if entry["transform"] in {"Affine", "HorizontalFlip"}]
    ds = make_dataset(images, _targets(indices), indices, batch_size=4, training=True, seed=2, masks=masks,
                      return_masks=True, augmenter=Augmenter(geometric, kind="3d"))
    assert ds.element_spec[0].shape.as_list() == [None, 4, 16, 16, 1]
    x, y, m = _samples(ds)
    assert x.shape == (10, 4, 16, 16, 1) and sorted(y[:, 0]) == list(indices)
    _check_masks_follow_images(x, y, m)
    full = make_dataset(images, _targets(indices), indices, batch_size=4, training=True, seed=2,
                        augmenter=Augmenter(DEFAULT_3D, kind="3d"))
    x, _ = _samples(full)
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1


@pytest.mark.parametrize(("kind", "item_shape"), [("2d", (32, 32, 1)), ("3d", (4, 16, 16, 1))])
def test_strong_preset_end_to_end(tmp_path, kind, item_shape):
    images, masks = _patch_store(tmp_path, 12, item_shape)
    indices = np.arange(12)
    augmenter = Augmenter(resolve_spec(None, preset="strong", kind=kind, key="tasks.t.train"), kind=kind)

    def by_row(seed):
        ds = make_dataset(images, _targets(indices), indices, batch_size=5, training=True, seed=seed,
                          masks=masks, return_masks=True, augmenter=augmenter, deterministic=False)
        x, y, m = _samples(ds)
        order = np.argsort(y[:, 0])
        return x[order], y[order], m[order]

    x, y, m = by_row(7)
    assert x.shape == (12, *item_shape) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert m.shape == x.shape and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1}
    np.testing.assert_array_equal(y[:, 0], indices)
    stored = images[indices].astype(np.float32) / 255
    assert sum(not np.array_equal(xi, si) for xi, si in zip(x, stored, strict=True)) >= 10  # augmented
    for xi, mi in zip(x, m, strict=True):  # the bright box still lies under its (moved) mask
        on = mi.astype(bool)
        if on.any() and (~on).any():
            assert xi[on].mean() > xi[~on].mean()
    for a, b in zip((x, y, m), by_row(7), strict=True):  # same seed, same content, any thread order
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(x, by_row(8)[0])


def test_reads_only_single_rows_of_the_memmap(tmp_path):
    stored_images, stored_masks = _patch_store(tmp_path, 40, (8, 8, 1))
    assert isinstance(stored_images, np.memmap) and isinstance(stored_masks, np.memmap)
    images, masks = CountingArray(stored_images), CountingArray(stored_masks)
    indices = np.arange(5, 35, 2)
    for training in (True, False):
        images.keys.clear()
        masks.keys.clear()
        ds = make_dataset(images, _targets(indices), indices, batch_size=4, training=training, seed=0,
                          masks=masks, return_masks=True, augmenter=Augmenter(GEOMETRIC_2D, kind="2d"))
        _epoch(ds)
        for array in (images, masks):
            assert all(isinstance(key, int) for key in array.keys)  # never a slice / fancy index
            assert Counter(array.keys) == Counter(indices.tolist())


def test_cache_in_memory_gives_the_same_batches(tmp_path):
    images, masks = _patch_store(tmp_path, 16, (8, 8, 1))
    indices = np.array([9, 2, 14, 3, 7])
    augmenter = Augmenter(GEOMETRIC_2D, kind="2d")
    outputs = []
    for cache in (False, True):
        ds = make_dataset(CountingArray(images), _targets(indices), indices, batch_size=2, training=True,
                          seed=5, masks=masks, return_masks=True, augmenter=augmenter, cache_in_memory=cache)
        outputs.append(_samples(ds))
    for a, b in zip(*outputs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_benchmark_throughput_counts_images_per_second(tmp_path):
    images = _noise_store(tmp_path, 10, (8, 8, 1))
    indices = np.arange(10)
    ds = make_dataset(images, _targets(indices), indices, batch_size=4, training=True, seed=0)
    assert benchmark_throughput(ds, steps=5) > 0
    with pytest.raises(ValueError, match="steps must be >= 1"):
        benchmark_throughput(ds, steps=0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"indices": np.array([0, 10])}, r"indices must lie in \[0, 10\)\. Received: min=0, max=10"),
    ({"targets": np.zeros((3, 1), np.float32)}, r"targets must be \(len\(indices\)=2, n_outputs\)"),
    ({"return_masks": True}, "return_masks=True needs masks"),
    ({"batch_size": 0}, "batch_size must be a positive int"),
    ({"seed": -1}, "seed must be a non-negative int"),
    ({"images": np.zeros((10, 4, 4, 1), np.float32)}, "images must be uint8"),
])
def test_bad_arguments_are_rejected(tmp_path, kwargs, message):
    args = {"images": _noise_store(tmp_path, 10, (4, 4, 1)), "targets": np.zeros((2, 1), np.float32),
            "indices": np.array([0, 1]), "batch_size": 2, "training": True, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_dataset(**args)
