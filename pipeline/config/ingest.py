"""``tasks.<t>.ingest``: ingest knobs (:class:`IngestParams`), with the patient-level
:class:`Splits` and the 2D intensity :data:`Window`."""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.common import Frozen


class Splits(Frozen):
    """Fractions of patients for val and test; the rest is train (patient-level, stratified)."""

    val: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.15
    test: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2

    @model_validator(mode="after")
    def _sum_below_one(self) -> Splits:
        if self.val + self.test >= 1.0:
            raise ValueError(f"val + test must be < 1. Received: {self.val} + {self.test}")
        return self


Window = Literal["auto", "percentile"] | tuple[float, Annotated[float, Field(gt=0)]]


class IngestParams(Frozen):
    """Ingest knobs. 2D-only and 3D-only keys are checked against the task kind."""

    # shared
    splits: Splits = Splits()
    max_quarantine_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.05
    workers: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"
    max_pixel_bytes: Annotated[int, Field(gt=0)] = 1 << 30
    redact_paths: bool = False
    # 2D
    image_size: tuple[Annotated[int, Field(ge=8)], Annotated[int, Field(ge=8)]] | None = None
    window: Window = "auto"
    percentiles: tuple[
        Annotated[float, Field(ge=0, le=100)], Annotated[float, Field(ge=0, le=100)]
    ] = (0.5, 99.5)
    frame: Literal["first", "middle", "last", "max"] = "middle"
    #: PNG/JPEG/TIFF only: RGB files whose pixel variance off their main (gray or tint) axis
    #: exceeds this share are quarantined as colour images (code 'colour'); 1 = never
    max_colour_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    # 3D
    volume_shape: (
        tuple[Annotated[int, Field(ge=4)], Annotated[int, Field(ge=4)], Annotated[int, Field(ge=4)]]
        | None
    ) = None
    target_spacing: tuple[
        Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]
    ] = (5.0, 5.0, 5.0)
    hu_window: tuple[float, Annotated[float, Field(gt=0)]] = (-600.0, 1500.0)
    on_missing_slices: Literal["interpolate", "reject"] = "interpolate"
    min_slices: Annotated[int, Field(ge=2)] = 8
    max_voxels: Annotated[int, Field(gt=0)] = 512**3

    @field_validator("window", mode="before")
    @classmethod
    def _window_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return tuple(value)
        if isinstance(value, str) and value not in ("auto", "percentile"):
            raise ValueError(f"must be 'auto', 'percentile' or [center, width]. Received: {value!r}")
        return value

    @model_validator(mode="after")
    def _percentiles_ordered(self) -> IngestParams:
        lo, hi = self.percentiles
        if lo >= hi:
            raise ValueError(f"percentiles must be [low, high] with low < high. Received: {[lo, hi]}")
        return self

    @property
    def n_workers(self) -> int:
        """Resolved worker count (``auto`` = all CPU cores available to this process)."""
        if self.workers == "auto":
            return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                       else os.cpu_count() or 1)
        return int(self.workers)
