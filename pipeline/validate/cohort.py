"""One external cohort from its source to ingested arrays, with the development run's ingest
settings: the same reader contract, preprocessing, quarantine accounting and pseudonyms (same
salt, so a patient who is also in the internal data gets the same pseudonym and the comparison
can be paired). Every sample lands in the split :data:`EXTERNAL_SPLIT`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import DataParams, IngestParams, TaskParams
from pipeline.ingest import IngestSummary, run_ingest
from pipeline.sources import prepare_source, resolve_source
from pipeline.validate.layout import ValidateLayout

log = logging.getLogger(__name__)

EXTERNAL_SPLIT = "external"


@dataclass(frozen=True)
class IngestedCohort:
    """An ingested external cohort.

    Attributes:
        name: Cohort name (``tasks.<t>.external.<name>``).
        source: The folder that was ingested.
        data_dir: Its ingest outputs (``data/external/<task>/<name>/interim``).
        summary: Ingest counts (rows, samples, quarantined rows and files, codes).
    """

    name: str
    source: Path
    data_dir: Path
    summary: IngestSummary


def cohort_task(task: TaskParams, source: DataParams, ingest: IngestParams) -> TaskParams:
    """``task`` with the cohort as its data source and the model's ingest settings."""
    return task.model_copy(update={"data": source, "ingest": ingest, "external": {}})


def ingest_cohort(task: TaskParams, name: str, source: DataParams, *, ingest: IngestParams,
                  layout: ValidateLayout, seed: int, salt: str, workers: int | None = None,
                  progress: bool = False) -> IngestedCohort:
    """Prepare (generate the demo, convert MedMNIST, or fingerprint a folder) and ingest one cohort.

    Raises:
        DatasetError: A folder source without labels.csv (the message names the params key).
        QuarantineLimitExceeded: More rows rejected than ``ingest.max_quarantine_fraction``.
    """
    from pipeline.dataset.labels import DatasetError

    key = f"tasks.{task.name}.external.{name}"
    if source.demo_kind is None and not source.is_medmnist:
        folder = Path(os.path.expanduser(source.source))
        if not (folder / "labels.csv").is_file():
            raise DatasetError(f"{key}.source: no labels.csv in {folder}")
    sub = cohort_task(task, source, ingest)
    raw = layout.raw(name)
    raw.parent.mkdir(parents=True, exist_ok=True)
    prepare_source(sub, out_dir=raw)
    folder = resolve_source(sub, raw_dir=raw)
    summary = run_ingest(sub, source=folder, out_dir=layout.interim(name), seed=seed, salt=salt,
                         workers=workers, progress=progress, split=EXTERNAL_SPLIT)
    log.info("validate %s/%s: %d samples, %d rows and %d files quarantined", task.name, name,
             summary.samples, summary.quarantined_rows, summary.quarantined_files)
    return IngestedCohort(name, folder, layout.interim(name), summary)
