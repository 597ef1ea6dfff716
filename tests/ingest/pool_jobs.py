"""Module-level job functions for pool tests (spawned workers import them by name)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def record_and_sleep(job: tuple[str, int]) -> int:
    """Leave this worker's pid in the job's folder, then stay busy for a minute."""
    folder, index = job
    (Path(folder) / f"pid-{os.getpid()}").write_text(str(index))
    time.sleep(60)
    return index


def decoder_preference(_: int) -> tuple[str, ...]:
    """The JPEG 2000 Lossless plugin order this worker decodes with."""
    from pipeline.io.dicom_pixels import _preferred

    return _preferred["1.2.840.10008.1.2.4.90"]
