"""What the chest CT demo (:mod:`pipeline.demo.ct`) contains: one :class:`VolumeSpec` per
volume (patient, label, format and the acquisition and storage variant) from :func:`plan`, and
the orientation tables the variants name.

Forced variants (:data:`FORCED_DICOM`, :data:`FORCED_NIFTI`) go to the first volumes of each
format so even a tiny demo shows every pitfall; the rest are drawn. The geometry conventions the
orientations follow are in :mod:`pipeline.demo.ct`'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.demo import dicom_writer as dw

KIND = 2  # seed-sequence tag of this demo
#: LPS direction cosines of the (i, j) voxel axes; k follows the slice normal i x j.
DICOM_ORIENTATIONS = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "flip_rows": ((-1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "rot180": ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
}
#: NIfTI storage orientations (RAS axis codes) -> LPS directions of the (i, j, k) axes.
NIFTI_ORIENTATIONS = {
    "RAS": ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "LAS": ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "LPS": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "RAI": ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0)),
}


@dataclass(frozen=True)
class VolumeSpec:
    """How one volume is acquired and written.

    Attributes:
        number: Index in labels.csv (``vol_{number:03d}``).
        patient: Patient index.
        label: ``"normal"`` or ``"nodule"``.
        fmt: ``"dicom"`` or ``"nifti"``.
        orientation: Key of :data:`DICOM_ORIENTATIONS` or :data:`NIFTI_ORIENTATIONS`.
        slice_spacing: mm between slice centres.
        signed: DICOM stored as int16 HU (intercept 0) instead of uint16 HU + 1024.
        transfer_syntax: DICOM transfer syntax.
        instance_order: ``"ascending"`` or ``"descending"`` InstanceNumber along ``k``.
        missing_slice: Drop one middle slice file.
        localizer: Add a coronal LOCALIZER image to the series folder.
    """

    number: int
    patient: int
    label: str
    fmt: str
    orientation: str = "axial"
    slice_spacing: float = 5.0
    signed: bool = False
    transfer_syntax: str = dw.EXPLICIT_VR_LITTLE_ENDIAN
    instance_order: str = "ascending"
    missing_slice: bool = False
    localizer: bool = False


#: Variants forced onto the first DICOM / NIfTI volumes (shuffled order) so even a tiny demo
#: shows each pitfall; the rest are drawn.
FORCED_DICOM: tuple[dict[str, Any], ...] = (
    {"instance_order": "descending", "localizer": True},
    {"orientation": "flip_rows", "missing_slice": True},
    {"signed": True, "transfer_syntax": dw.JPEG_2000_LOSSLESS},
    {"orientation": "rot180", "missing_slice": True, "instance_order": "descending",
     "transfer_syntax": dw.RLE_LOSSLESS},
    {"orientation": "flip_rows", "transfer_syntax": dw.IMPLICIT_VR_LITTLE_ENDIAN},
)
FORCED_NIFTI: tuple[dict[str, Any], ...] = (
    {"orientation": "LPS"}, {"orientation": "RAS"}, {"orientation": "LAS"}, {"orientation": "RAI"},
)


def plan(seed: int, n_patients: int) -> list[VolumeSpec]:
    """Volumes per patient (1-2, ~4 per 3 patients), labels (45% nodule), formats (75% DICOM).

    Forced variants go to the first DICOM / NIfTI volumes in a shuffled order; the first
    NIfTI volume and the second DICOM volume (flipped rows, missing slice) get nodules first,
    so even a tiny demo has masks for both formats and for a non-trivial series geometry.
    """
    rng = np.random.default_rng([seed, KIND, 0])
    second = rng.permutation(n_patients)[: round(n_patients / 3)]
    patients = np.sort(np.concatenate([np.arange(n_patients), second]))
    n = patients.size
    n_nifti = min(max(round(0.25 * n), 1), n - 1)
    fmts = np.full(n, "dicom", dtype=object)
    fmts[rng.permutation(n)[:n_nifti]] = "nifti"
    visit = [int(v) for v in rng.permutation(n)]
    by_fmt = {f: [v for v in visit if fmts[v] == f] for f in ("dicom", "nifti")}
    first = by_fmt["nifti"][:1] + by_fmt["dicom"][1:2]
    priority = first + [int(v) for v in rng.permutation(n) if v not in first]
    labels = np.full(n, "normal", dtype=object)
    labels[priority[: min(max(round(0.45 * n), 1), n - 1)]] = "nodule"
    specs = []
    for fmt, forced in (("dicom", FORCED_DICOM), ("nifti", FORCED_NIFTI)):
        for rank, number in enumerate(by_fmt[fmt]):
            force = forced[rank] if rank < len(forced) else {}
            specs.append(_draw_spec(rng, number, int(patients[number]), str(labels[number]),
                                    fmt, force))
    return sorted(specs, key=lambda s: s.number)


def _draw_spec(rng: np.random.Generator, number: int, patient: int, label: str, fmt: str,
               force: dict[str, Any]) -> VolumeSpec:
    if fmt == "nifti":
        orientation = str(rng.choice(["RAS", "RAS", "LAS", "LPS", "RAI"]))
    else:
        orientation = str(rng.choice(["axial"] * 8 + ["flip_rows", "rot180"]))
    # RLE only where forced: pydicom's pure-Python RLE encoder costs ~1 s per series.
    ts = str(rng.choice([dw.EXPLICIT_VR_LITTLE_ENDIAN] * 17 + [dw.IMPLICIT_VR_LITTLE_ENDIAN] * 2
                        + [dw.JPEG_2000_LOSSLESS]))
    drawn: dict[str, Any] = {
        "orientation": orientation, "slice_spacing": float(rng.choice([2.5, 3.0, 5.0])),
        "signed": bool(rng.random() < 0.25), "transfer_syntax": ts,
        "instance_order": "descending" if rng.random() < 0.4 else "ascending",
    }
    return VolumeSpec(number, patient, label, fmt, **{**drawn, **force})
