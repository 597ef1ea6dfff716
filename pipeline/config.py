"""params.yaml, parsed once into typed, frozen objects.

Every stage calls :func:`load_params` and then :meth:`Params.task`. Unknown keys and bad values
fail before any work with :class:`ParamsError`, whose message names the full key path, what is
allowed and what was received, e.g.::

    tasks.cxr.ingest.window must be 'auto', 'percentile' or [center, width]. Received: 'wide'
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipeline.errors import UserInputError
from pipeline.rules import check_tta_mode, parse_min_cells, validate_threshold_rule

DEMO_PREFIX = "demo:"
DEMO_KINDS = ("cxr", "ct")
MEDMNIST_PREFIX = "medmnist:"
#: Image sides the ``medmnist`` package publishes (3D sets only 28 and 64).
MEDMNIST_SIZES = (28, 64, 128, 224)
#: A bare MedMNIST set name (``pneumoniamnist``, ``organmnist3d``); anything else is a file path.
_MEDMNIST_NAME = re.compile(r"[a-z0-9]+")
#: ``scheme:`` at the start of a source: a typo'd prefix, not a folder (``C:`` drives excepted).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")


class ParamsError(UserInputError, ValueError):
    """A param is missing, unknown or has a bad value. The message names the key."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Splits(_Frozen):
    """Fractions of patients for val and test; the rest is train (patient-level, stratified)."""

    val: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.15
    test: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2

    @model_validator(mode="after")
    def _sum_below_one(self) -> Splits:
        if self.val + self.test >= 1.0:
            raise ValueError(f"val + test must be < 1. Received: {self.val} + {self.test}")
        return self


class DataParams(_Frozen):
    """Where a task's dataset comes from.

    ``source`` is ``demo:cxr`` / ``demo:ct`` (the generated demo, written by the ``demo`` stage
    under ``data/raw/<task>``), a folder holding ``labels.csv`` (see README, dataset contract),
    or a MedMNIST v2 set: ``medmnist:<path to .npz>`` or ``medmnist:<name>`` (downloaded with the
    ``medmnist`` package), converted by the ``demo`` stage into ``data/raw/<task>/dataset``
    (see :mod:`pipeline.dataset.medmnist`).
    """

    source: str
    demo_seed: int = 0
    demo_patients: Annotated[int, Field(ge=4)] | None = None
    #: MedMNIST class index (column index for multi-label sets) -> name in the task's ``labels``.
    #: None: index i is ``labels[i]``. Several indices may map to one name (merged classes).
    label_map: dict[Annotated[int, Field(ge=0)], Annotated[str, Field(min_length=1)]] | None = None
    #: Image side (pixels) of a downloaded ``medmnist:<name>`` set; None = 28.
    medmnist_size: Literal[28, 64, 128, 224] | None = None

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: str) -> str:
        allowed = (f"must be a folder or one of {[DEMO_PREFIX + k for k in DEMO_KINDS]}, or "
                   f"'{MEDMNIST_PREFIX}<path to .npz>' / '{MEDMNIST_PREFIX}<name>'")
        if value.startswith(DEMO_PREFIX) and value[len(DEMO_PREFIX):] not in DEMO_KINDS:
            raise ValueError(f"{allowed}. Received: {value!r}")
        if not value.strip():
            raise ValueError("must not be empty")
        if value.startswith(MEDMNIST_PREFIX):
            if not value[len(MEDMNIST_PREFIX):].strip():
                raise ValueError(f"{allowed} (e.g. 'medmnist:pneumoniamnist'). Received: {value!r}")
        elif _SCHEME.match(value) and not value.startswith(DEMO_PREFIX):
            raise ValueError(f"{allowed}; the prefix is not known. Received: {value!r}")
        elif value.rstrip("/").lower().endswith(".npz"):
            raise ValueError(f"{allowed}; a .npz file needs the prefix, e.g. "
                             f"'{MEDMNIST_PREFIX}{value}'. Received: {value!r}")
        return value

    @field_validator("label_map", "medmnist_size")
    @classmethod
    def _medmnist_only(cls, value: Any, info: ValidationInfo) -> Any:
        source = info.data.get("source")
        if value is None or source is None:  # source invalid: already reported
            return value
        if not source.startswith(MEDMNIST_PREFIX):
            raise ValueError(f"is only for '{MEDMNIST_PREFIX}' sources. Received: {value!r} with "
                             f"source {source!r}")
        if info.field_name == "medmnist_size" and not _MEDMNIST_NAME.fullmatch(
                source[len(MEDMNIST_PREFIX):]):
            raise ValueError(f"is only for a downloaded set ('{MEDMNIST_PREFIX}<name>'); a .npz "
                             f"file has its own size. Received: {value!r} with source {source!r}")
        return value

    @property
    def demo_kind(self) -> str | None:
        """``"cxr"``/``"ct"`` for a demo source, else None."""
        return self.source[len(DEMO_PREFIX):] if self.source.startswith(DEMO_PREFIX) else None

    @property
    def is_medmnist(self) -> bool:
        """True for a ``medmnist:`` source (a .npz file or a set name)."""
        return self.source.startswith(MEDMNIST_PREFIX)

    @property
    def medmnist_name(self) -> str | None:
        """The set name of a ``medmnist:<name>`` source (e.g. ``"pneumoniamnist"``), else None."""
        spec = self.source[len(MEDMNIST_PREFIX):] if self.is_medmnist else ""
        return spec if _MEDMNIST_NAME.fullmatch(spec) else None

    @property
    def medmnist_path(self) -> Path | None:
        """The ``~``-expanded .npz path of a ``medmnist:<path>`` source, else None."""
        if not self.is_medmnist or self.medmnist_name is not None:
            return None
        return Path(os.path.expanduser(self.source[len(MEDMNIST_PREFIX):]))


