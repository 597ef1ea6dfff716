"""The geometry ingest applies to one sample, as one typed object, forward and inverse.

Ingest turns a source image or volume into the model's fixed grid:

- 2D (:class:`PadResize`): aspect-preserving resize by ``scale`` then centred zero padding
  (:func:`pipeline.preprocess.image.resize_with_pad`);
- 3D (:class:`ResampleCrop`): resampling from the source spacing to ``target_spacing``
  (:func:`pipeline.preprocess.volume.resample_to_spacing`), then a centred crop/pad to
  ``volume_shape`` (:func:`pipeline.preprocess.volume.crop_or_pad`).

Ingest records the object once per sample, in the manifest's ``geometry`` column (JSON,
:meth:`to_json`); the report, predict and export read it back with :func:`geometry_from_json`
and map model-grid arrays (heatmaps, masks) onto the source with :meth:`to_source` instead of
parsing loose manifest columns.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

#: Manifest column that holds a sample's geometry as JSON.
GEOMETRY_COLUMN = "geometry"


@dataclass(frozen=True)
class PadResize:
    """2D: the source ``(H, W)`` resized by ``scale`` and padded into ``output_shape``.

    A source pixel centre ``(y, x)`` lands at ``(y * scale + pad_top, x * scale + pad_left)``.
    """

    source_shape: tuple[int, int]
    output_shape: tuple[int, int]
    scale: float
    pad_top: int
    pad_left: int

    kind = "2d"

    @classmethod
    def fit(cls, source_shape: Sequence[int], output_shape: Sequence[int]) -> PadResize:
        """The geometry :func:`~pipeline.preprocess.image.resize_with_pad` applies (one object
        per shape pair: archives repeat a few detector sizes)."""
        return _pad_resize(int(source_shape[0]), int(source_shape[1]), int(output_shape[0]),
                           int(output_shape[1]))

    @property
    def content_shape(self) -> tuple[int, int]:
        """``(h, w)`` of the resized source inside the padding."""
        h = max(1, min(self.output_shape[0] - self.pad_top, round(self.source_shape[0] * self.scale)))
        w = max(1, min(self.output_shape[1] - self.pad_left, round(self.source_shape[1] * self.scale)))
        return h, w

    def to_source(self, grid: np.ndarray, *, nearest: bool, shape: Sequence[int] | None = None
                  ) -> np.ndarray:
        """A model-grid array (heatmap, mask) on the source's pixel grid: the padding cropped,
        the rest resized to ``shape`` (default: the source shape). ``nearest`` for masks
        (returned uint8 0/1); heatmaps are bilinear and clipped to [0, 1]."""
        import cv2

        shape = tuple(int(s) for s in (shape or self.source_shape))
        grid = np.asarray(grid)
        if tuple(grid.shape[:2]) != self.output_shape:
            raise ValueError(f"grid must be {self.output_shape}. Received: {grid.shape}")
        h, w = self.content_shape
        crop = np.ascontiguousarray(grid[self.pad_top:self.pad_top + h, self.pad_left:self.pad_left + w],
                                    dtype=np.float32)
        interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        out = cv2.resize(crop, (shape[1], shape[0]), interpolation=interp)
        return (out > 0.5).astype(np.uint8) if nearest else np.clip(out, 0.0, 1.0)

    def to_json(self) -> str:
        return self._json

    @functools.cached_property
    def _json(self) -> str:  # once per object (:meth:`PadResize.fit` reuses them)
        return _to_json(self)


@dataclass(frozen=True)
class ResampleCrop:
    """3D: the source ``(D, H, W)`` (canonical orientation) at ``source_spacing`` mm, resampled
    to ``target_spacing`` (``resampled_shape``), then centre-cropped/padded to ``output_shape``.

    Resampled voxel ``p`` is at model voxel ``p + offset`` per axis (when inside the grid).
    """

    source_shape: tuple[int, ...]
    source_spacing: tuple[float, ...]
    target_spacing: tuple[float, ...]
    resampled_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    crop_before: tuple[int, ...]
    pad_before: tuple[int, ...]

    kind = "3d"

    @property
    def offset(self) -> tuple[int, ...]:
        return tuple(p - c for p, c in zip(self.pad_before, self.crop_before, strict=True))

    @property
    def crop_info(self) -> dict[str, Any]:
        """The ``info`` of :func:`~pipeline.preprocess.volume.crop_or_pad` for this sample."""
        return {"input_shape": list(self.resampled_shape), "output_shape": list(self.output_shape),
                "crop_before": list(self.crop_before), "pad_before": list(self.pad_before),
                "offset": list(self.offset)}

    @classmethod
    def from_steps(cls, source_shape: Sequence[int], source_spacing: Sequence[float],
                   target_spacing: Sequence[float], crop_info: Mapping[str, Any]) -> ResampleCrop:
        """From what ingest did: the source grid, the spacings and crop_or_pad's ``info``."""
        return cls(tuple(int(n) for n in source_shape), tuple(float(s) for s in source_spacing),
                   tuple(float(s) for s in target_spacing),
                   tuple(int(n) for n in crop_info["input_shape"]),
                   tuple(int(n) for n in crop_info["output_shape"]),
                   tuple(int(n) for n in crop_info["crop_before"]),
                   tuple(int(n) for n in crop_info["pad_before"]))

    def to_resampled(self, grid: np.ndarray, *, pad_value: float = 0.0) -> np.ndarray:
        """A model-grid array on the resampled grid (crop/pad undone; cropped voxels = ``pad_value``)."""
        from pipeline.preprocess.volume import uncrop_or_pad

        return uncrop_or_pad(grid, self.crop_info, pad_value=pad_value)

    def to_json(self) -> str:
        return self._json

    @functools.cached_property
    def _json(self) -> str:  # once per object (:meth:`PadResize.fit` reuses them)
        return _to_json(self)


