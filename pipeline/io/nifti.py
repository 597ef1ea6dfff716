"""NIfTI-1/NIfTI-2 volume reader: float32 ``(D, H, W)`` on the canonical grid.

The affine is nibabel's ``img.affine``: the sform if ``sform_code > 0``, else the qform if
``qform_code > 0``, else (only with ``require_orientation=False``) nibabel's fallback built
from the voxel sizes alone, whose orientation is a guess. Voxel values are the scaled floats
``stored * scl_slope + scl_inter``. Spatial units other than mm (metres, microns) are converted
to mm; ``unknown`` is taken as mm, as every common tool does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.io.errors import InputRejected
from pipeline.io.orientation import geometry_meta, reorient_to_canonical

#: Factor from a NIfTI spatial unit to millimetres.
_MM_PER_UNIT: dict[str, float] = {"unknown": 1.0, "mm": 1.0, "meter": 1000.0, "micron": 1e-3}


def read_nifti(
    path: Path, *, require_orientation: bool = True, max_voxels: int = 512**3
) -> tuple[np.ndarray, dict]:
    """Read a 3D NIfTI volume onto the canonical grid.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        require_orientation: Reject files whose qform and sform codes are both 0 (the
            orientation is unknown). Turn off only for data known to be in a fixed layout.
        max_voxels: Cap on the number of voxels, checked on the header before any voxel data
            is read.

    Returns:
        ``(volume, meta)``: ``volume`` float32 ``(D, H, W)`` (D Superior, H Posterior,
        W Left) in the file's units after scl_slope/scl_inter; ``meta`` has the keys of
        :func:`pipeline.io.orientation.geometry_meta` plus ``format``, ``affine_source``
        (``"sform"``, ``"qform"`` or ``"none"``), ``qform_code``, ``sform_code``, ``dtype``
        (stored data type) and ``spatial_unit`` (as declared in the header).

    Raises:
        InputRejected: Unreadable or not NIfTI, unknown orientation, not 3D (a 4D file whose
            extra dimensions are all 1 is squeezed), too many voxels, unsupported data type,
            truncated data, non-finite values, degenerate affine.
    """
    img = _load(path)
    header = img.header
    qcode, scode = int(header["qform_code"]), int(header["sform_code"])
    if require_orientation and qcode == 0 and scode == 0:
        raise InputRejected("orientation is unknown (qform_code and sform_code are both 0)",
                            code="no_orientation")
    shape = _spatial_shape(img.shape, max_voxels)
    dtype = header.get_data_dtype()
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise InputRejected(f"unsupported NIfTI data type '{dtype.name}' (need real scalars)",
                            code="bad_dtype")
    data = _scaled_data(img).reshape(shape)
    unit = header.get_xyzt_units()[0] or "unknown"
    affine = _affine_mm(img.affine, unit)
    volume, canonical_affine, axcodes = reorient_to_canonical(data, affine)
    meta = geometry_meta(canonical_shape=volume.shape, canonical_affine=canonical_affine,
                         source_shape=shape, source_affine=affine, source_axcodes=axcodes)
    meta.update(format="nifti", affine_source="sform" if scode > 0 else "qform" if qcode > 0
                else "none", qform_code=qcode, sform_code=scode, dtype=dtype.name,
                spatial_unit=unit)
    return volume, meta


def _load(path: Path):
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except FileNotFoundError:
        raise InputRejected("file not found", code="unreadable") from None
    except Exception as exc:  # nibabel raises many types for broken files
        raise InputRejected(f"unreadable NIfTI file ({type(exc).__name__})",
                            code="unreadable") from None
    if not isinstance(img, nib.Nifti1Pair):  # Nifti1Image, Nifti2Image and pairs
        raise InputRejected(f"not a NIfTI image ({type(img).__name__})", code="not_nifti")
    return img


def _spatial_shape(shape: tuple[int, ...], max_voxels: int) -> tuple[int, int, int]:
    if len(shape) < 3 or any(n != 1 for n in shape[3:]):
        raise InputRejected(f"not a 3D volume (shape {tuple(shape)})", code="not_3d")
    spatial = tuple(int(n) for n in shape[:3])
    if min(spatial) <= 0:
        raise InputRejected(f"empty volume (shape {spatial})", code="bad_dimensions")
    n_voxels = int(np.prod(spatial, dtype=np.int64))
    if n_voxels > max_voxels:
        raise InputRejected(f"{n_voxels} voxels exceed the cap of {max_voxels}",
                            code="too_large")
    return spatial


def _scaled_data(img) -> np.ndarray:
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except MemoryError:
        raise
    except Exception as exc:
        raise InputRejected(f"voxel data could not be read ({type(exc).__name__}); truncated "
                            "or corrupt", code="truncated") from None
    if not np.isfinite(data).all():
        raise InputRejected("non-finite voxel values (NaN or Inf)", code="non_finite")
    return data


def _affine_mm(affine: np.ndarray, unit: str) -> np.ndarray:
    if unit not in _MM_PER_UNIT:
        raise InputRejected(f"unsupported spatial unit '{unit}'", code="bad_geometry")
    scaled = np.array(affine, dtype=np.float64)
    scaled[:3, :] *= _MM_PER_UNIT[unit]
    return scaled