Window = Literal["auto", "percentile"] | tuple[float, Annotated[float, Field(gt=0)]]


class IngestParams(_Frozen):
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


PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


class TrainParams(_Frozen):
    """Training knobs (see README, params reference). Learning rates are per global batch of
    ``batch_size`` samples on one replica; with ``lr_scaling`` they scale with the replica count."""

    backbone: str = "resnet50"
    weights: str | None = "imagenet"
    epochs: Annotated[int, Field(ge=1)] = 20
    batch_size: Annotated[int, Field(ge=1)] = 32
    freeze_epochs: Annotated[int, Field(ge=0)] = 3
    unfreeze: Literal["all"] | Annotated[int, Field(ge=0)] = "all"
    lr_head: Annotated[float, Field(gt=0)] = 1e-3
    lr_finetune: Annotated[float, Field(gt=0)] = 1e-4
    warmup_epochs: Annotated[float, Field(ge=0)] = 1.0
    min_lr_fraction: Annotated[float, Field(ge=0, le=1)] = 0.01
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.2
    pooling: Literal["avg", "max"] = "avg"
    #: Filters of the first stage of the models built here (3D models, 2D resnet18/34);
    #: keras.applications backbones have fixed widths. None = the architecture's default (64).
    width: Annotated[int, Field(ge=4)] | None = None
    #: auto = class_weights when the training split's majority/minority ratio exceeds 1.5
    #: (pipeline.train.objective.AUTO_BALANCE_RATIO), else none; multi-label: none.
    class_balance: Literal["none", "class_weights", "focal", "auto"] = "none"
    focal_gamma: Annotated[float, Field(ge=0)] = 2.0
    #: Patience counts epochs without a better epoch under ``checkpoint``'s rule.
    early_stopping_patience: Annotated[int, Field(ge=0)] = 5
    #: Model selection: best val AUROC with ties (within 1e-4) broken by the lower val loss
    #: (``auroc_then_loss``), the first best val AUROC (``auroc``) or the lowest val loss.
    checkpoint: Literal["auroc_then_loss", "auroc", "loss"] = "auroc_then_loss"
    #: Exponential moving average of the trainable weights (AdamW ``use_ema``): validation, the
    #: checkpoint and the saved model use the averages. BatchNorm statistics are not averaged.
    ema: bool = False
    ema_momentum: Annotated[float, Field(gt=0, lt=1)] = 0.99  # Keras' default
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    strategy: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"
    lr_scaling: Literal["linear", "sqrt", "none"] = "linear"
    deterministic: bool = False
    augment: tuple[dict[str, Any], ...] | None = None
    #: Used when ``augment`` is null: mild = pipeline.augment.DEFAULT_2D/3D, strong = STRONG_2D/3D
    #: (small training sets). An explicit ``augment`` list overrides it.
    augment_preset: Literal["mild", "strong"] = "mild"
    #: k-fold cross-validation by patient on the ingest ``train`` split: 1 = one model (val =
    #: the ingest ``val`` split); k >= 2 = k members, member i validated (checkpoint, early
    #: stopping) on fold i and trained on the others; the saved model is their mean
    #: (pipeline.train.crossval). At most the train patients of the rarest class (multi-label: label
    #: combination); checked by the trainer, which reads the data. auto = 3 folds below 1000
    #: training patients (small sets: a single small val split picks epochs by chance), else 1.
    folds: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"

    @field_validator("folds", mode="before")
    @classmethod
    def _folds(cls, value: Any) -> Any:
        ok = value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
        if not ok:
            raise ValueError(f"must be 'auto' or an integer >= 1 (1 = one model). Received: {value!r}")
        return value
    #: Weakly supervised localization where masks.npy has lesion masks (pipeline.train.guidance):
    #: weight of an auxiliary loss asking the features at ``mask_guidance_layer`` (the explain
    #: layer rule) to encode where the lesion is. 0 = off. Training only; the saved model is the
    #: plain classifier.
    mask_guidance: Annotated[float, Field(ge=0)] = 0.0
    mask_guidance_layer: str = "auto:8"

    @model_validator(mode="after")
    def _phases(self) -> TrainParams:
        if self.freeze_epochs >= self.epochs and self.weights is not None:
            raise ValueError(f"freeze_epochs must be < epochs. Received: freeze_epochs="
                             f"{self.freeze_epochs}, epochs={self.epochs}")
        return self