Geometry = PadResize | ResampleCrop


@functools.lru_cache(maxsize=256)
def _pad_resize(in_h: int, in_w: int, out_h: int, out_w: int) -> PadResize:
    if min(in_h, in_w, out_h, out_w) < 1:
        raise ValueError(f"shapes must be positive. Received: {(in_h, in_w)} -> {(out_h, out_w)}")
    scale = min(out_h / in_h, out_w / in_w)
    new_h = max(1, min(out_h, round(in_h * scale)))
    new_w = max(1, min(out_w, round(in_w * scale)))
    return PadResize((in_h, in_w), (out_h, out_w), float(scale), (out_h - new_h) // 2, (out_w - new_w) // 2)


def _to_json(geometry: Geometry) -> str:
    """``{"kind": ..., field: value, ...}``, compact; fields read directly (``asdict`` deep-copies
    every tuple: a tenth of a small file's ingest time)."""
    fields_ = {f.name: getattr(geometry, f.name) for f in fields(geometry)}
    return json.dumps({"kind": geometry.kind, **fields_}, separators=(",", ":"))


def geometry_from_json(text: str | Mapping[str, Any]) -> Geometry:
    """The object :meth:`PadResize.to_json` / :meth:`ResampleCrop.to_json` wrote.

    Raises:
        ValueError: Not a recorded geometry (e.g. a manifest from before this column existed:
            rerun ingest).
    """
    try:
        doc = dict(json.loads(text)) if isinstance(text, str) else dict(text)
        kind = doc.pop("kind")
        if kind == "2d":
            return PadResize(tuple(doc["source_shape"]), tuple(doc["output_shape"]), float(doc["scale"]),
                             int(doc["pad_top"]), int(doc["pad_left"]))
        if kind == "3d":
            return ResampleCrop(**{k: tuple(v) for k, v in doc.items()})
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"not a recorded sample geometry ({type(exc).__name__}: {exc}); rerun "
                         "ingest (dvc repro) to record it") from None
    raise ValueError(f"geometry kind must be '2d' or '3d'. Received: {kind!r}")


def geometry_of(row: Mapping[str, str]) -> Geometry:
    """The geometry of a manifest row (its ``geometry`` column)."""
    if not row.get(GEOMETRY_COLUMN):
        raise ValueError("manifest row has no geometry column; rerun ingest (dvc repro) to record it")
    return geometry_from_json(row[GEOMETRY_COLUMN])
