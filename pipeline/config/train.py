"""``tasks.<t>.train``: training knobs (:class:`TrainParams`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.common import Frozen

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


class TrainParams(Frozen):
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
