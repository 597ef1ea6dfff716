"""The chest CT demo: ~160 3D volumes (normal / nodule) from ~120 fake patients.

Folder written (no PHI in any name)::

    labels.csv                 path,label,mask  (label: normal | nodule)
    series/vol_000/<token>.dcm one DICOM series per folder (~75% of volumes)
    volumes/vol_001.nii.gz     NIfTI volumes, int16 HU (~25%)
    masks/vol_000.nii.gz       uint8 0/1 nodule support on the image's own grid (nodule rows)

Geometry conventions (what a reader must reproduce to overlay the masks):

* A DICOM series is a voxel grid with index ``i`` = column, ``j`` = row, ``k`` = slice in
  *spatial order*: slices sorted by ``ImagePositionPatient`` projected on the normal
  ``n = row_dir x col_dir`` (``row_dir``, ``col_dir`` = the two ``ImageOrientationPatient``
  triplets), increasing. Its LPS affine has columns ``row_dir * PixelSpacing[1]``,
  ``col_dir * PixelSpacing[0]``, ``n * slice_spacing`` and translation = the first slice's
  ``ImagePositionPatient``. The NIfTI affine is ``diag(-1, -1, 1, 1) @ affine_lps`` (RAS, the
  nibabel convention) and the mask array is indexed ``[i, j, k]``.
* A series with a missing slice keeps its mask on the complete grid (the physical grid the
  scanner sampled): the dropped position simply has no file.
* NIfTI images and masks share one affine, with qform and sform (code 1, scanner) set; some
  are stored in non-canonical orientations (LPS, LAS, RAI) rather than RAS.

Content (HU): air, fat and muscle layers, two lungs (about -850) with thin vessel trees and
small vessel blobs, mediastinum and heart, aorta, spine and ribs, noise. ``nodule`` volumes
hold 1-3 soft-edged spheroids of +20..+60 HU (radius 14-22 mm, or 9-14 mm for the subtle 20%),
half of them with a ground-glass halo; the mask is the visible nodule, where it raises HU by
>= 100 over the tissue it replaces (:data:`pipeline.demo.shapes.VISIBLE_HU`; ~1.47 half-maximum
radii, not the half-maximum core), the halo not included.

Series variants: InstanceNumber ascending or descending along the spatial order; random file
names; mostly axial ``(1,0,0,0,1,0)``, some ``(-1,0,0,0,1,0)`` or ``(-1,0,0,0,-1,0)``; a
dropped middle slice in two series; a coronal LOCALIZER (own SeriesInstanceUID, same study and
frame of reference) inside one series folder; stored ``uint16`` = HU + 1024 with intercept
-1024 (BitsStored 12), or ``int16`` = HU with intercept 0; a few series RLE or JPEG 2000
Lossless.
"""

from __future__ import annotations

import dataclasses
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.demo import dicom_writer as dw
from pipeline.demo import patients, write_labels
from pipeline.demo.ct_phantom import (
    Grid,
    ThoraxAnatomy,
    draw_thorax_anatomy,
    render_thorax,
    sample_lung_point_3d,
)
from pipeline.demo.dicom_files import save_dataset
from pipeline.demo.fake_phi import PHI, fake_accession, fake_date
from pipeline.demo.shapes import Blob

DEFAULT_PATIENTS = 120
CLASSES = ("normal", "nodule")
_KIND = 2  # seed-sequence tag of this demo
_MATRIX = 96
#: Nodule half-maximum radius (mm): most nodules, and the subtle fifth. The ingest's 5 mm voxels
#: see the subtle ones as 4-6 voxel wide spots, the vessel look-alikes (2-3.5 mm) as single voxels.
NODULE_RADIUS = (14.0, 22.0)
SUBTLE_RADIUS = (9.0, 14.0)
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
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


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
    rng = np.random.default_rng([seed, _KIND, 0])
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


def generate(out_dir: Path, *, seed: int = 0, n_patients: int | None = None) -> Path:
    """Write the CT demo into ``out_dir``; return the path of its labels.csv.

    Args:
        out_dir: Destination folder (created).
        seed: Everything (anatomy, PHI, variants, noise) derives from it.
        n_patients: Number of fake patients (default 120, ~160 volumes), >= 1.

    Raises:
        ValueError: ``n_patients < 1``.
    """
    anatomy, phis = patients(seed, _KIND, n_patients, DEFAULT_PATIENTS, draw_thorax_anatomy)
    out_dir = Path(out_dir)
    rows = [_write_volume(out_dir, spec, anatomy[spec.patient], phis[spec.patient], seed)
            for spec in plan(seed, len(anatomy))]
    return write_labels(out_dir, ["path", "label", "mask"], rows)


