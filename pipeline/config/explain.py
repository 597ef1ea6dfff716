"""``tasks.<t>.explain``: explain knobs (:class:`ExplainParams`) and the saliency methods they
name (:data:`EXPLAIN_METHODS`, :data:`EXPLAIN_AUTO_METHODS`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from pipeline.config.common import Frozen, tta_mode
from pipeline.rules import parse_min_cells

EXPLAIN_METHODS = ("gradcam", "gradcam++", "scorecam", "hirescam", "layercam", "layercam-fusion",
                   "gradcam-layercam")
#: Methods tried by ``explain.methods: auto``. Left out: Score-CAM (one forward pass per channel)
#: and Grad-CAM++ (never chosen on the demo cxr and ct, LIDC-IDRI or an ultrasound set, and
#: flagged by the deletion check at most layers); list them in ``methods`` to compare them.
EXPLAIN_AUTO_METHODS = ("gradcam", "hirescam", "layercam", "layercam-fusion", "gradcam-layercam")


class ExplainParams(Frozen):
    """Explain knobs: saliency methods, target layer, which cases, faithfulness (deletion) test."""

    #: First method is the one shown in reports and scored by IoU; all are deletion-tested.
    #: auto = chosen on the validation split (pipeline.explain.selection): faithfulness first,
    #: then localization where masks exist; the choice and its evidence go to metrics and report.
    methods: Literal["auto"] | Annotated[
        tuple[Literal["gradcam", "gradcam++", "scorecam", "hirescam", "layercam", "layercam-fusion",
                      "gradcam-layercam"], ...],
        Field(min_length=1)] = ("gradcam", "gradcam++")
    #: auto = chosen on the validation split among the last block of the 4 coarsest feature
    #: resolutions (with methods); last = the last convolutional block; auto:N = last block whose
    #: map has >= N cells per spatial axis; or a layer name (checked against the model later)
    layer: Annotated[str, Field(min_length=1)] = "last"
    splits: Annotated[tuple[Literal["train", "val", "test"], ...], Field(min_length=1)] = ("test",)
    max_cases: Annotated[int, Field(ge=1)] | None = None  # cap per run (first cases by manifest order)
    deletion_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    deletion_random: Annotated[int, Field(ge=1)] = 5
    #: How the deletion test (and its flag) fills masked pixels: mean = the image mean; road =
    #: noisy linear imputation from the neighbours (ROAD, Rong et al. 2022: stays in the image's
    #: distribution, e.g. on ultrasound speckle; ~0.3 s per 3D volume per mask on a CPU).
    deletion_fill: Literal["mean", "road"] = "mean"
    batch_size: Annotated[int, Field(ge=1)] = 16
    #: Views each map is averaged over (pipeline.explain.averaged): none | flip | shift |
    #: flip_shift (the evaluate.tta views: shifts by 4% of the side, a left-right mirror). The
    #: class is chosen on the original image. Averaging steadies coarse maps at the scale of a
    #: small lesion (demo: pointing game 0.59 -> 0.81 over six method/layer pairs); 10x the map cost.
    tta: Literal["none", "flip", "shift", "flip_shift"] = "flip_shift"
    #: Multi-class and multi-label tasks: also compute the reported method's map for every label
    #: (``maps_<method>_labels.npy``), so a case page can show the evidence for any label, not
    #: only the most probable one. One more map per label; binary tasks have one label to explain.
    per_label: bool = True

    @field_validator("methods", "splits")
    @classmethod
    def _unique(cls, value: tuple[str, ...] | str) -> tuple[str, ...] | str:
        if not isinstance(value, str) and len(set(value)) != len(value):
            raise ValueError(f"must not repeat entries. Received: {list(value)}")
        return value

    @field_validator("tta", mode="before")
    @classmethod
    def _tta_mode(cls, value: Any) -> Any:
        return tta_mode(value)

    @field_validator("layer")
    @classmethod
    def _layer(cls, value: str) -> str:
        parse_min_cells(value)  # 'auto:N' must carry a positive integer N
        return value

    @property
    def method_list(self) -> tuple[str, ...]:
        """Methods as configured (``auto`` -> the candidates it chooses from)."""
        return EXPLAIN_AUTO_METHODS if self.methods == "auto" else tuple(self.methods)
