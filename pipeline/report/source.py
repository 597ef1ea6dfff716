"""The source image or volume behind a case, for display: read again as at ingest, at its own
resolution, with the model-grid heatmap and mask mapped back through the ingest geometry.

Used by the report stage and by predict (neither imports the other). The geometry comes from
the sample's typed record (:mod:`pipeline.preprocess.geometry`, the manifest's ``geometry``
column), never from loose manifest columns. 2D sources are windowed as at ingest and the map is
un-padded and resized (:func:`display_2d`); 3D sources are shown in canonical orientation before
resampling, with the map and mask taken back through the crop/pad and resampling
(:func:`display_3d`); a source larger than :data:`MAX_DISPLAY_VOXELS` is shown downsampled to
that budget, never coarser than the model's grid. The report reads sources again
(:func:`full_resolution_2d`, :func:`source_view_3d`); predict passes the source it has already
decoded for the model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

log = logging.getLogger(__name__)

#: Coded (CS) header attributes shown on case pages (escaped there): they identify no one.
CODED_ATTRIBUTES = ("Modality", "BodyPartExamined", "ViewPosition")
#: Free-text attributes, shown only with ``report.show_free_text`` (identifiers hide in free
#: text). The identifying keywords of pipeline.report.PHI_KEYWORDS are never shown.
FREE_TEXT_ATTRIBUTES = ("SeriesDescription",)
#: Voxel budget of a 3D case page (image + heatmap are embedded): 4M voxels, e.g. 64 x 256 x 256,
#: ~10 MB of page. Larger sources are shown downsampled to it.
MAX_DISPLAY_VOXELS = 4_000_000


class SourceVolume(NamedTuple):
    """A 3D case on the display grid (the source's voxels, or fewer; see :func:`source_view_3d`).

    Attributes:
        image: uint8 ``(D, H, W)``, the task's HU window. heatmap: float in [0, 1], zero outside
        the model's field of view. mask: uint8 lesion mask or None. spacing: mm per axis.
        intensity: The same voxels in whole HU with the task's window (window/level, CT presets).
        field_of_view: ``(start, stop)`` voxels per axis of the model's input on this grid.
        label_heatmaps: label -> map on this grid, for per-label maps (empty without).
    """

    image: np.ndarray
    heatmap: np.ndarray
    mask: np.ndarray | None
    spacing: tuple[float, ...]
    intensity: Any
    field_of_view: tuple[tuple[int, int], ...] | None
    label_heatmaps: Mapping[str, np.ndarray] = {}


def source_view_3d(ing: Any, source_dir: Path | None, row: Mapping[str, str],
                   heat: np.ndarray, mask: np.ndarray | None,
                   label_heats: Mapping[str, np.ndarray] | None = None) -> SourceVolume | None:
    """:func:`display_3d` of the source volume the manifest ``row`` names, read again as at
    ingest; None when it cannot be read (the caller shows the model grid and says so).

    Args:
        ing: The task's (or model card's) IngestParams.
        source_dir: Folder the manifest's ``source_path`` is relative to.
        row: Manifest row (``sample_id``, ``source_path``, ``geometry``).
        heat: Map on the model grid; ``mask``: lesion mask on it, or None.
        label_heats: Per-label maps on the model grid (label -> map), mapped like ``heat``.
    """
    from pipeline.io.errors import InputRejected
    from pipeline.io.volume import read_volume
    from pipeline.preprocess.geometry import ResampleCrop, geometry_of

    if ing.redact_paths or source_dir is None or not row.get("source_path"):
        return None
    path = (source_dir / row["source_path"]).resolve()
    if not path.exists() or source_dir.resolve() not in path.parents:
        return None
    try:
        geometry = geometry_of(row)
        if not isinstance(geometry, ResampleCrop):
            raise ValueError("not a 3D geometry")
        volume, meta = read_volume(path, max_voxels=ing.max_voxels, on_missing_slices=ing.on_missing_slices,
                                   min_slices=ing.min_slices, max_pixel_bytes=ing.max_pixel_bytes)
    except (InputRejected, OSError, ValueError) as exc:
        log.warning("report: source volume of %s unreadable now (%s); showing the model grid",
                    row["sample_id"], getattr(exc, "reason", type(exc).__name__))
        return None
    return display_3d(volume, meta, ing, geometry, heat, mask, label_heats)


def display_3d(volume: np.ndarray, meta: Mapping[str, Any], ing: Any, geometry: Any,
               heat: np.ndarray, mask: np.ndarray | None,
               label_heats: Mapping[str, np.ndarray] | None = None) -> SourceVolume:
    """The source volume (canonical orientation, HU window of the task) at its own voxel size, or
    downsampled to :data:`MAX_DISPLAY_VOXELS`, with the map and mask mapped back onto it.

    Args:
        volume, meta: The source as :func:`pipeline.io.volume.read_volume` returns it.
        ing: IngestParams (``hu_window``).
        geometry: The sample's :class:`~pipeline.preprocess.geometry.ResampleCrop`.
        heat: Map on the model grid; ``mask``: lesion mask on it, or None.
        label_heats: Per-label maps on the model grid (label -> map), mapped like ``heat``.

    Returns:
        The case on the display grid, with its HU values and the model's field of view (the
        heatmap covers that box, and only it: the model saw nothing else).
    """
    from pipeline.preprocess.volume import resample_to_spacing, window_hu
    from pipeline.report.imaging import hu_intensity

    spacing = np.asarray(meta["spacing"], dtype=np.float64)
    target = np.asarray(geometry.target_spacing, dtype=np.float64)
    display = np.minimum(spacing * max(1.0, (volume.size / MAX_DISPLAY_VOXELS) ** (1 / 3)), target)
    display = np.maximum(display, spacing)  # never finer than the source, never coarser than the model
    if np.any(display > spacing * (1 + 1e-6)):
        volume = resample_to_spacing(volume, spacing, display, order=1)
    shape = volume.shape

    def to_display(grid: np.ndarray, order: int) -> np.ndarray:
        """Model grid -> resampled grid (undo crop/pad) -> display grid, centres aligned."""
        return resample_to_spacing(geometry.to_resampled(grid), target, display, order=order,
                                   output_shape=shape, outside="zero")

    def heat_on_display(grid: np.ndarray) -> np.ndarray:
        return np.clip(to_display(np.asarray(grid, np.float32), 1), 0.0, 1.0)

    heat_d = heat_on_display(heat)
    per_label = {k: heat_on_display(v) for k, v in (label_heats or {}).items()}
    mask_d = (to_display(mask.astype(np.float32), 0) > 0.5).astype(np.uint8) if mask is not None else None
    seen = to_display(np.ones(geometry.output_shape, np.float32), 0) > 0.5
    image = np.rint(window_hu(volume, *ing.hu_window) * 255).astype(np.uint8)
    is_ct = str(meta.get("modality") or "CT").upper() == "CT"  # NIfTI carries no modality
    return SourceVolume(image, heat_d, mask_d, tuple(float(v) for v in display),
                        hu_intensity(volume, tuple(ing.hu_window), presets=is_ct), _box(seen), per_label)


def _box(inside: np.ndarray) -> tuple[tuple[int, int], ...] | None:
    """``(start, stop)`` per axis of the True voxels' bounding box, or None when there are none."""
    spans = []
    for axis in range(inside.ndim):
        hit = np.flatnonzero(inside.any(axis=tuple(a for a in range(inside.ndim) if a != axis)))
        if hit.size == 0:
            return None
        spans.append((int(hit[0]), int(hit[-1]) + 1))
    return tuple(spans)


