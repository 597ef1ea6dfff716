"""tf.data input pipeline over the memory-mapped array store.

Samples are read one at a time from the (memory-mapped) store inside the map function, so the
dataset never holds more than the prefetch and shuffle of small indices in memory, whatever the
store size. Training order and augmentation come from an explicit seed: epoch ``e`` visits the
selected samples in the order of ``default_rng([seed, e]).permutation`` and sample ``j`` is
augmented with a seed drawn from the same generator, so results do not depend on thread
scheduling. ``e`` counts the iterations (``iter()`` calls) of the returned dataset object:
Keras starts one per epoch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

    from pipeline.augment import Augmenter

_SEED_HIGH = 2**62


def make_dataset(images: np.ndarray, targets: np.ndarray, indices: np.ndarray, *, batch_size: int,
                 training: bool, seed: int, augmenter: Augmenter | None = None,
                 masks: np.ndarray | None = None, return_masks: bool = False, deterministic: bool = True,
                 cache_in_memory: bool = False) -> tf.data.Dataset:
    """Build the batched input pipeline for the rows ``indices`` of ``images``.

    Args:
        images: uint8 store array (N, H, W, C) or (N, D, H, W, C), value v meaning intensity
            v/255; normally a memmap from :func:`pipeline.dataset.store.open_array`. Only
            ``shape``, ``dtype``, ``ndim`` and single-row ``images[i]`` reads are used.
        targets: (N_sel, n_outputs) targets, row j belonging to ``indices[j]``; cast to float32.
        indices: (N_sel,) int rows of ``images`` to use.
        batch_size: Samples per batch; the last batch may be smaller (nothing is dropped).
        training: True: seeded reshuffle every epoch and augmentation. False: the order of
            ``indices``, no augmentation, so predictions align with ``indices``.
        seed: Non-negative int seeding order and augmentation.
        augmenter: Applied to each training sample (and its mask); ignored when not training.
        masks: uint8 0/1 store array shaped like ``images``; needed when ``return_masks``.
        return_masks: Also yield the (augmented) masks.
        deterministic: Passed to ``map``; False lets fast samples overtake slow ones (order may
            then vary, each sample's content does not). Always True when not training.
        cache_in_memory: Read the selected rows into RAM once, at construction (only for data
            that fits in memory).

    Returns:
        A dataset of ``(x, y)`` or ``(x, y, m)``: x float32 (B, *item_shape) in [0, 1],
        y float32 (B, n_outputs), m uint8 (B, *item_shape[:-1], 1); one pass per epoch (no repeat).

    Raises:
        ValueError: Inconsistent shapes, out-of-range indices, bad batch size or seed.
    """
    import tensorflow as tf

    indices, targets = _check_inputs(images, targets, indices, masks=masks, return_masks=return_masks,
                                     batch_size=batch_size, seed=seed)
    if cache_in_memory:
        images, masks, indices = _cached(images, masks if return_masks else None, indices)
    reader = _SampleReader(images, targets, indices, masks=masks if return_masks else None,
                           augmenter=augmenter if training else None)
    ds = _positions(len(indices), training=training, seed=seed)
    ds = ds.map(reader.tf_map, num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=deterministic or not training)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def benchmark_throughput(ds: tf.data.Dataset, steps: int) -> float:
    """Images per second delivered by ``ds`` (no model), over ``steps`` batches.

    The first batch (pipeline start-up) is not timed; the dataset is repeated if it has fewer
    than ``steps + 1`` batches.

    Raises:
        ValueError: ``steps`` < 1.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1. Received: steps={steps}")
    iterator = iter(ds.repeat())
    next(iterator)
    count = 0
    start = time.perf_counter()
    for _ in range(steps):
        count += int(next(iterator)[0].shape[0])
    return count / (time.perf_counter() - start)


def _positions(size: int, *, training: bool, seed: int) -> tf.data.Dataset:
    """Scalar int64 pairs (position in ``indices``, augmentation seed), one pass per epoch."""
    import tensorflow as tf

    if not training:
        return tf.data.Dataset.range(size).map(lambda j: (j, tf.zeros((), tf.int64)))
    signature = (tf.TensorSpec((None,), tf.int64), tf.TensorSpec((None,), tf.int64))
    ds = tf.data.Dataset.from_generator(_EpochPlan(size, seed=seed), output_signature=signature)
    # Known cardinality gives len(ds) and Keras progress bars.
    return ds.unbatch().apply(tf.data.experimental.assert_cardinality(size))


class _EpochPlan:
    """Callable for ``Dataset.from_generator``: each call is the next epoch's (positions, seeds)."""

    def __init__(self, size: int, *, seed: int) -> None:
        self.size = size
        self.seed = seed
        self._epoch = 0
        self._lock = threading.Lock()

    def __call__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        with self._lock:
            epoch, self._epoch = self._epoch, self._epoch + 1
        yield self.epoch(epoch)

    def epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions in visiting order, augmentation seed of each visited position), int64."""
        rng = np.random.default_rng([self.seed, epoch])
        sample_seeds = rng.integers(0, _SEED_HIGH, size=self.size, dtype=np.int64)
        order = rng.permutation(self.size).astype(np.int64)
        return order, sample_seeds[order]


class _SampleReader:
    """Reads (and augments) single samples; wrapped into the dataset by :meth:`tf_map`."""

    def __init__(self, images: Any, targets: np.ndarray, indices: np.ndarray, *, masks: Any | None,
                 augmenter: Augmenter | None) -> None:
        self.images = images
        self.targets = targets
        self.indices = indices
        self.masks = masks
        self.augmenter = augmenter
        self.item_shape = tuple(int(s) for s in images.shape[1:])

    def read(self, position: np.int64, seed: np.int64) -> tuple[np.ndarray, ...]:
        row = int(self.indices[int(position)])
        x = np.asarray(self.images[row], dtype=np.float32) / np.float32(255.0)
        m = None if self.masks is None else np.array(self.masks[row], dtype=np.uint8)
        if self.augmenter is not None:
            x, m = self.augmenter(x, m, seed=int(seed))
        y = self.targets[int(position)]
        return (x, y) if m is None else (x, y, m)

    def tf_map(self, position: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, ...]:
        import tensorflow as tf

        tout = [tf.float32, tf.float32] + ([tf.uint8] if self.masks is not None else [])
        out = tf.numpy_function(self.read, [position, seed], tout, name="read_sample")
        shapes = [self.item_shape, self.targets.shape[1:], self.item_shape[:-1] + (1,)]
        return tuple(tf.ensure_shape(t, s) for t, s in zip(out, shapes, strict=False))


def _check_inputs(images: Any, targets: np.ndarray, indices: np.ndarray, *, masks: Any | None,
                  return_masks: bool, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    indices = np.asarray(indices)
    targets = np.asarray(targets, dtype=np.float32)
    if images.ndim not in (4, 5) or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, C) or (N, D, H, W, C). "
                         f"Received: dtype={images.dtype}, shape={images.shape}")
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"indices must be a 1D int array. "
                         f"Received: dtype={indices.dtype}, shape={indices.shape}")
    if indices.size and (indices.min() < 0 or indices.max() >= images.shape[0]):
        raise ValueError(f"indices must lie in [0, {images.shape[0]}). "
                         f"Received: min={indices.min()}, max={indices.max()}")
    if targets.ndim != 2 or targets.shape[0] != indices.shape[0]:
        raise ValueError(f"targets must be (len(indices)={indices.shape[0]}, n_outputs). "
                         f"Received: {targets.shape}")
    if return_masks and masks is None:
        raise ValueError("return_masks=True needs masks. Received: masks=None")
    if masks is not None and tuple(masks.shape) != tuple(images.shape[:-1]) + (1,):
        raise ValueError(f"masks must have shape {tuple(images.shape[:-1]) + (1,)}. Received: {masks.shape}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int. Received: seed={seed!r}")
    return indices.astype(np.int64), targets


def _cached(images: Any, masks: Any | None,
            indices: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Selected rows in RAM (in ``indices`` order) and the new row numbers ``0..N_sel-1``."""
    cached_masks = None if masks is None else _gather(masks, indices)
    return _gather(images, indices), cached_masks, np.arange(indices.size, dtype=np.int64)


def _gather(array: Any, indices: np.ndarray) -> np.ndarray:
    out = np.empty((indices.size, *array.shape[1:]), dtype=array.dtype)
    for j, row in enumerate(indices):
        out[j] = array[int(row)]
    return out
