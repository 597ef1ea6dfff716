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

Modules: the volumes and their variants are planned by :mod:`pipeline.demo.ct_plan`, the anatomy
is :mod:`pipeline.demo.ct_phantom`, and the files are written by :mod:`pipeline.demo.ct_files`;
this module draws each volume's grid and nodules, renders it and writes the folder
(:func:`generate`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pipeline.demo import patients, write_labels
from pipeline.demo.ct_files import to_int16, write_nifti, write_series
from pipeline.demo.ct_phantom import (
    Grid,
    ThoraxAnatomy,
    draw_thorax_anatomy,
    render_thorax,
    sample_lung_point_3d,
)
from pipeline.demo.ct_plan import DICOM_ORIENTATIONS, KIND, NIFTI_ORIENTATIONS, VolumeSpec, plan
from pipeline.demo.fake_phi import PHI, fake_accession, fake_date
from pipeline.demo.shapes import Blob

DEFAULT_PATIENTS = 120
CLASSES = ("normal", "nodule")
_MATRIX = 96
#: Nodule half-maximum radius (mm): most nodules, and the subtle fifth. The ingest's 5 mm voxels
#: see the subtle ones as 4-6 voxel wide spots, the vessel look-alikes (2-3.5 mm) as single voxels.
NODULE_RADIUS = (14.0, 22.0)
SUBTLE_RADIUS = (9.0, 14.0)


def generate(out_dir: Path, *, seed: int = 0, n_patients: int | None = None) -> Path:
    """Write the CT demo into ``out_dir``; return the path of its labels.csv.

    Args:
        out_dir: Destination folder (created).
        seed: Everything (anatomy, PHI, variants, noise) derives from it.
        n_patients: Number of fake patients (default 120, ~160 volumes), >= 1.

    Raises:
        ValueError: ``n_patients < 1``.
    """
    from pipeline.utils.processes import ordered_map

    anatomy, phis = patients(seed, KIND, n_patients, DEFAULT_PATIENTS, draw_thorax_anatomy)
    out_dir = Path(out_dir)
    # each volume draws from its own generator: the same bytes on one core or several
    jobs = [(out_dir, spec, anatomy[spec.patient], phis[spec.patient], seed)
            for spec in plan(seed, len(anatomy))]
    rows = ordered_map(_write_volume_job, jobs)
    return write_labels(out_dir, ["path", "label", "mask"], rows)


def _write_volume_job(job: tuple[Path, VolumeSpec, ThoraxAnatomy, PHI, int]) -> list[str]:
    return _write_volume(*job)


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
    rng = np.random.default_rng([seed, KIND, 3, spec.number])
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
        write_nifti(out_dir / rel, to_int16(hu), grid)
    else:
        rel = f"series/{name}"
        study_phi = dataclasses.replace(phi, accession_number=fake_accession(rng),
                                        study_date=fake_date(rng, 2015, 2024))
        write_series(out_dir / rel, spec, grid, hu, study_phi, anatomy, rng)
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