def shown_attributes(ds: Any, *, free_text: bool = False) -> dict[str, str]:
    """The header attributes a case page shows: coded ones, plus free text only when asked."""
    keywords = CODED_ATTRIBUTES + (FREE_TEXT_ATTRIBUTES if free_text else ())
    return {kw: str(ds.get(kw)) for kw in keywords if ds.get(kw)}


def full_resolution_2d(ing: Any, source_dir: Path | None, row: Mapping[str, str], heat: np.ndarray,
                       mask: np.ndarray | None, *, free_text: bool = False,
                       label_heats: Mapping[str, np.ndarray] | None = None) -> dict[str, Any] | None:
    """:func:`display_2d` of the source the manifest ``row`` names, read again as at ingest;
    None when it cannot be read (the caller shows the model grid and says so)."""
    from pipeline.io.errors import InputRejected
    from pipeline.preprocess.geometry import PadResize, geometry_of

    path = source_path(source_dir if not ing.redact_paths else None, row)
    if path is None:
        return None
    try:
        geometry = geometry_of(row)
        if not isinstance(geometry, PadResize):
            raise ValueError("not a 2D geometry")
        source = read_source_2d(ing, path)
        return display_2d(source, path, ing, geometry, heat, mask, free_text=free_text,
                          label_heats=label_heats)
    except (InputRejected, OSError, ValueError) as exc:
        log.warning("report: source of %s unreadable now (%s); showing the model grid",
                    row["sample_id"], getattr(exc, "reason", type(exc).__name__))
        return None