def make_grid(spec: VolumeSpec, anatomy: ThoraxAnatomy,
              rng: np.random.Generator) -> Grid:
    """The voxel grid of a volume: 96 x 96 at 3.2-3.8 mm, 40-64 slices covering the lungs."""
    if spec.fmt == "dicom":
        row_dir, col_dir = (np.array(v) for v in DICOM_ORIENTATIONS[spec.orientation])
        k_dir = np.cross(row_dir, col_dir)
    else:
        row_dir, col_dir, k_dir = (np.array(v) for v in NIFTI_ORIENTATIONS[spec.orientation])
    pixel = round(float(rng.uniform(3.2, 3.8)), 3)
    n_k = int(np.clip(round(rng.uniform(200.0, 300.0) / spec.slice_spacing), 40, 64))
    center = np.array([rng.uniform(-8.0, 8.0), anatomy.body_y + rng.uniform(-8.0, 8.0),
                       anatomy.lung_z + rng.uniform(-20.0, 20.0)])
    steps = np.stack([row_dir * pixel, col_dir * pixel, k_dir * spec.slice_spacing], axis=1)
    affine = np.eye(4)
    affine[:3, :3] = steps
    affine[:3, 3] = center - steps @ (np.array([_MATRIX, _MATRIX, n_k]) - 1) / 2.0
    return Grid((n_k, _MATRIX, _MATRIX), np.round(affine, 4))


def _write_volume(out_dir: Path, spec: VolumeSpec, anatomy: ThoraxAnatomy, phi: PHI,
                  seed: int) -> list[str]:
    rng = np.random.default_rng([seed, _KIND, 3, spec.number])
    grid = make_grid(spec, anatomy, rng)
    nodules, halos = _draw_nodules(anatomy, grid, rng) if spec.label == "nodule" else ((), ())
    hu, mask = render_thorax(anatomy, grid, nodules=nodules, halos=halos,
                             noise_hu=float(rng.uniform(8.0, 25.0)), rng=rng)
    name = f"vol_{spec.number:03d}"
    mask_rel = ""
    if spec.label == "nodule":
        mask_rel = f"masks/{name}.nii.gz"
        write_nifti(out_dir / mask_rel, mask.astype(np.uint8), grid)
    if spec.fmt == "nifti":
        rel = f"volumes/{name}.nii.gz"
        write_nifti(out_dir / rel, _to_int16(hu), grid)
    else:
        rel = f"series/{name}"
        study_phi = dataclasses.replace(phi, accession_number=fake_accession(rng),
                                        study_date=fake_date(rng, 2015, 2024))
        _write_series(out_dir / rel, spec, grid, hu, study_phi, anatomy, rng)
    return [rel, spec.label, mask_rel]


def _draw_nodules(anatomy: ThoraxAnatomy, grid: Grid, rng: np.random.Generator
                  ) -> tuple[tuple[Blob, ...], tuple[Blob, ...]]:
    """1-3 nodules inside the lungs and the grid, and their ground-glass halos.

    Radius 14-22 mm (80%) or 9-14 mm (20%, the subtle ones), +20..+60 HU; about half carry a
    -550..-400 HU halo out to 1.5-1.8 radii (not part of the mask).
    """
    count = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
    nodules, halos = [], []
    for _ in range(count):
        radius = float(rng.uniform(*NODULE_RADIUS) if rng.random() < 0.8
                       else rng.uniform(*SUBTLE_RADIUS))
        center = sample_lung_point_3d(anatomy, rng, depth=radius * 0.8, grid=grid,
                                      margin=radius / 2.5 + 1)
        aspect = float(rng.uniform(0.8, 1.15))
        nodules.append(Blob(center, radius, float(rng.uniform(20.0, 60.0)), aspect=aspect))
        if rng.random() < 0.5:
            halos.append(Blob(center, radius * float(rng.uniform(1.5, 1.8)),
                              float(rng.uniform(-550.0, -400.0)), aspect=aspect))
    return tuple(nodules), tuple(halos)


