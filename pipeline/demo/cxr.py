"""The chest X-ray demo: ~450 2D DICOM radiographs (normal / opacity) from ~150 fake patients.

Each image is rendered in a physical intensity (see :mod:`pipeline.demo.xray_phantom`), then
stored by that file's encoding (photometric interpretation, bit depth, rescale, VOI, transfer
syntax, frames: :mod:`pipeline.demo.cxr_encoding`), so a reader that skips a step of the DICOM
pixel pipeline sees visibly wrong images. This module plans the images (:func:`plan`), renders
them and writes the folder (:func:`generate`).

Folder written (paths relative to the output folder, no PHI in any name)::

    labels.csv             path,label,mask  (label: normal | opacity)
    images/img_0000.dcm    one file per row (three rows are deliberately broken)
    masks/img_0000.png     uint8 0/255 visible lesion support (see shapes.VISIBLE_PHYSICAL),
                           same rows x cols; opacity rows only

Broken rows (quarantine path): one truncated DICOM, one PNG named ``.dcm``, one missing file.
Multi-frame files show 2-3 similar views; their label and mask refer to the middle frame.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.demo import dicom_writer as dw
from pipeline.demo import patients, write_labels, write_png
from pipeline.demo.cxr_encoding import FORCED, NOMINAL_MAX, Encoding, choice, draw_encoding, encode_pixels
from pipeline.demo.dicom_files import save_dataset
from pipeline.demo.fake_phi import PHI, fake_accession, fake_date
from pipeline.demo.shapes import Blob
from pipeline.demo.xray_phantom import (
    Canvas,
    ChestAnatomy,
    draw_chest_anatomy,
    draw_exposure,
    draw_pose,
    render_chest,
    sample_lung_point,
)

DEFAULT_PATIENTS = 150
CLASSES = ("normal", "opacity")
_KIND = 1  # seed-sequence tag of this demo
#: Opacity half-maximum radius as a fraction of the image width (uniform) and added physical
#: intensity at its centre (log-uniform; the aerated lung is ~0.2-0.35 below soft tissue).
LESION_RADIUS = (0.05, 0.12)
LESION_AMPLITUDE = (0.2, 0.5)

_DESCRIPTIONS = ("CHEST PA", "CHEST AP PORTABLE", "THORAX PA ERECT", "Chest 1 view",
                 "CXR PA/AP", "Thorax p.a.")


@dataclass(frozen=True)
class ImageJob:
    """One row of labels.csv: which patient/study it belongs to and how it is (mis)written."""

    number: int
    patient: int
    label: str
    encoding: Encoding
    broken: str = ""  # "", "truncated", "not_dicom", "missing"


def plan(seed: int, n_patients: int) -> list[ImageJob]:
    """Decide images per patient (1-5), labels (40% opacity), encodings and broken rows."""
    rng = np.random.default_rng([seed, _KIND, 0])
    counts = rng.integers(1, 6, size=n_patients)
    patients = np.repeat(np.arange(n_patients), counts)
    n_opacity = min(max(round(0.4 * patients.size), 1), patients.size - 1)
    labels = np.full(patients.size, "normal", dtype=object)
    labels[rng.permutation(patients.size)[:n_opacity]] = "opacity"
    order = rng.permutation(patients.size)
    forced = {int(order[i]): f for i, f in enumerate(FORCED[: patients.size])}
    jobs = [ImageJob(0, int(p), str(lab), draw_encoding(rng, forced.get(i)))
            for i, (p, lab) in enumerate(zip(patients, labels, strict=True))]
    broken = (("truncated", "opacity"), ("not_dicom", "normal"), ("missing", "normal"))
    for kind, label in broken:
        enc = draw_encoding(rng, {"transfer_syntax": dw.EXPLICIT_VR_LITTLE_ENDIAN, "frames": 1,
                                  "photometric": "MONOCHROME2"})
        jobs.insert(int(rng.integers(0, len(jobs) + 1)),
                    ImageJob(0, int(rng.integers(0, n_patients)), label, enc, broken=kind))
    return [dataclasses.replace(job, number=i) for i, job in enumerate(jobs)]


def generate(out_dir: Path, *, seed: int = 0, n_patients: int | None = None) -> Path:
    """Write the CXR demo into ``out_dir``; return the path of its labels.csv.

    Args:
        out_dir: Destination folder (created).
        seed: Everything (anatomy, PHI, encodings, noise) derives from it.
        n_patients: Number of fake patients (default 150, ~450 images), >= 1.

    Raises:
        ValueError: ``n_patients < 1``.
    """
    from pipeline.utils.processes import ordered_map

    anatomy, phis = patients(seed, _KIND, n_patients, DEFAULT_PATIENTS, draw_chest_anatomy)
    out_dir = Path(out_dir)
    # each image draws from its own generator: the same bytes on one core or several
    jobs = [(out_dir, job, anatomy[job.patient], phis[job.patient], seed)
            for job in plan(seed, len(anatomy))]
    rows = ordered_map(_write_job_args, jobs, chunksize=8)
    return write_labels(out_dir, ["path", "label", "mask"], rows)


def _write_job_args(args: tuple[Path, ImageJob, ChestAnatomy, PHI, int]) -> list[str]:
    return _write_job(*args)


def _write_job(out_dir: Path, job: ImageJob, anatomy: ChestAnatomy, phi: PHI,
               seed: int) -> list[str]:
    rng = np.random.default_rng([seed, _KIND, 3, job.number])
    name = f"img_{job.number:04d}"
    rel = f"images/{name}.dcm"
    if job.broken == "missing":
        return [rel, job.label, ""]
    physical, mask = _render(anatomy, job, rng)
    mask_rel = ""
    if job.label == "opacity":
        mask_rel = f"masks/{name}.png"
        write_png(out_dir / mask_rel, mask.astype(np.uint8) * 255)
    if job.broken == "not_dicom":
        write_png(out_dir / rel, np.rint(np.clip(physical[0] / NOMINAL_MAX, 0, 1) * 255))
        return [rel, job.label, mask_rel]
    study_phi = dataclasses.replace(phi, accession_number=fake_accession(rng),
                                    study_date=fake_date(rng, 2015, 2024))
    kwargs = encode_pixels(physical, job.encoding, rng)
    extra = _header_extras(job, physical.shape[-1], rng) | kwargs.pop("extra_voi", {})
    ds = dw.make_image_dataset(modality=job.encoding.modality, phi=study_phi,
                               uid_key=f"cxr|{seed}|{job.number}", extra=extra, **kwargs)
    save_dataset(ds, out_dir / rel, transfer_syntax=job.encoding.transfer_syntax)
    if job.broken == "truncated":
        _truncate(out_dir / rel)
    return [rel, job.label, mask_rel]


def _render(anatomy: ChestAnatomy, job: ImageJob,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Physical frames ``(F, rows, cols)`` and the middle frame's lesion mask."""
    cols = int(rng.integers(224, 385))
    rows = int(np.clip(round(cols * rng.uniform(0.8, 1.25)), 224, 384))
    pose, exposure = draw_pose(rng), draw_exposure(rng)
    unit = min(rows, cols) / 2.0
    lesions: tuple[Blob, ...] = ()
    if job.label == "opacity":
        n = int(choice(rng, (1, 2, 3), (0.5, 0.3, 0.2)))
        lesions = tuple(
            Blob(sample_lung_point(anatomy, rng), rng.uniform(*LESION_RADIUS) * cols / unit,
                 float(np.exp(rng.uniform(*np.log(LESION_AMPLITUDE)))),
                 aspect=rng.uniform(0.65, 1.0), angle=rng.uniform(0, np.pi))
            for _ in range(n))
    frames, masks = [], []
    for offset in np.arange(job.encoding.frames) - job.encoding.frames // 2:
        step = dataclasses.replace(pose, dx=pose.dx + 0.02 * offset, dy=pose.dy + 0.01 * offset)
        img, mask = render_chest(anatomy, Canvas(rows, cols, step), lesions=lesions,
                                 exposure=exposure, rng=rng)
        frames.append(img)
        masks.append(mask)
    return np.stack(frames), masks[job.encoding.frames // 2]


def _header_extras(job: ImageJob, cols: int, rng: np.random.Generator) -> dict[str, Any]:
    """Acquisition context: description, view, numbers and pixel spacing.

    The spacing is a 350-430 mm field of view (a 0.14-0.2 mm detector pitch at native size)
    over the demo matrix, so physical sizes stay realistic: about 0.9-1.9 mm per pixel.
    """
    spacing = round(rng.uniform(350.0, 430.0) / cols, 4)
    extra: dict[str, Any] = {
        "SeriesDescription": choice(rng, _DESCRIPTIONS, (1,) * len(_DESCRIPTIONS)),
        "BodyPartExamined": "CHEST",
        "ViewPosition": "AP" if rng.random() < 0.3 else "PA",
        # along a row towards the patient's left, down a column towards the feet: the usual display of a
        # frontal chest film (patient's right on the viewer's left), PA or AP
        "PatientOrientation": ["L", "F"],
        "ImagerPixelSpacing": [spacing, spacing],
        "SeriesNumber": int(rng.integers(1, 5)),
        "InstanceNumber": int(rng.integers(1, 3)),
    }
    if job.encoding.modality == "CR" or rng.random() < 0.5:
        extra["PixelSpacing"] = [spacing, spacing]
    if job.encoding.modality == "DX" and job.encoding.photometric != "RGB":
        extra["PresentationIntentType"] = "FOR PRESENTATION"
    if job.encoding.photometric == "RGB":
        extra.update(ConversionType="WSD", ImageType=["DERIVED", "SECONDARY"])
    return extra


def _truncate(path: Path) -> None:
    """Cut the file inside its Pixel Data (keeps the header readable)."""
    from pipeline.utils.atomic import write_bytes

    data = path.read_bytes()
    write_bytes(path, data[: len(data) - len(data) // 3])
