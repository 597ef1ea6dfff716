"""medvision: a reproducible medical-imaging vision pipeline.

Subpackages, one concept each:

- ``pipeline.io``: readers for DICOM images, DICOM series and NIfTI volumes. Every reader
  returns ``(array, metadata)`` and raises :class:`pipeline.io.errors.InputRejected` with a
  one-line, PHI-free reason for input that cannot be used.
- ``pipeline.preprocess``: intensity windowing and geometry (resize/pad, resample, crop).
- ``pipeline.dataset``: labels.csv parsing, pseudonymisation, patient-level splits and the
  memory-mapped array store.
- ``pipeline.demo``: deterministic synthetic datasets in the user-facing folder contract.
- ``pipeline.ingest``: the ingest stage.
"""

from __future__ import annotations

__version__ = "0.1.0"

from pipeline._runtime import prefer_onednn as _prefer_onednn

_prefer_onednn()  # before any TensorFlow import: fast CPU kernels on AVX2-only machines
