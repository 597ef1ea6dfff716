"""``tasks.<t>``: one task (:class:`TaskParams`): its kind, labels and one params section per
stage, with the checks that span sections (kind-specific ingest keys, demo kind)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.common import Frozen
from pipeline.config.data import DataParams
from pipeline.config.evaluate import EvaluateParams
from pipeline.config.explain import ExplainParams
from pipeline.config.external import ExternalCohorts, normalize_cohorts
from pipeline.config.ingest import IngestParams
from pipeline.config.report import ReportParams
from pipeline.config.train import TrainParams


class TaskParams(Frozen):
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
    #: External validation cohorts (name -> source); see :mod:`pipeline.config.external`.
    external: ExternalCohorts = {}

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

    @field_validator("external", mode="before")
    @classmethod
    def _cohorts(cls, value: object) -> object:
        return normalize_cohorts(value)

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
        if self.evaluate.recalibration == "platt" and self.problem == "multiclass":
            raise ValueError("evaluate.recalibration 'platt' fits each label on its own (binary and "
                             "multi-label tasks); use 'temperature' or 'none' for a multi-class task")
        sources = {"data": self.data, **{f"external.{n}": c for n, c in self.external.items()}}
        expected = {"cxr": "2d", "ct": "3d"}
        for key, data in sources.items():
            demo = data.demo_kind
            if demo is not None and expected[demo] != self.kind:
                raise ValueError(f"{key}.source is a {expected[demo]} demo but kind is {self.kind!r}. "
                                 f"Received: {data.source!r}")
        return self
