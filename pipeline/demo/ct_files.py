"""How the chest CT demo (:mod:`pipeline.demo.ct`) writes its volumes: NIfTI files
(:func:`write_nifti`, deterministic gzip) and DICOM series (:func:`write_series`: one file per
slice with random names, an optional dropped slice and an optional coronal localizer).

The geometry conventions (voxel axes, LPS and RAS affines) are in :mod:`pipeline.demo.ct`'s
docstring; HU are stored as ``int16`` HU or ``uint16`` HU + 1024 (:func:`to_int16`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.demo.ct_phantom import Grid, ThoraxAnatomy, render_thorax
from pipeline.demo.ct_plan import DICOM_ORIENTATIONS, VolumeSpec
from pipeline.demo.dicom_elements import deterministic_uid
from pipeline.demo.dicom_files import save_dataset
from pipeline.demo.dicom_writer import make_ct_slice_dataset
from pipeline.demo.fake_phi import PHI

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def to_int16(hu: np.ndarray) -> np.ndarray:
    """HU rounded and clipped to [-1024, 3071], as ``int16``."""
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def affine_ras(grid: Grid) -> np.ndarray:
    """The NIfTI (RAS) affine of a grid whose affine is LPS."""
    return _LPS_TO_RAS @ grid.affine


def write_nifti(path: Path, data_kji: np.ndarray, grid: Grid) -> None:
    """Write ``data`` (array axes k, j, i) as NIfTI-1 (axes i, j, k), deterministic gzip."""
    from pipeline.utils.nifti_out import write_nifti_kji

    write_nifti_kji(path, data_kji, affine_ras(grid), compresslevel=1)


def write_series(folder: Path, spec: VolumeSpec, grid: Grid, hu: np.ndarray,
                 phi: PHI, anatomy: ThoraxAnatomy, rng: np.random.Generator) -> None:
    """One file per slice, random names; optional dropped slice and localizer."""
    study_uid = deterministic_uid("ct-study", phi.patient_id, phi.accession_number)
    series_uid = deterministic_uid("ct-series", study_uid, str(spec.number))
    for_uid = deterministic_uid("ct-for", study_uid)
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
        ds = make_ct_slice_dataset(
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
             "series_uid": deterministic_uid("ct-scout", common["series_uid"]),
             "window": (40.0, 400.0)}
    ds = make_ct_slice_dataset(
        _stored(hu[0], False), position=tuple(affine[:3, 3]), instance_number=1,
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        extra={"SeriesDescription": "Topogram 1.0", "SeriesNumber": 1}, **scout)
    save_dataset(ds, path)


def _stored(hu_slice: np.ndarray, signed: bool) -> np.ndarray:
    hu16 = to_int16(hu_slice)
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
