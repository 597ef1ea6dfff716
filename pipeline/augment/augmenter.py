"""The :class:`Augmenter`: a seeded, thread-safe albumentations pipeline for one task kind."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.augment.spec import validate_spec
from pipeline.augment.stages import Stage, apply_stage, build_stages

_NDIM = {"2d": 3, "3d": 4}


class Augmenter:
    """Apply an augmentation spec to one image (and optionally its mask) per call.

    Transforms run in spec order, grouped into albumentations stages as described in
    :mod:`pipeline.augment.stages`. Geometry is shared between image and mask (nearest
    neighbour for the mask). Each call draws all its randomness from ``seed`` alone, so the
    output depends only on (spec, input, seed): not on earlier calls nor on threads.

    Thread safety: albumentations transforms hold per-call state, so a ``Compose`` must not be
    used by two calls at once. Each call borrows a set of stages from a pool (built on first use
    per input shape) and returns it afterwards, so there are as many copies as concurrent calls.
    A ``threading.local`` cache does not work here: tf.data runs ``numpy_function`` on C++
    threads whose Python thread state (and thus their ``threading.local`` data) is discarded
    after every call, which rebuilt the pipeline for every sample (about 4x slower).

    Args:
        spec: Transform specs (see :func:`validate_spec`); validated here.
        kind: "2d" for images (H, W, C), "3d" for volumes (D, H, W, C).
        key: Params path of ``spec`` for error messages.

    Raises:
        ValueError: Invalid ``kind`` or spec.
    """

    def __init__(self, spec: Sequence[Mapping[str, Any]], *, kind: str, key: str = "augment") -> None:
        self.spec = validate_spec(spec, kind=kind, key=key)
        self.kind = kind
        self._pool: dict[tuple[int, ...], list[list[Stage]]] = {}
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None, *,
                 seed: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Augment one sample.

        Args:
            image: float32 intensities in [0, 1], (H, W, C) for 2D or (D, H, W, C) for 3D.
                Not modified.
            mask: Optional uint8 0/1 mask with the image's shape (C == 1). Not modified.
            seed: Non-negative int; the same seed gives the same output.

        Returns:
            ``(image, mask)``: float32 of the input shape clipped to [0, 1], and the uint8 mask
            moved with exactly the same geometry (``None`` when no mask was given).

        Raises:
            ValueError: Wrong dtype, rank or mask shape; negative seed.
        """
        _check_sample(image, mask, kind=self.kind)
        seed = _check_seed(seed)
        generator, py_random = np.random.default_rng(seed), random.Random(seed)
        out, out_mask = image.copy(), (None if mask is None else mask.copy())
        spatial_shape = image.shape[:-1]
        stages = self._borrow(spatial_shape)
        try:
            for stage in stages:
                # One generator pair per call, shared by the stages: the draws follow spec order.
                stage[1].set_random_state(generator, py_random)
                out, out_mask = apply_stage(stage, out, out_mask)
        finally:
            self._give_back(spatial_shape, stages)
        return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False), out_mask

    def __repr__(self) -> str:
        return f"Augmenter(kind={self.kind!r}, spec={self.spec!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "kind": self.kind}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.spec, self.kind = state["spec"], state["kind"]
        self._pool, self._lock = {}, threading.Lock()

    def _borrow(self, spatial_shape: tuple[int, ...]) -> list[Stage]:
        with self._lock:
            free = self._pool.setdefault(spatial_shape, [])
            if free:
                return free.pop()
        return build_stages(self.spec, kind=self.kind, spatial_shape=spatial_shape)

    def _give_back(self, spatial_shape: tuple[int, ...], stages: list[Stage]) -> None:
        with self._lock:
            self._pool[spatial_shape].append(stages)


def _check_sample(image: np.ndarray, mask: np.ndarray | None, *, kind: str) -> None:
    ndim = _NDIM[kind]
    if not isinstance(image, np.ndarray) or image.dtype != np.float32 or image.ndim != ndim:
        shown = (getattr(image, "dtype", None), getattr(image, "shape", None))
        raise ValueError(f"image must be a float32 array of rank {ndim} for kind={kind!r}. "
                         f"Received: dtype, shape={shown}")
    if mask is None:
        return
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.shape != image.shape[:-1] + (1,):
        shown = (getattr(mask, "dtype", None), getattr(mask, "shape", None))
        raise ValueError(f"mask must be uint8 of shape {image.shape[:-1] + (1,)}. "
                         f"Received: dtype, shape={shown}")


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int. Received: seed={seed!r}")
    return int(seed)
