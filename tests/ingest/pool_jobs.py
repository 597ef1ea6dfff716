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


#: Run in a fresh interpreter: the modules that forked ingest workers import for 2D and 3D jobs
#: that their parent has not imported, without and then with :func:`warm_imports`.
FIRST_JOB_IMPORTS = """
import json, sys
from pathlib import Path
from pipeline.config.ingest import IngestParams
from pipeline.ingest import pool
from pipeline.ingest.samples import SampleJob, process


def recording(job):
    result = process(job)
    result.meta["modules"] = sorted(sys.modules)
    return result


def new_in_workers(kind, paths):
    settings = IngestParams(image_size=(32, 32), volume_shape=(8, 16, 16))
    jobs = [SampleJob(position=i, path=Path(p), mask=None, kind=kind, settings=settings,
                      needs_patient_id=False) for i, p in enumerate(paths)]
    results = list(pool.run_jobs(jobs, workers=2, progress=False, label="t"))
    inherited = set(sys.modules)
    return {"new": sorted({m for r in results for m in r.meta.get("modules", [])} - inherited),
            "used": sum(r.rejection is None for r in results)}


pool.process = recording  # module-level in __main__: forked workers find it
inputs = json.loads(sys.argv[1])
out = {"method": pool.start_context().get_start_method()}
warm, pool.warm_imports = pool.warm_imports, lambda kind: None
out["cold"] = {kind: new_in_workers(kind, paths) for kind, paths in inputs.items()}
pool.warm_imports = warm
out["warm"] = {kind: new_in_workers(kind, paths) for kind, paths in inputs.items()}
print(json.dumps(out))
"""
