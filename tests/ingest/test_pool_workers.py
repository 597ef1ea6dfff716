"""What a decoding worker sets up for throughput: freed memory kept for the next file, and
single-threaded decoders where a plugin would start threads of its own."""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys
from pathlib import Path

import numpy as np

from pipeline.demo.dicom_writer import JPEG_2000_LOSSLESS
from pipeline.ingest.pool import map_ordered
from pipeline.io.dicom_pixels import PREFERRED_PLUGINS, THROUGHPUT_PLUGINS
from tests.ingest.pool_jobs import FIRST_JOB_IMPORTS, decoder_preference

ROOT = Path(__file__).resolve().parents[2]
J2K_LOSSLESS = JPEG_2000_LOSSLESS

#: Reads one large radiograph 12 times through the ingest's 2D path; prints page faults per read.
_FAULTS = """
import json, resource, sys
from pathlib import Path
from pipeline.ingest.pool import _reuse_freed_memory
from pipeline.ingest.samples import SampleJob, process
from pipeline.config.ingest import IngestParams
took = _reuse_freed_memory() if sys.argv[2] == "tuned" else None
job = SampleJob(position=0, path=Path(sys.argv[1]), mask=None, kind="2d",
                settings=IngestParams(image_size=(64, 64)), needs_patient_id=False)
assert process(job).rejection is None
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(12):
    process(job)
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 12
print(json.dumps({"took": took, "faults": faults}))
"""


def _faults(path: Path, mode: str) -> dict:
    res = subprocess.run([sys.executable, "-c", _FAULTS, str(path), mode], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_a_worker_reuses_freed_memory_for_the_next_large_file(tmp_path):
    from pipeline.demo.dicom_files import write_file
    from pipeline.demo.dicom_writer import make_image_dataset

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 4096, (1024, 1024), dtype=np.uint16)
    path = tmp_path / "large.dcm"
    write_file(make_image_dataset(pixels, bits_stored=12, window=(2048, 4096)), path)

    plain, tuned = _faults(path, "plain"), _faults(path, "tuned")
    assert tuned["took"] is True  # glibc took the thresholds
    # a 1k x 1k file's arrays are megabytes: fresh pages per file unless freed memory is kept
    assert plain["faults"] > 200, plain
    assert tuned["faults"] < plain["faults"] / 5, (plain, tuned)


def test_workers_prefer_single_threaded_decoders_and_the_parent_keeps_its_choice():
    ctx = mp.get_context("spawn")  # a fresh interpreter: what the worker set up, not inherited
    got = list(map_ordered(decoder_preference, [0, 1], workers=2, chunk=1, on_crash=None, ctx=ctx))
    assert got == [THROUGHPUT_PLUGINS[J2K_LOSSLESS]] * 2
    assert got[0][0] == "pylibjpeg"  # OpenJPEG without GDCM's thread pool
    assert decoder_preference(0) == PREFERRED_PLUGINS[J2K_LOSSLESS]  # this process: unchanged
    assert PREFERRED_PLUGINS[J2K_LOSSLESS][0] == "gdcm"  # alone, GDCM's threads win


def test_forked_workers_inherit_what_they_import_for_their_first_job(tmp_path):
    """A forking pool imports the workers' modules first (``warm_imports``): pydicom with its
    decoder plugins, Pillow, OpenCV, nibabel, SciPy. Without that, every worker of every pool
    imported them again (0.25 s of CPU each). The control run shows what the workers would
    import; with the warm imports they import nothing, for each kind of input ingest reads."""
    from pipeline.demo import generate_demo
    from tests.builders import make_3d_folder, make_mixed_2d_folder

    flat = make_mixed_2d_folder(tmp_path / "2d", n_patients=3)  # DICOM, PNG, JPEG, TIFF, broken
    volumes = make_3d_folder(tmp_path / "3d", n=2)  # NIfTI
    generate_demo("ct", tmp_path / "ct", seed=0, n_patients=2)  # DICOM series
    inputs = {"2d": sorted(str(p) for p in (flat / "img").iterdir()),
              "3d": [str(volumes / "v0.nii.gz"), str(tmp_path / "ct" / "series" / "vol_000")]}
    res = subprocess.run([sys.executable, "-c", FIRST_JOB_IMPORTS, json.dumps(inputs)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])

    assert out["method"] == "fork"
    for kind in ("2d", "3d"):
        assert out["cold"][kind]["used"] == out["warm"][kind]["used"] >= 2
        assert {"pydicom", "cv2"} <= set(out["cold"][kind]["new"])  # the control
        assert out["warm"][kind]["new"] == [], kind
    assert "nibabel" in out["cold"]["3d"]["new"]
