"""One labels.csv row -> model-ready arrays. Runs inside worker processes; pure and picklable."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io.errors import InputRejected

log = logging.getLogger(__name__)

#: Air, used to pad CT volumes before windowing.
CT_PAD_HU = -1024.0


@dataclass(frozen=True)
class SampleJob:
    """Everything a worker needs for one row (absolute paths, resolved params)."""

    position: int
    path: Path
    mask: Path | None
    kind: str  # "2d" | "3d"
    settings: Any  # the task's IngestParams (frozen, picklable)
    needs_patient_id: bool
    #: predict: return the decoded source too (``SampleResult.source``), so that its report page
    #: shows it without decoding the input a second time
    keep_source: bool = False


@dataclass
class SampleResult:
    """What a worker returns. ``image``/``mask`` are uint8 arrays with a trailing channel axis."""

    position: int
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    header_patient_id: str | None = None  # PHI: pseudonymised by the caller, never written
    rejection: tuple[str, str] | None = None  # (reason, code)
    excluded: list[dict[str, str]] = field(default_factory=list)  # files left out of a series
    #: With ``SampleJob.keep_source``: the decoded source (2D: the Radiograph; 3D: ``(volume,
    #: meta)`` before resampling). Holds the DICOM dataset (PHI): never written out.
    source: Any = None


def warm_imports(kind: str) -> None:
    """Import in this process what a decoding worker imports for its first ``kind`` job
    (``"2d"`` or ``"3d"``): its set-up's (:mod:`pipeline.ingest.pool`) and :func:`process`'s
    lazy imports, that is pydicom with its decoder plugins, Pillow's plugins for the formats
    ingest reads, OpenCV, and for volumes nibabel and SciPy.

    A forking pool calls it before it starts its workers, which then inherit the modules. Else
    every worker of every pool imported them again on its first job: 0.25 s of CPU per worker, a
    tenth of ingesting 5,000 MedMNIST-size files on 2 cores, paid again by each call in a
    notebook or a benchmark. A test checks that a forked worker then imports nothing for the
    common inputs of each kind.
    """
    import ctypes.util  # noqa: F401  (the imports are the point)
    import mmap  # noqa: F401

    import cv2  # noqa: F401
    import pydicom  # noqa: F401
    import pydicom.pixels  # noqa: F401
    import threadpoolctl  # noqa: F401

    import pipeline.preprocess.geometry  # noqa: F401

    if kind == "2d":
        from PIL import (  # noqa: F401  (Image.open's own first set, and TIFF)
            BmpImagePlugin,
            GifImagePlugin,
            JpegImagePlugin,
            PngImagePlugin,
            PpmImagePlugin,
            TiffImagePlugin,
        )

        import pipeline.io.dicom_image  # noqa: F401
        import pipeline.io.radiograph  # noqa: F401
        import pipeline.preprocess.image  # noqa: F401
    else:
        import nibabel  # noqa: F401
        import scipy.ndimage  # noqa: F401

        import pipeline.io.nifti  # noqa: F401
        import pipeline.io.series  # noqa: F401
        import pipeline.io.volume  # noqa: F401
        import pipeline.io.volume_mask  # noqa: F401
        import pipeline.preprocess.volume  # noqa: F401


def process(job: SampleJob) -> SampleResult:
    """Run one job, turning every input problem into a rejection (never raising for bad data)."""
    _crash_hook(job)
    try:
        if job.kind == "2d":
            return _process_2d(job)
        return _process_3d(job)
    except InputRejected as exc:
        return SampleResult(job.position, rejection=(exc.reason, exc.code),
                            excluded=list(getattr(exc, "excluded", [])))
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # a bug or an unforeseen file: keep the stage alive, say so
        if os.environ.get("MEDVISION_DEBUG"):
            log.exception("unexpected error on input #%d", job.position)
        return SampleResult(
            job.position,
            rejection=(f"unexpected error ({type(exc).__name__}); set MEDVISION_DEBUG=1 for the "
                       "traceback (may print header values)", "error"),
        )


def _crash_hook(job: SampleJob) -> None:
    """Test hook: kill this worker process abruptly, as a segfaulting C decoder would."""
    target = os.environ.get("MEDVISION_TEST_CRASH_ON")
    if target and job.path.name == target:
        os._exit(70)


def _to_uint8(image01: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(image01, 0.0, 1.0) * 255.0).astype(np.uint8)


def _process_2d(job: SampleJob) -> SampleResult:
    from pipeline.io.dicom_image import read_image_mask
    from pipeline.io.radiograph import read_radiograph
    from pipeline.preprocess.geometry import PadResize
    from pipeline.preprocess.image import resize_with_pad

    s = job.settings
    source = read_radiograph(job.path, window=s.window if isinstance(s.window, str) else tuple(s.window),
                             percentiles=tuple(s.percentiles), frame=s.frame,
                             max_pixel_bytes=s.max_pixel_bytes, max_colour_share=s.max_colour_share)
    image, meta = source.image, source.meta
    size = tuple(s.image_size)
    resized, _ = resize_with_pad(image, size)
    meta["geometry"] = PadResize.fit(image.shape[:2], size).to_json()
    mask_out = None
    if job.mask is not None:
        mask = read_image_mask(job.mask, shape=image.shape)
        mask_out, _ = resize_with_pad(mask, size, mode="mask")
        mask_out = mask_out[..., None]
    patient = None
    if job.needs_patient_id and source.dataset is not None:
        patient = str(source.dataset.get("PatientID", "") or "").strip() or None
    return SampleResult(job.position, image=_to_uint8(resized)[..., None], mask=mask_out,
                        meta=meta, header_patient_id=patient, source=source if job.keep_source else None)


def _process_3d(job: SampleJob) -> SampleResult:
    from pipeline.io.series import series_patient_id
    from pipeline.io.volume import read_volume
    from pipeline.io.volume_mask import read_volume_mask
    from pipeline.preprocess.geometry import ResampleCrop
    from pipeline.preprocess.volume import crop_or_pad, resample_mask, resample_to_spacing, window_hu

    s = job.settings
    volume, meta = read_volume(job.path, max_voxels=s.max_voxels, on_missing_slices=s.on_missing_slices,
                               min_slices=s.min_slices, max_pixel_bytes=s.max_pixel_bytes)
    patient = series_patient_id(job.path) if job.needs_patient_id and job.path.is_dir() else None
    excluded = list(meta.pop("excluded", []))
    target = tuple(s.target_spacing)
    shape = tuple(s.volume_shape)
    resampled = resample_to_spacing(volume, meta["spacing"], target, order=1)
    cropped, offsets = crop_or_pad(resampled, shape, pad_value=CT_PAD_HU)
    meta["geometry"] = ResampleCrop.from_steps(volume.shape, meta["spacing"], target, offsets).to_json()
    image = _to_uint8(window_hu(cropped, *s.hu_window))[..., None]
    mask_out = None
    if job.mask is not None:
        mask = read_volume_mask(job.mask, image_meta=meta)
        mask_r = resample_mask(mask, meta["spacing"], target).astype(np.float32)  # keeps small lesions
        mask_c, _ = crop_or_pad(mask_r, shape, pad_value=0.0)
        mask_out = (mask_c > 0.5).astype(np.uint8)[..., None]
    return SampleResult(job.position, image=image, mask=mask_out, meta=meta,
                        header_patient_id=patient, excluded=excluded,
                        source=(volume, dict(meta)) if job.keep_source else None)
