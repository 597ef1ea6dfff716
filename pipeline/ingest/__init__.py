"""Ingest, the library behind ``pipeline.stages.ingest``: a dataset folder -> memory-mapped
arrays + manifest + quarantine table.

- :mod:`pipeline.ingest.samples`: turn one labels.csv row into model-ready arrays (pure).
- :mod:`pipeline.dataset.tables`: manifest/quarantine rows and their CSV files.
- :mod:`pipeline.ingest.run`: orchestration (store, splits, pseudonyms).
- :mod:`pipeline.ingest.pool`: the worker pool (start method, ordered results, crash isolation).
"""

from pipeline.ingest.run import IngestSummary, QuarantineLimitExceeded, run_ingest

__all__ = ["IngestSummary", "QuarantineLimitExceeded", "run_ingest"]