class EvaluateParams(_Frozen):
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

    @field_validator("tta", mode="before")
    @classmethod
    def _tta_mode(cls, value: Any) -> Any:
        try:
            return check_tta_mode(value)
        except ValueError as exc:  # the key path is prefixed by the caller
            raise ValueError(str(exc).removeprefix("tta ")) from None

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold_rule(cls, value: Any) -> Any:
        try:
            return validate_threshold_rule(value)
        except ValueError as exc:  # the key path is prefixed by the caller
            raise ValueError(str(exc).removeprefix("threshold ")) from None


EXPLAIN_METHODS = ("gradcam", "gradcam++", "scorecam", "hirescam", "layercam", "layercam-fusion")
#: Methods tried by ``explain.methods: auto`` (Score-CAM is left out: one forward pass per channel).
EXPLAIN_AUTO_METHODS = ("gradcam", "gradcam++", "hirescam", "layercam", "layercam-fusion")


class ExplainParams(_Frozen):
    """Explain knobs: saliency methods, target layer, which cases, faithfulness (deletion) test."""

    #: First method is the one shown in reports and scored by IoU; all are deletion-tested.
    #: auto = chosen on the validation split (pipeline.explain.selection): faithfulness first,
    #: then localization where masks exist; the choice and its evidence go to metrics and report.
    methods: Literal["auto"] | Annotated[
        tuple[Literal["gradcam", "gradcam++", "scorecam", "hirescam", "layercam", "layercam-fusion"], ...],
        Field(min_length=1)] = ("gradcam", "gradcam++")
    #: auto = chosen on the validation split among the last block of the 3 coarsest feature
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

    @field_validator("layer")
    @classmethod
    def _layer(cls, value: str) -> str:
        parse_min_cells(value)  # 'auto:N' must carry a positive integer N
        return value

    @property
    def method_list(self) -> tuple[str, ...]:
        """Methods as configured (``auto`` -> the candidates it chooses from)."""
        return EXPLAIN_AUTO_METHODS if self.methods == "auto" else tuple(self.methods)


class ReportParams(_Frozen):
    """Report knobs."""

    #: Probabilities within this distance of the threshold are flagged "low confidence".
    uncertain_band: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.1
    #: Cases shown per review group on the index (false positives, false negatives, ...).
    highlight_limit: Annotated[int, Field(ge=1)] = 8
    #: Show free-text header fields (SeriesDescription) on case pages. Off by default: free text
    #: is where identifiers hide (PS3.15 removes it unless cleaned), and the pages leave the
    #: hospital network more easily than the DICOM files do.
    show_free_text: bool = False