def display_2d(source: Any, path: Path, ing: Any, geometry: Any, heat: np.ndarray,
               mask: np.ndarray | None, *, free_text: bool = False,
               label_heats: Mapping[str, np.ndarray] | None = None,
               full: np.ndarray | None = None) -> dict[str, Any]:
    """The source image windowed as at ingest, with the map and mask mapped back onto it.

    Args:
        source: The :class:`~pipeline.io.radiograph.Radiograph` read with the ingest settings.
        path: Its file (image files are read once more for the full value range; a DICOM's
            pixels are decoded again from the dataset already in memory, not re-read).
        ing: IngestParams; ``geometry``: the sample's :class:`~pipeline.preprocess.geometry.PadResize`.
        label_heats: Per-label maps on the model grid (label -> map), mapped like ``heat``.
        full: :func:`full_range` of ``source`` when the caller has it already (predict computes
            it in its decoding workers); else it is computed here.

    Returns:
        CaseRecord fields: ``image`` (uint8, the model's window), ``heatmap``, ``label_heatmaps``,
        ``mask``,
        ``attributes``, ``intensity`` (the whole value range at up to 12 bits, for
        window/level) and ``orientation`` (from the DICOM header; None for image files).

    Raises:
        InputRejected, OSError: The full value range cannot be read.
    """
    from pipeline.report.imaging import radiograph_intensity

    full = full_range(source, path, ing) if full is None else full
    shape = source.image.shape
    heat_full = geometry.to_source(heat, nearest=False, shape=shape)
    mask_full = geometry.to_source(mask, nearest=True, shape=shape) if mask is not None else None
    bits = int(source.meta.get("bits_stored") or 16)
    label_full = {k: geometry.to_source(v, nearest=False, shape=shape)
                  for k, v in (label_heats or {}).items()}
    return {"image": np.rint(np.clip(source.image, 0, 1) * 255).astype(np.uint8), "heatmap": heat_full,
            "label_heatmaps": label_full, "mask": mask_full,
            "attributes": source_attributes(source, free_text=free_text),
            "intensity": radiograph_intensity(full, source.image, bits=bits),
            "orientation": _patient_orientation(source.dataset)}


def full_range(source: Any, path: Path, ing: Any) -> np.ndarray:
    """The whole stored range of a 2D source (a Radiograph read with the IngestParams ``ing``),
    linearly (percentiles 0 and 100), float32 ``(H, W)`` in [0, 1], for window/level on the page.

    Raises:
        InputRejected, OSError: An image file cannot be read again.
    """
    from pipeline.io.dicom_image import image_from_dataset
    from pipeline.io.radiograph import read_radiograph

    if source.dataset is not None:  # no second file read: decoded again from the dataset in memory
        return image_from_dataset(source.dataset, window="percentile", percentiles=(0.0, 100.0),
                                  frame=ing.frame, max_pixel_bytes=ing.max_pixel_bytes)[0]
    return read_radiograph(path, window="percentile", percentiles=(0.0, 100.0), frame=ing.frame,
                           max_pixel_bytes=ing.max_pixel_bytes,
                           max_colour_share=ing.max_colour_share).image


