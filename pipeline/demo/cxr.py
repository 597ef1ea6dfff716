"""The chest X-ray demo: ~450 2D DICOM radiographs (normal / opacity) from ~150 fake patients.

Each image is rendered in a physical intensity (see :mod:`pipeline.demo.xray_phantom`), then
converted to stored values by that file's :class:`Encoding`: photometric interpretation, bit
depth (with garbage in unused high bits for some 12-bit files), signedness, rescale
slope/intercept (including negative slopes), window / VOI LUT / SIGMOID, transfer syntax,
multi-frame and RGB secondary captures. A correct reader (stored -> modality LUT -> VOI ->
MONOCHROME1 inversion) sees look-alike images whatever the encoding; a reader that skips a step
sees visibly wrong ones.

Folder written (paths relative to the output folder, no PHI in any name)::

    labels.csv             path,label,mask  (label: normal | opacity)
    images/img_0000.dcm    one file per row (three rows are deliberately broken)
    masks/img_0000.png     uint8 0/255 visible lesion support (see shapes.VISIBLE_PHYSICAL),
                           same rows x cols; opacity rows only

Negative-slope files never carry a window: ``pydicom.pixels.apply_voi_lut`` (3.0) derives the
window's output range from the rescaled stored range, which a negative slope turns upside down,
so pydicom would return the image inverted although the file is valid.

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
#: Physical intensity mapped to the top of each file's used stored range.
NOMINAL_MAX = 1.25
_KIND = 1  # seed-sequence tag of this demo
#: Opacity half-maximum radius as a fraction of the image width (uniform) and added physical
#: intensity at its centre (log-uniform; the aerated lung is ~0.2-0.35 below soft tissue).
LESION_RADIUS = (0.05, 0.12)
LESION_AMPLITUDE = (0.2, 0.5)

_BITS = {"8": (8, 8, False), "12": (16, 12, False), "14": (16, 14, False),
         "16": (16, 16, False), "16s": (16, 16, True)}
_UNCOMPRESSED = (dw.EXPLICIT_VR_LITTLE_ENDIAN, dw.IMPLICIT_VR_LITTLE_ENDIAN)
_TS_CHOICES = (dw.EXPLICIT_VR_LITTLE_ENDIAN, dw.IMPLICIT_VR_LITTLE_ENDIAN, dw.RLE_LOSSLESS,
               dw.JPEG_2000_LOSSLESS, dw.JPEG_2000, dw.JPEG_LS_LOSSLESS, dw.JPEG_BASELINE_8BIT)
_TS_PROBS = (0.52, 0.14, 0.07, 0.08, 0.05, 0.08, 0.06)
_DESCRIPTIONS = ("CHEST PA", "CHEST AP PORTABLE", "THORAX PA ERECT", "Chest 1 view",
                 "CXR PA/AP", "Thorax p.a.")


@dataclass(frozen=True)
class Encoding:
    """How one file stores its image.

    Attributes:
        modality: ``"CR"`` or ``"DX"`` (with the matching SOP class; RGB files are Secondary
            Capture).
        photometric: ``"MONOCHROME1"``, ``"MONOCHROME2"`` or ``"RGB"``.
        bits: Key of the bit layout: ``"8"``, ``"12"``, ``"14"``, ``"16"``, ``"16s"``
            (signed 16-bit with a rescale intercept shifting back).
        garbage: Random bits in the unused high bits (12-bit, uncompressed only).
        rescale: ``"none"`` (absent), ``"positive"`` or ``"negative"`` slope.
        voi: ``"none"``, ``"window"``, ``"lut"`` (VOI LUT Sequence) or ``"sigmoid"``.
        transfer_syntax: Transfer Syntax UID.
        frames: Number of frames (1-3).
    """

    modality: str
    photometric: str
    bits: str
    garbage: bool
    rescale: str
    voi: str
    transfer_syntax: str
    frames: int


#: Encodings forced onto the first images (in shuffled order) so even a tiny demo shows every
#: pitfall; the rest are drawn with realistic proportions.
FORCED: tuple[dict[str, Any], ...] = (
    {"photometric": "MONOCHROME1", "voi": "window"},
    {"rescale": "negative", "bits": "12", "transfer_syntax": dw.EXPLICIT_VR_LITTLE_ENDIAN},
    {"bits": "12", "garbage": True, "transfer_syntax": dw.EXPLICIT_VR_LITTLE_ENDIAN},
    {"bits": "16s", "transfer_syntax": dw.IMPLICIT_VR_LITTLE_ENDIAN},
    {"voi": "lut", "bits": "12"},
    {"voi": "sigmoid", "photometric": "MONOCHROME1"},
    {"transfer_syntax": dw.JPEG_2000_LOSSLESS},
    {"transfer_syntax": dw.JPEG_2000},
    {"transfer_syntax": dw.JPEG_LS_LOSSLESS, "photometric": "MONOCHROME1"},
    {"transfer_syntax": dw.RLE_LOSSLESS},
    {"transfer_syntax": dw.JPEG_BASELINE_8BIT, "bits": "8"},
    {"frames": 3},
    {"photometric": "RGB", "transfer_syntax": dw.EXPLICIT_VR_LITTLE_ENDIAN},
)


def draw_encoding(rng: np.random.Generator, force: dict[str, Any] | None = None) -> Encoding:
    """Draw a file encoding with realistic proportions, then apply ``force`` and constraints.

    Constraints: JPEG Baseline only for 8-bit; garbage bits only for 12-bit uncompressed; RGB
    files are 8-bit, unrescaled, without VOI and never JPEG 2000/JPEG-LS; signed files always
    carry a rescale; negative-slope files carry no window; a VOI LUT is only used with an
    identity (or absent) rescale so it is indexed by integers and covers the data.
    """
    drawn: dict[str, Any] = {
        "modality": "CR" if rng.random() < 0.4 else "DX",
        "photometric": _choice(rng, ("MONOCHROME2", "MONOCHROME1", "RGB"), (0.68, 0.3, 0.02)),
        "bits": _choice(rng, ("8", "12", "14", "16", "16s"), (0.14, 0.45, 0.15, 0.15, 0.11)),
        "garbage": rng.random() < 0.45,  # ~1/3 of all 12-bit files (compressed ones can't)
        "rescale": _choice(rng, ("none", "positive", "negative"), (0.45, 0.5, 0.05)),
        "voi": _choice(rng, ("none", "window", "lut", "sigmoid"), (0.45, 0.47, 0.04, 0.04)),
        "transfer_syntax": _choice(rng, _TS_CHOICES, _TS_PROBS),
        "frames": int(_choice(rng, (1, 2, 3), (0.97, 0.015, 0.015))),
    }
    drawn.update(force or {})
    if drawn["transfer_syntax"] == dw.JPEG_BASELINE_8BIT:
        drawn["bits"] = "8"
    if drawn["photometric"] == "RGB":
        drawn.update(bits="8", rescale="none", voi="none")
        if drawn["transfer_syntax"] not in (*_UNCOMPRESSED, dw.RLE_LOSSLESS,
                                            dw.JPEG_BASELINE_8BIT):
            drawn["transfer_syntax"] = dw.EXPLICIT_VR_LITTLE_ENDIAN
    if drawn["bits"] == "16s":
        drawn["rescale"] = "positive"
    if drawn["rescale"] == "negative":
        drawn["voi"] = "none"  # see the module docstring: pydicom windows these inverted
    drawn["garbage"] = bool(drawn["garbage"] and drawn["bits"] == "12"
                            and drawn["transfer_syntax"] in _UNCOMPRESSED)
    return Encoding(**drawn)


def _choice(rng: np.random.Generator, options: tuple[Any, ...], probs: tuple[float, ...]) -> Any:
    return options[int(rng.choice(len(options), p=np.asarray(probs) / sum(probs)))]


def encode_pixels(physical: np.ndarray, enc: Encoding,
                  rng: np.random.Generator) -> dict[str, Any]:
    """Physical frames ``(F, rows, cols)`` -> keyword arguments of ``make_image_dataset``.

    Stored values use a random sub-range of the file's bit depth; MONOCHROME1 stores the
    inverted image; a negative slope stores it flipped so the rescaled values are right.
    """
    t = np.clip(physical / NOMINAL_MAX, 0.0, 1.0)
    if enc.photometric == "RGB":
        return {"pixels": _screenshot(t[0] if enc.frames == 1 else t), "photometric": "RGB",
                "bits_allocated": 8, "sop_class_uid": dw.SECONDARY_CAPTURE_STORAGE}
    allocated, stored_bits, signed = _BITS[enc.bits]
    if enc.photometric == "MONOCHROME1":
        t = 1.0 - t
    s_lo, s_hi = _stored_range(enc.bits, rng)
    slope, intercept = _rescale(enc, s_lo, s_hi, rng)
    frac = t if slope > 0 else 1.0 - t  # a negative slope stores the data flipped
    stored = np.rint(s_lo + frac * (s_hi - s_lo)).astype(np.int32)
    v_ends = sorted((slope * s_lo + intercept, slope * s_hi + intercept))
    kwargs: dict[str, Any] = {
        "pixels": stored[0] if enc.frames == 1 else stored,
        "photometric": enc.photometric, "bits_allocated": allocated,
        "bits_stored": stored_bits, "signed": signed,
        "rescale": None if enc.rescale == "none" else (slope, intercept),
        "unused_bits_rng": rng if enc.garbage else None,
        "sop_class_uid": dw.CR_IMAGE_STORAGE if enc.modality == "CR" else dw.DX_IMAGE_STORAGE,
    }
    kwargs.update(_voi(enc, v_ends, rng))
    return kwargs


def _stored_range(bits: str, rng: np.random.Generator) -> tuple[int, int]:
    """The part of the stored range this file uses (detectors rarely fill all 16 bits)."""
    if bits == "16s":
        return -int(rng.integers(1500, 16000)), int(rng.integers(1500, 16000))
    top = 2 ** _BITS[bits][1] - 1
    hi_frac = rng.uniform(0.35, 0.9) if bits == "16" else rng.uniform(0.85, 1.0)
    return int(rng.uniform(0.0, 0.06) * top), int(hi_frac * top)


def _rescale(enc: Encoding, s_lo: int, s_hi: int,
             rng: np.random.Generator) -> tuple[float, float]:
    if enc.bits == "16s":
        return 1.0, float(-s_lo + int(rng.integers(0, 100)))
    if enc.rescale == "negative":
        return -1.0, float(s_hi)
    if enc.rescale == "none":
        return 1.0, 0.0
    if enc.voi == "lut":
        return 1.0, 0.0  # integer rescaled values: a VOI LUT is indexed by them
    slope = float(_choice(rng, (0.25, 0.5, 1.0, 2.0, 4.0), (1, 2, 3, 2, 1)))
    return slope, float(rng.integers(-1024, 1025))


def _voi(enc: Encoding, v_ends: list[float], rng: np.random.Generator) -> dict[str, Any]:
    """Window / VOI LUT / SIGMOID in rescaled units covering the used data range."""
    lo, hi = v_ends
    center = lo + (hi - lo) * rng.uniform(0.42, 0.55)
    width = (hi - lo) * rng.uniform(0.8, 1.05)
    if enc.voi == "window":
        return {"window": (round(center, 1), round(max(width, 2.0), 1))}
    if enc.voi == "sigmoid":
        return {"window": (round(center, 1), round(max(width * 0.6, 2.0), 1)),
                "extra_voi": {"VOILUTFunction": "SIGMOID"}}
    if enc.voi == "lut":
        first = max(0, int(np.floor(lo)))
        n = min(65536, int(np.ceil(hi)) - first + 1)
        x = np.linspace(-1.0, 1.0, n)
        curve = 0.5 + 0.5 * np.tanh(2.0 * x) / np.tanh(2.0)
        return {"voi_lut": np.rint(curve * 65535).astype(np.uint16),
                "voi_lut_first_mapped": first}
    return {}


def _screenshot(t: np.ndarray) -> np.ndarray:
    """An RGB "screen capture" of the displayed chest: slight tint, border, side marker."""
    g = np.rint(t * 255.0).astype(np.float32)
    rgb = np.stack([g, g * 0.97 + 4.0, g * 0.92 + 10.0], axis=-1)
    rgb[..., :2, :, :] = rgb[..., -2:, :, :] = rgb[..., :, :2, :] = rgb[..., :, -2:, :] = 90.0
    rgb[..., 6:16, 6:12, :] = 250.0  # the burnt-in "R" marker of a screenshot
    return np.clip(rgb, 0, 255).astype(np.uint8)


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
    anatomy, phis = patients(seed, _KIND, n_patients, DEFAULT_PATIENTS, draw_chest_anatomy)
    out_dir = Path(out_dir)
    rows = [_write_job(out_dir, job, anatomy[job.patient], phis[job.patient], seed)
            for job in plan(seed, len(anatomy))]
    return write_labels(out_dir, ["path", "label", "mask"], rows)


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
        n = int(_choice(rng, (1, 2, 3), (0.5, 0.3, 0.2)))
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
        "SeriesDescription": _choice(rng, _DESCRIPTIONS, (1,) * len(_DESCRIPTIONS)),
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