class TaskParams(_Frozen):
    """One task: a dataset, its label set and per-stage params."""

    name: str
    kind: Literal["2d", "3d"]
    labels: Annotated[tuple[str, ...], Field(min_length=2)]
    multilabel: bool = False
    data: DataParams
    ingest: IngestParams = IngestParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    explain: ExplainParams = ExplainParams()
    report: ReportParams = ReportParams()

    @property
    def problem(self) -> Literal["binary", "multiclass", "multilabel"]:
        """``multilabel`` if set, ``binary`` for two labels, else ``multiclass``."""
        if self.multilabel:
            return "multilabel"
        return "binary" if len(self.labels) == 2 else "multiclass"

    @property
    def n_outputs(self) -> int:
        """Model outputs: 1 sigmoid unit for binary, one unit per label otherwise."""
        return 1 if self.problem == "binary" else len(self.labels)

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"labels must be unique. Received: {list(value)}")
        return value

    @model_validator(mode="after")
    def _kind_specific(self) -> TaskParams:
        ing = self.ingest
        if self.kind == "2d" and ing.image_size is None:
            raise ValueError("ingest.image_size ([H, W]) is required for kind '2d'")
        if self.kind == "3d" and ing.volume_shape is None:
            raise ValueError("ingest.volume_shape ([D, H, W]) is required for kind '3d'")
        if self.kind == "2d" and ing.volume_shape is not None:
            raise ValueError("ingest.volume_shape is for kind '3d'; use ingest.image_size for '2d'")
        if self.kind == "3d" and ing.image_size is not None:
            raise ValueError("ingest.image_size is for kind '2d'; use ingest.volume_shape for '3d'")
        demo = self.data.demo_kind
        expected = {"cxr": "2d", "ct": "3d"}
        if demo is not None and expected[demo] != self.kind:
            raise ValueError(
                f"data.source {self.data.source!r} is a {expected[demo]} demo but kind is "
                f"{self.kind!r}"
            )
        return self


class BaseParams(_Frozen):
    """Settings shared by every task."""

    seed: int = 42
    #: Key for salted pseudonyms. ``env:NAME`` reads it from an environment variable, which is
    #: how real data should be run: the salt must not be committed next to real data.
    salt: str = Field(min_length=1)

    def resolved_salt(self) -> str:
        """The salt value, reading ``env:NAME`` from the environment."""
        if self.salt.startswith("env:"):
            name = self.salt[4:]
            value = os.environ.get(name, "")
            if not value:
                raise ParamsError(f"base.salt reads environment variable {name!r}, which is unset "
                                  "or empty. Set it, or put a literal salt in params.yaml.")
            return value
        return self.salt


class Params(_Frozen):
    """The whole params.yaml."""

    base: BaseParams
    tasks: dict[str, Any]

    def task(self, name: str) -> TaskParams:
        """Return the validated params of task ``name``.

        Raises:
            ParamsError: Unknown task (lists the known ones) or invalid task params.
        """
        if name not in self.tasks:
            raise ParamsError(f"task must be one of {sorted(self.tasks)}. Received: {name!r}")
        raw = self.tasks[name]
        if not isinstance(raw, dict):
            raise ParamsError(f"tasks.{name} must be a mapping. Received: {raw!r}")
        try:
            return TaskParams.model_validate({"name": name, **raw})
        except ValidationError as exc:
            raise ParamsError(_format_errors(exc, prefix=f"tasks.{name}")) from None

    @field_validator("tasks")
    @classmethod
    def _task_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("at least one task is required")
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", str(name)):
                raise ValueError(
                    f"task names must match [a-z][a-z0-9_]* (they become folder and DVC stage "
                    f"names). Received: {name!r}"
                )
        return value


def _format_errors(exc: ValidationError, *, prefix: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if "[" not in str(p) and not str(p).startswith("function-"))
        key = ".".join(p for p in (prefix, loc) if p)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "is not a known key (check spelling; see README, params reference)"
        elif err["type"] == "missing":
            msg = "is required"
        elif err["type"] == "literal_error":
            msg = f"{msg}. Received: {err.get('input')!r}"
        elif "Received" not in msg and "input" in err:
            msg = f"{msg}. Received: {err['input']!r}"
        lines.append(f"{key} {msg}")
    # Keep the message short: identical keys from union branches are reported once.
    return "; ".join(dict.fromkeys(lines))


def load_params(path: str | os.PathLike[str] = "params.yaml") -> Params:
    """Read and validate ``params.yaml``.

    Raises:
        ParamsError: The file is missing, not YAML, or the top level is invalid.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"params file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} must hold a mapping with 'base' and 'tasks'")
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_format_errors(exc, prefix="")) from None
    for name in params.tasks:  # fail early on any bad task, not only the one being run
        params.task(name)
    return params
