"""One study decoded for the model, in a worker process (through
:func:`pipeline.ingest.pool.map_ordered`). Pure and picklable; imports no TensorFlow.

The study's pseudonymous id (a hash of its bytes, :func:`study_id`) is computed here too, so the
main process, busy with the model, reads no input file itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.ingest.samples import SampleJob, SampleResult, process


@dataclass(frozen=True)
class StudyJob:
    """Everything a worker needs for one study.

    Attributes:
        position: The study's place in the discovery order (:mod:`pipeline.predict.inputs`).
        path: File or series folder.
        kind: ``"2d"`` or ``"3d"``.
        settings: The model's IngestParams (from its card).
        keep_source: Return the decoded source too, for the case page (never written out: a
            DICOM dataset holds PHI).
    """

    position: int
    path: Path
    kind: str
    settings: Any
    keep_source: bool


@dataclass
class Prepared:
    """A decoded study: ``sample`` holds the uint8 model grid (or the rejection); ``full_range``
    is a 2D source's whole stored value range for the page's window/level (pages only)."""

    position: int
    sample_id: str
    sample: SampleResult
    full_range: np.ndarray | None = None


def study_id(path: Path) -> str:
    """A pseudonymous, stable id for an input: a hash of its bytes (never of its name, which may
    hold identifiers). A folder hashes its files' bytes in sorted order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return "S" + digest.hexdigest()[:16]


def prepare(job: StudyJob) -> Prepared:
    """Hash and decode one study as ingest would (the model card's settings); bad input becomes
    a rejection in ``sample``, never an exception."""
    try:
        sid = study_id(job.path)
    except OSError as exc:
        return Prepared(job.position, "", SampleResult(job.position, rejection=(
            f"cannot read the input ({type(exc).__name__})", "unreadable")))
    sample = process(SampleJob(position=job.position, path=job.path, mask=None, kind=job.kind,
                               settings=job.settings, needs_patient_id=False, keep_source=job.keep_source))
    full = None
    if job.keep_source and job.kind == "2d" and sample.rejection is None:
        full = _full_range(sample, job)
        if isinstance(full, tuple):
            return Prepared(job.position, sid, SampleResult(job.position, rejection=full))
    return Prepared(job.position, sid, sample, full)


def crashed(job: StudyJob) -> Prepared:
    """The stand-in for a study whose decoding process died (a decoder crash)."""
    return Prepared(job.position, "", SampleResult(job.position, rejection=(
        "the decoding process crashed on this input (decoder bug triggered by corrupt or hostile "
        "data)", "crash")))


def _full_range(sample: SampleResult, job: StudyJob) -> np.ndarray | tuple[str, str]:
    """The page's full value range, decoded here in the pool rather than in the main process;
    the rejection if it cannot be read."""
    from pipeline.io.errors import InputRejected
    from pipeline.report.source import full_range

    try:
        return full_range(sample.source, job.path, job.settings)
    except InputRejected as exc:
        return exc.reason, exc.code
    except OSError as exc:
        return f"cannot read the input ({type(exc).__name__})", "unreadable"