def _patient_orientation(ds: Any) -> tuple[str, str] | None:
    """``(row direction, column direction)`` letters from Patient Orientation (0020,0020), else
    from Image Orientation (Patient) (0020,0037: letters of each cosine's components above 0.25,
    strongest first); None without either (image files, headers without orientation)."""
    if ds is None:
        return None
    value = ds.get("PatientOrientation")
    if value is not None and not isinstance(value, str) and len(value) == 2:
        letters = tuple(str(v).strip().upper() for v in value)
        if all(v and set(v) <= set("LRAPHF") for v in letters):
            return letters[0], letters[1]
    iop = ds.get("ImageOrientationPatient")
    try:
        cosines = [float(v) for v in iop] if iop is not None else []
    except (TypeError, ValueError):
        return None
    if len(cosines) != 6 or not all(np.isfinite(cosines)):
        return None
    names = (("R", "L"), ("A", "P"), ("F", "H"))  # LPS+: x to L, y to P, z to H

    def letters(vec: list[float]) -> str:
        order = sorted(range(3), key=lambda i: -abs(vec[i]))
        return "".join(names[i][vec[i] > 0] for i in order if abs(vec[i]) > 0.25)

    rows, cols = letters(cosines[:3]), letters(cosines[3:])
    return (rows, cols) if rows and cols else None


def read_source_2d(ing: Any, path: Path) -> Any:
    """Read a 2D source (DICOM or image file) with the ingest settings ``ing`` (IngestParams)."""
    from pipeline.io.radiograph import read_radiograph

    return read_radiograph(path, window=ing.window if isinstance(ing.window, str) else tuple(ing.window),
                           percentiles=ing.percentiles, frame=ing.frame,
                           max_pixel_bytes=ing.max_pixel_bytes, max_colour_share=ing.max_colour_share)


_COLOUR_RULES = {
    "gray": "gray",
    "gray_alpha_over_black": "gray with transparency (composited over black)",
    "rgb_luminance": "RGB, shown as luminance (ITU-R BT.601)",
    "rgba_luminance_over_black": "RGBA, composited over black, shown as luminance (ITU-R BT.601)",
}


def source_attributes(source: Any, *, free_text: bool = False) -> dict[str, str]:
    """What a case page says about the source: coded DICOM attributes, or for a PNG/JPEG/TIFF
    file (no header: modality, body part and view are unknown unless labels.csv gives them) its
    format, how it was stored and how its intensities were used."""
    if source.dataset is not None:
        return shown_attributes(source.dataset, free_text=free_text)
    meta = source.meta
    voi = {"as_stored": "as stored in the file (already windowed for display)",
           "percentile": "clipped at percentiles", "explicit": "explicit window"}
    return {"File format": f"{str(meta['format']).upper()} (no DICOM header)",
            "Stored as": f"{_COLOUR_RULES.get(meta.get('colour'), meta.get('colour'))}, "
                         f"{meta.get('bits_stored')} bits",
            "Intensity": voi.get(meta.get("voi"), str(meta.get("voi")))}


def labels_csv_attributes(row: Mapping[str, str]) -> dict[str, str]:
    """Subgroup attributes the dataset's labels.csv gave (manifest ``attr_*`` columns)."""
    return {f"{key[5:].replace('_', ' ')} (labels.csv)": value for key, value in row.items()
            if key.startswith("attr_") and value}


def source_path(source_dir: Path | None, row: Mapping[str, str]) -> Path | None:
    if source_dir is None:
        return None
    rel = row.get("source_path", "")
    if not rel:
        return None
    path = (source_dir / rel).resolve()
    if not path.is_file() or source_dir.resolve() not in path.parents:
        return None
    return path
