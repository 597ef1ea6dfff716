"""``tasks.<t>.evaluate``: evaluate knobs (:class:`EvaluateParams`); the threshold rule and TTA mode
are checked by the import-free parsers of :mod:`pipeline.rules`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from pipeline.config.common import Frozen, tta_mode
from pipeline.rules import validate_threshold_rule


class EvaluateParams(Frozen):
    """Evaluate knobs: operating threshold (chosen on val, never on test), bootstrap CIs, TTA."""

    #: youden | f1 | sensitivity@<x> | specificity@<x> | a number in (0, 1)
    threshold: str | float = "youden"
    bootstrap: Annotated[int, Field(ge=0)] = 1000  # patient-level resamples (0: no CIs)
    ci_level: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95
    calibration_bins: Annotated[int, Field(ge=2, le=100)] = 10
    #: Grad-CAM map binarisation for IoU: pixels >= this fraction of the map's max
    iou_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    batch_size: Annotated[int, Field(ge=1)] = 32
    #: Test-time augmentation of val and test predictions (and of ``predict``, which reads the
    #: mode back from metrics/<task>.json): none | flip (+ left-right mirror) | shift (+ 4 shifts
    #: of 4% of the side) | flip_shift (10 views). Mean of probabilities; see pipeline.evaluate.tta.
    tta: Literal["none", "flip", "shift", "flip_shift"] = "none"
    #: External validation only, for comparison: refit the probability scale on a slice of each
    #: cohort's patients and measure it on the rest (pipeline.validate.recalibration): none |
    #: temperature (one scale on the logits) | platt (slope and intercept per label; not for
    #: multi-class). The locked result is never replaced.
    recalibration: Literal["none", "temperature", "platt"] = "none"
    #: Share of a cohort's patients the recalibration is fitted on (stratified, seeded).
    recalibration_share: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5

    @field_validator("tta", mode="before")
    @classmethod
    def _tta_mode(cls, value: Any) -> Any:
        return tta_mode(value)

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold_rule(cls, value: Any) -> Any:
        try:
            return validate_threshold_rule(value)
        except ValueError as exc:  # the key path is prefixed by the caller
            raise ValueError(str(exc).removeprefix("threshold ")) from None