def _to_int16(hu: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def affine_ras(grid: Grid) -> np.ndarray:
    """The NIfTI (RAS) affine of a grid whose affine is LPS."""
    return _LPS_TO_RAS @ grid.affine


def write_nifti(path: Path, data_kji: np.ndarray, grid: Grid) -> None:
    """Write ``data`` (array axes k, j, i) as NIfTI-1 (axes i, j, k), deterministic gzip."""
    import nibabel as nib

    from pipeline.utils.atomic import write_bytes

    affine = affine_ras(grid)
    img = nib.Nifti1Image(np.ascontiguousarray(data_kji.transpose(2, 1, 0)), affine)
    img.header.set_data_dtype(data_kji.dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    write_bytes(path, gzip.compress(img.to_bytes(), compresslevel=1, mtime=0))


def _write_series(folder: Path, spec: VolumeSpec, grid: Grid, hu: np.ndarray,
                  phi: PHI, anatomy: ThoraxAnatomy, rng: np.random.Generator) -> None:
    """One file per slice, random names; optional dropped slice and localizer."""
    study_uid = dw.deterministic_uid("ct-study", phi.patient_id, phi.accession_number)
    series_uid = dw.deterministic_uid("ct-series", study_uid, str(spec.number))
    for_uid = dw.deterministic_uid("ct-for", study_uid)
    n_k = grid.shape[0]
    dropped = n_k // 2 + int(rng.integers(-2, 3)) if spec.missing_slice else -1
    window = (40.0, 400.0) if rng.random() < 0.5 else (-600.0, 1500.0)
    iop = tuple(float(v) for v in np.concatenate(DICOM_ORIENTATIONS[spec.orientation]))
    common = {"series_uid": series_uid, "study_uid": study_uid, "frame_of_reference_uid": for_uid,
              "phi": phi, "window": window, "orientation": iop,
              "pixel_spacing": (abs(grid.affine[:3, 1]).max(), abs(grid.affine[:3, 0]).max()),
              "slice_thickness": spec.slice_spacing}
    extra = {"SeriesDescription": "CHEST W/O CONTRAST 5mm" if spec.slice_spacing == 5.0 else
             "Thorax routine", "SeriesNumber": 2 + int(rng.integers(0, 4))}
    names = _tokens(rng, n_k + 1)
    for k in range(n_k):
        if k == dropped:
            continue
        instance = k + 1 if spec.instance_order == "ascending" else n_k - k
        ds = dw.make_ct_slice_dataset(
            _stored(hu[k], spec.signed), position=tuple(grid.affine[:3, :3] @ (0, 0, k)
                                                        + grid.affine[:3, 3]),
            rescale=(1.0, 0.0 if spec.signed else -1024.0), instance_number=instance,
            extra=extra, **common)
        save_dataset(ds, folder / f"{names[k]}.dcm", transfer_syntax=spec.transfer_syntax)
    if spec.localizer:
        _write_localizer(folder / f"{names[-1]}.dcm", anatomy, grid, common, rng)


def _write_localizer(path: Path, anatomy: ThoraxAnatomy, grid: Grid,
                     common: dict[str, Any], rng: np.random.Generator) -> None:
    """A coronal scout through the body centre: other orientation, size and series UID."""
    rows, cols, spacing = 128, 112, 3.0
    row_dir, col_dir = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])
    center = np.array([0.0, anatomy.body_y, anatomy.lung_z])
    steps = np.stack([row_dir * spacing, col_dir * spacing, np.cross(row_dir, col_dir)], axis=1)
    affine = np.eye(4)
    affine[:3, :3] = steps
    affine[:3, 3] = center - steps @ (np.array([cols, rows, 1]) - 1) / 2.0
    plane = Grid((1, rows, cols), affine)
    hu, _ = render_thorax(anatomy, plane, nodules=(), noise_hu=10.0, rng=rng)
    scout = {**common, "orientation": (1.0, 0.0, 0.0, 0.0, 0.0, -1.0),
             "pixel_spacing": (spacing, spacing), "slice_thickness": spacing,
             "series_uid": dw.deterministic_uid("ct-scout", common["series_uid"]),
             "window": (40.0, 400.0)}
    ds = dw.make_ct_slice_dataset(
        _stored(hu[0], False), position=tuple(affine[:3, 3]), instance_number=1,
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        extra={"SeriesDescription": "Topogram 1.0", "SeriesNumber": 1}, **scout)
    save_dataset(ds, path)


def _stored(hu_slice: np.ndarray, signed: bool) -> np.ndarray:
    hu16 = _to_int16(hu_slice)
    return hu16 if signed else (hu16.astype(np.int32) + 1024).astype(np.uint16)


def _tokens(rng: np.random.Generator, count: int) -> list[str]:
    """Unique random hex file stems, like the names some PACS exports use.

    Hex (not the full alphabet) so a token can never spell a fake patient's name.
    """
    alphabet = np.array(list("0123456789abcdef"))
    tokens: list[str] = []
    while len(tokens) < count:
        token = "".join(rng.choice(alphabet, size=12))
        if token not in tokens:
            tokens.append(token)
    return tokens
