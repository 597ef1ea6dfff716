"""The ``report`` stage: the clinician-facing HTML site of the explained cases; and
``export-dicom``: the same overlays as DICOM Secondary Captures for PACS (opt-in, outside DVC).

2D cases are shown at the source image's full resolution: the DICOM is read again with the
task's windowing and the Grad-CAM map (computed on the model's padded input grid) is mapped back
through the recorded resize geometry. When the source cannot be read (redacted paths, moved
files) the model's input grid is shown instead and the page says so. 3D cases are shown at the
source volume's resolution in canonical orientation (read again as at ingest, before resampling),
with the map and mask mapped back through the recorded crop/pad and resampling; a source larger
than :data:`MAX_DISPLAY_VOXELS` is shown downsampled to that budget (a page embeds the volume),
never coarser than the model's grid.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pipeline.config import TaskParams
from pipeline.stages.common import read_json

log = logging.getLogger(__name__)

#: Coded (CS) header attributes shown on case pages (escaped there): they identify no one.
CODED_ATTRIBUTES = ("Modality", "BodyPartExamined", "ViewPosition")
#: Free-text attributes, shown only with ``report.show_free_text`` (identifiers hide in free
#: text). The identifying keywords of pipeline.report.PHI_KEYWORDS are never shown.
FREE_TEXT_ATTRIBUTES = ("SeriesDescription",)
#: Voxel budget of a 3D case page (image + heatmap are embedded): 4M voxels, e.g. 64 x 256 x 256,
#: ~10 MB of page. Larger sources are shown downsampled to it.
MAX_DISPLAY_VOXELS = 4_000_000
METHOD_NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "scorecam": "Score-CAM",
                "hirescam": "HiResCAM", "layercam": "LayerCAM",
                "layercam-fusion": "LayerCAM (fused over several layers)"}


def run_report(task: TaskParams, *, data_dir: Path, source_dir: Path | None, model_dir: Path,
               explain_dir: Path, eval_dir: Path, metrics_path: Path, out_dir: Path) -> Path:
    """Build ``reports/<task>/`` from the explain and evaluate outputs.

    Args:
        task: Validated task params (``task.report`` holds the knobs).
        data_dir: ``data/interim/<task>``.
        source_dir: The dataset folder ingest read (full-resolution 2D images), or None.
        model_dir: ``models/<task>`` (the model card).
        explain_dir: ``explain/<task>``.
        eval_dir: ``eval/<task>`` (predictions).
        metrics_path: ``metrics/<task>.json``.
        out_dir: ``reports/<task>``; replaced as a whole.

    Returns:
        Path of ``index.html``.

    Raises:
        ValueError: Missing explain outputs or predictions for the explained cases.
    """
    from pipeline.evaluate import read_predictions
    from pipeline.report import build_report
    from pipeline.stages.explain import read_explained
    from pipeline.train.card import read_card

    explained = read_explained(explain_dir)
    if explained is None:
        raise ValueError(f"no explain outputs in {explain_dir}; run the explain stage first")
    metrics = read_json(metrics_path)
    card = read_card(model_dir)
    preds = read_predictions(eval_dir / "predictions.csv")
    decide = _Decision(task, metrics)
    method = explained.methods[0]
    notes = _notes(task, metrics, explained.faithfulness, method)
    cases = _cases(task, data_dir, source_dir, explained, preds, decide, method)
    return build_report(out_dir, task_name=task.name, kind=task.kind, labels=task.labels, cases=cases,
                        card=card, metrics=_headline(metrics, decide, explained.faithfulness.get(method)),
                        notes=notes,
                        low_confidence_margin=max(task.report.uncertain_band, 1e-6),
                        highlight_limit=task.report.highlight_limit,
                        **performance_inputs(task, metrics, eval_dir))


def performance_inputs(task: TaskParams, metrics: Mapping[str, Any], eval_dir: Path) -> dict[str, Any]:
    """What the index's figures and tables need from the evaluate outputs: the test curves
    (``eval/<task>/plots``; missing files are left out), each thresholded class's operating
    point, the confusion matrix at it (binary and multiclass) and the ``subgroups`` section."""
    from pipeline.evaluate import PLOT_FILES
    from pipeline.report.performance import OperatingMark
    from pipeline.stages.evaluate import PLOTS

    curves = {}
    for name in ("roc", "pr", "calibration"):
        path = eval_dir / PLOTS / PLOT_FILES[name]
        if path.is_file():
            curves[name] = json.loads(path.read_text(encoding="utf-8"))
    test = metrics.get("test", {})
    section = metrics.get("threshold", {})
    marks = {}
    if task.problem == "binary" and isinstance(section.get("value"), int | float):
        scopes = {task.labels[1]: (float(section["value"]), test)}
    elif task.problem == "multilabel" and isinstance(section.get("value"), Mapping):
        per_class = test.get("per_class", {})
        scopes = {n: (float(t), per_class.get(n, {})) for n, t in section["value"].items()}
    else:
        scopes = {}
    for name, (threshold, block) in scopes.items():
        marks[name] = OperatingMark(threshold, sensitivity=block.get("recall"),
                                    specificity=block.get("specificity"),
                                    precision=block.get("precision"))
    return {"curves": curves, "operating_points": marks, "subgroups": metrics.get("subgroups"),
            "confusion": _confusion(task, test)}


def _confusion(task: TaskParams, test: Mapping[str, Any]) -> list[list[int]] | None:
    """Test confusion counts, rows = truth, columns = prediction, in label order (None for
    multi-label tasks, whose labels are not exclusive)."""
    if task.problem == "binary" and all(isinstance(test.get(k), int) for k in ("tn", "fp", "fn", "tp")):
        return [[test["tn"], test["fp"]], [test["fn"], test["tp"]]]
    table = test.get("confusion")
    if task.problem == "multiclass" and isinstance(table, Mapping):
        return [[int(table.get(a, {}).get(p, 0)) for p in task.labels] for a in task.labels]
    return None


class _Decision:
    """The operating point recorded by the evaluate stage, applied to one case's probabilities
    (:meth:`pipeline.evaluate.OperatingPoint.decide`), plus the case's category against its truth."""

    def __init__(self, task: TaskParams, metrics: Mapping[str, Any]) -> None:
        from pipeline.evaluate import OperatingPoint

        self.problem = task.problem
        self.labels = task.labels
        self.point = OperatingPoint.from_json(task.problem, task.labels, metrics.get("threshold"))
        self.threshold = self.point.binary_threshold

    def __call__(self, probs: np.ndarray, true_label: str | None) -> tuple[str, float, str | None]:
        """``(predicted label, probability shown, category)``."""
        predicted, probability = self.point.decide(probs, self.labels)
        if self.problem != "binary" or true_label is None:
            return predicted, probability, None
        positive, truth = predicted == self.labels[1], true_label == self.labels[1]
        category = f"{'true' if positive == truth else 'false'} {'positive' if positive else 'negative'}"
        return predicted, probability, category


def _headline(metrics: Mapping[str, Any], decide: _Decision,
              faithfulness: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The flat test metrics the report shows, plus the threshold and the deletion check of the
    shown method (``deletion_win_rate``, ``deletion_flag``...; see
    :class:`pipeline.explain.DeletionResult`)."""
    flat = {k: v for k, v in metrics.get("test", {}).items() if not isinstance(v, dict)}
    if decide.threshold is not None:
        flat["threshold"] = decide.threshold
    if isinstance(faithfulness, Mapping):
        for key, name in (("win_rate", "deletion_win_rate"), ("flag", "deletion_flag"),
                          ("fill", "deletion_fill"), ("scored_on", "deletion_scored_on"),
                          ("fraction", "deletion_fraction"), ("mean_drop_map", "deletion_drop_map"),
                          ("mean_drop_random", "deletion_drop_random")):
            if faithfulness.get(key) is not None:
                flat[name] = faithfulness[key]
    return flat


def _notes(task: TaskParams, metrics: Mapping[str, Any], faithfulness: Mapping[str, Any],
           method: str) -> list[str]:
    rule = metrics.get("threshold", {}).get("rule", "argmax")
    test = metrics.get("test", {})
    notes = [
        "Research use only. Not for diagnosis or treatment decisions.",
        f"Decision threshold chosen on the validation split (rule: {rule}), never on these test cases.",
        f"Metrics are on {test.get('n', '?')} test cases from {test.get('n_patients', '?')} patients; "
        f"intervals are 95% patient-level bootstrap confidence intervals: with this few cases they "
        f"are wide, read them before the point values."
        + (" Intervals marked † are exact (Clopper-Pearson) binomial intervals: with no events (0 or "
           "all of the cases) the bootstrap interval collapses to a single value."
           if any(v == "clopper-pearson" for k, v in test.items() if k.endswith("_ci_method")) else ""),
        f"Heatmaps ({METHOD_NAMES.get(method, method)}) show which image regions drove the model's "
        "score, not where disease is.",
    ]
    tta = metrics.get("tta", {})
    if tta.get("mode", "none") != "none":
        notes.append(f"Probabilities are the mean over {tta.get('views', '?')} views of each image "
                     f"(test-time augmentation '{tta['mode']}', the same on validation); heatmaps are "
                     "of the original image.")
    notes += _cross_validation_notes(metrics.get("cross_validation"))
    notes += explanation_notes(metrics.get("explain") or {}, metrics.get("localization_in_body"))
    # The shown method's deletion check and lesion measures are on the index's heatmap section.
    others = [METHOD_NAMES.get(m, m) for m, s in faithfulness.items()
              if m not in (method, "layer", "selection", "audit") and isinstance(s, Mapping)
              and s.get("flag")]
    if others:
        notes.append(f"{' and '.join(others)} (computed for comparison, not shown here) did not pass "
                     "the deletion check for this model: its maps are no better than random.")
    return notes


def explanation_notes(explain: Mapping[str, Any], in_body: Mapping[str, Any] | None) -> list[str]:
    """How the heatmap method was chosen, the shortcut audit's warning and the localization
    within the body, in plain sentences (nothing for what was not computed)."""
    notes = []
    choice = explain.get("selection")
    if isinstance(choice, Mapping) and choice.get("method"):
        name = METHOD_NAMES.get(choice["method"], choice["method"])
        notes.append(f"Heatmap method {name} at layer {choice.get('layer')} was chosen on the validation "
                     f"split ({choice.get('n_cases', '?')} cases, {choice.get('n_masked', 0)} with lesion "
                     f"masks) among {len(choice.get('candidates') or [])} candidates: "
                     f"{choice.get('rule', '')}. Never chosen on these test cases.")
    audit = (explain.get("audit") or {}).get("summary") if isinstance(explain.get("audit"), Mapping) else None
    if isinstance(audit, Mapping):
        if audit.get("warning"):
            notes.append(f"Shortcut warning: {audit['warning']}. {audit.get('n_flagged', '?')} of "
                         f"{audit.get('n_cases', '?')} heatmaps put much of their weight on "
                         f"{', '.join(audit.get('flagged_regions') or [])}: check those cases before "
                         "trusting the model.")
        else:
            shares = [f"{region.replace('_', ' ')} {part['share']:.0%} (chance {part['chance']:.0%})"
                      for region in ("border", "marker", "outside_body")
                      if isinstance(part := audit.get(region), Mapping) and part.get("share") is not None
                      and part.get("chance") is not None]
            if shares:
                notes.append("Shortcut audit: no sign that the heatmaps rest on image borders, burned-in "
                             f"markers or outside the body (heat share {'; '.join(shares)}).")
    if isinstance(in_body, Mapping) and in_body.get("pointing_game") is not None:
        notes.append(f"Within the body (heat outside it removed): pointing game "
                     f"{in_body['pointing_game']:.2f}, IoU {in_body.get('iou') or 0:.2f}; on average "
                     f"{in_body.get('heat_outside_body', 0):.0%} of each heatmap lay outside the body. "
                     "The heatmaps shown are not restricted.")
    return notes


def _cross_validation_notes(section: Mapping[str, Any] | None) -> list[str]:
    """One sentence on a k-fold ensemble (``train.folds >= 2``); nothing for a single model."""
    if not section:
        return []

    def value(key: str) -> str:
        number = section.get(key)
        return "n/a" if number is None else f"{number:.3f}"

    member_val = section.get("member_val") or []
    members = [v for v in (member_val.values() if isinstance(member_val, Mapping) else member_val)
               if v is not None]
    spread = f" (single members: {min(members):.3f} to {max(members):.3f})" if members else ""
    return [f"The model is the mean of {section.get('folds', '?')} models trained by cross-validation "
            f"on the training split (patients grouped into folds; each model was selected on the fold "
            f"it did not train on). Out-of-fold AUROC over the {section.get('oof_samples', '?')} "
            f"training cases: {value('oof_auroc')}; validation AUROC of the mean: "
            f"{value('ensemble_val_auroc')}{spread}. Heatmaps are the mean of the models' heatmaps."]


def _cases(task: TaskParams, data_dir: Path, source_dir: Path | None, explained: Any, preds: Any,
           decide: _Decision, method: str) -> Iterator[Any]:
    """One :class:`~pipeline.report.CaseRecord` at a time (images are read lazily)."""
    from pipeline.dataset.store import open_array
    from pipeline.report import NONE_PRESENT, CaseRecord

    images = open_array(data_dir / "images.npy")
    masks = open_array(data_dir / "masks.npy")
    manifest = {r["sample_id"]: r for r in _manifest(data_dir)}
    row_of = {sid: i for i, sid in enumerate(preds.sample_ids)}
    maps = explained.maps[method]
    for k, case in enumerate(explained.rows):
        sid = case["sample_id"]
        if sid not in row_of:
            raise ValueError(f"case {sid} was explained but has no prediction; rerun evaluate")
        probs = preds.probs[row_of[sid]]
        predicted, probability, category = decide(probs, case["label"])
        row = manifest[sid]
        index = int(row["index"])
        heat = np.asarray(maps[k], dtype=np.float32)
        mask = np.asarray(masks[index])[..., 0] if row.get("has_mask") == "1" else None
        image = np.asarray(images[index])[..., 0]
        attributes: dict[str, str] = {}
        shown: dict[str, Any] = {"image": image, "heatmap": heat, "mask": mask}
        if task.kind == "2d":
            full = _full_resolution(task, source_dir, row, heat, mask)
            if full is not None:
                shown.update(full)
                attributes = shown.pop("attributes")
            else:
                attributes["Shown at"] = "model input resolution (source image not available)"
        else:
            shown["spacing"] = task.ingest.target_spacing
            full3d = source_view_3d(task.ingest, source_dir, row, heat, mask)
            if full3d is not None:
                shown.update(full3d._asdict())
            else:
                attributes["Shown at"] = "model input grid (source volume not available)"
        attributes.update(labels_csv_attributes(row))
        yield CaseRecord(
            sample_id=sid, split=case["split"], true_label=case["label"] or NONE_PRESENT,
            predicted_label=predicted or NONE_PRESENT,
            probability=probability, probabilities=dict(zip(task.labels, map(float, probs), strict=True)),
            threshold=decide.threshold, category=category, attributes=attributes,
            method=METHOD_NAMES.get(method, method), **shown)


class SourceVolume(NamedTuple):
    """A 3D case on the display grid (the source's voxels, or fewer; see :func:`source_view_3d`).

    Attributes:
        image: uint8 ``(D, H, W)``, the task's HU window. heatmap: float in [0, 1], zero outside
        the model's field of view. mask: uint8 lesion mask or None. spacing: mm per axis.
        intensity: The same voxels in whole HU with the task's window (window/level, CT presets).
        field_of_view: ``(start, stop)`` voxels per axis of the model's input on this grid.
    """

    image: np.ndarray
    heatmap: np.ndarray
    mask: np.ndarray | None
    spacing: tuple[float, ...]
    intensity: Any
    field_of_view: tuple[tuple[int, int], ...] | None


def source_resolution_3d(ing: Any, source_dir: Path | None, row: Mapping[str, str],
                          heat: np.ndarray, mask: np.ndarray | None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[float, ...]] | None:
    """``(image uint8, heatmap, mask or None, spacing)`` of :func:`source_view_3d`, or None."""
    view = source_view_3d(ing, source_dir, row, heat, mask)
    return None if view is None else (view.image, view.heatmap, view.mask, view.spacing)


def source_view_3d(ing: Any, source_dir: Path | None, row: Mapping[str, str],
                   heat: np.ndarray, mask: np.ndarray | None) -> SourceVolume | None:
    """The source volume (canonical orientation, HU window of the task) at its own voxel size, or
    downsampled to :data:`MAX_DISPLAY_VOXELS`, with the map and mask mapped back onto it.

    Args:
        ing: The task's (or model card's) IngestParams.
        source_dir: Folder the manifest's ``source_path`` is relative to.
        row: Manifest row (``sample_id``, ``source_path``, ``crop_offsets``).
        heat: Map on the model grid; ``mask``: lesion mask on it, or None.

    Returns:
        The case on the display grid, with its HU values and the model's field of view (the
        heatmap covers that box, and only it: the model saw nothing else), or None when the
        source cannot be read (the caller shows the model grid and says so).
    """
    import json

    from pipeline.io.errors import InputRejected
    from pipeline.io.nifti import read_nifti
    from pipeline.io.series import read_dicom_series
    from pipeline.preprocess.volume import resample_to_spacing, uncrop_or_pad, window_hu
    from pipeline.report.imaging import hu_intensity

    if ing.redact_paths or source_dir is None or not row.get("source_path"):
        return None
    path = (source_dir / row["source_path"]).resolve()
    if not path.exists() or source_dir.resolve() not in path.parents:
        return None
    try:
        if path.is_dir():
            volume, meta = read_dicom_series(path, max_voxels=ing.max_voxels,
                                             on_missing_slices=ing.on_missing_slices,
                                             min_slices=ing.min_slices, max_pixel_bytes=ing.max_pixel_bytes)
        else:
            volume, meta = read_nifti(path, max_voxels=ing.max_voxels)
        crop = json.loads(row["crop_offsets"])
    except (InputRejected, OSError, KeyError, ValueError) as exc:
        log.warning("report: source volume of %s unreadable now (%s); showing the model grid",
                    row["sample_id"], getattr(exc, "reason", type(exc).__name__))
        return None
    spacing = np.asarray(meta["spacing"], dtype=np.float64)
    target = np.asarray(ing.target_spacing, dtype=np.float64)
    display = np.minimum(spacing * max(1.0, (volume.size / MAX_DISPLAY_VOXELS) ** (1 / 3)), target)
    display = np.maximum(display, spacing)  # never finer than the source, never coarser than the model
    if np.any(display > spacing * (1 + 1e-6)):
        volume = resample_to_spacing(volume, spacing, display, order=1)
    shape = volume.shape

    def to_display(grid: np.ndarray, order: int) -> np.ndarray:
        """Model grid -> resampled grid (undo crop/pad) -> display grid, centres aligned."""
        resampled = uncrop_or_pad(grid, crop, pad_value=0.0)
        return _resample_to_shape(resampled, target, display, shape, order=order)

    heat_d = np.clip(to_display(np.asarray(heat, np.float32), 1), 0.0, 1.0)
    mask_d = (to_display(mask.astype(np.float32), 0) > 0.5).astype(np.uint8) if mask is not None else None
    seen = to_display(np.ones(tuple(crop["output_shape"]), np.float32), 0) > 0.5
    image = np.rint(window_hu(volume, *ing.hu_window) * 255).astype(np.uint8)
    is_ct = str(meta.get("modality") or "CT").upper() == "CT"  # NIfTI carries no modality
    return SourceVolume(image, heat_d, mask_d, tuple(float(v) for v in display),
                        hu_intensity(volume, tuple(ing.hu_window), presets=is_ct), _box(seen))


def _box(inside: np.ndarray) -> tuple[tuple[int, int], ...] | None:
    """``(start, stop)`` per axis of the True voxels' bounding box, or None when there are none."""
    spans = []
    for axis in range(inside.ndim):
        hit = np.flatnonzero(inside.any(axis=tuple(a for a in range(inside.ndim) if a != axis)))
        if hit.size == 0:
            return None
        spans.append((int(hit[0]), int(hit[-1]) + 1))
    return tuple(spans)


def _resample_to_shape(array: np.ndarray, spacing: Sequence[float], target_spacing: Sequence[float],
                       shape: Sequence[int], *, order: int) -> np.ndarray:
    """Resample to ``target_spacing`` onto exactly ``shape``, field-of-view centres aligned (the
    inverse of :func:`pipeline.preprocess.volume.resample_to_spacing`, whose output shape rounds)."""
    from scipy import ndimage

    scale = np.asarray(target_spacing, np.float64) / np.asarray(spacing, np.float64)
    n_in = np.asarray(array.shape, np.float64)
    n_out = np.asarray(shape, np.float64)
    offset = (n_in - 1) / 2 - (n_out - 1) / 2 * scale
    return ndimage.affine_transform(array.astype(np.float32, copy=False), scale, offset=offset,
                                    output_shape=tuple(int(n) for n in shape), output=np.float32,
                                    order=order, mode="constant", cval=0.0)


def shown_attributes(ds: Any, *, free_text: bool = False) -> dict[str, str]:
    """The header attributes a case page shows: coded ones, plus free text only when asked."""
    keywords = CODED_ATTRIBUTES + (FREE_TEXT_ATTRIBUTES if free_text else ())
    return {kw: str(ds.get(kw)) for kw in keywords if ds.get(kw)}


def _manifest(data_dir: Path) -> list[dict[str, str]]:
    from pipeline.ingest.tables import read_table

    return read_table(data_dir / "manifest.csv")


def _full_resolution(task: TaskParams, source_dir: Path | None, row: Mapping[str, str],
                     heat: np.ndarray, mask: np.ndarray | None) -> dict[str, Any] | None:
    """The source image windowed as at ingest, with the map and mask mapped back onto it.

    Returns:
        CaseRecord fields: ``image`` (uint8, the model's window), ``heatmap``, ``mask``,
        ``attributes``, ``intensity`` (the whole value range at up to 12 bits, for
        window/level) and ``orientation`` (from the DICOM header; None for image files), or
        None when the source cannot be read.
    """
    from pipeline.io.errors import InputRejected
    from pipeline.io.radiograph import read_radiograph
    from pipeline.report.imaging import radiograph_intensity

    ing = task.ingest
    path = _source_path(source_dir if not ing.redact_paths else None, row)
    if path is None:
        return None
    try:
        source = read_source_2d(ing, path)
        # The whole stored range, linearly (percentiles 0 and 100), for window/level on the page.
        full = read_radiograph(path, window="percentile", percentiles=(0.0, 100.0), frame=ing.frame,
                               max_pixel_bytes=ing.max_pixel_bytes,
                               max_colour_share=ing.max_colour_share).image
    except (InputRejected, OSError) as exc:
        log.warning("report: source of %s unreadable now (%s); showing the model grid",
                    row["sample_id"], getattr(exc, "reason", type(exc).__name__))
        return None
    shape = source.image.shape
    heat_full = unpad_resize(heat, row, shape, nearest=False)
    mask_full = unpad_resize(mask, row, shape, nearest=True) if mask is not None else None
    attributes = source_attributes(source, free_text=task.report.show_free_text)
    bits = int(source.meta.get("bits_stored") or 16)
    return {"image": np.rint(np.clip(source.image, 0, 1) * 255).astype(np.uint8), "heatmap": heat_full,
            "mask": mask_full, "attributes": attributes,
            "intensity": radiograph_intensity(full, source.image, bits=bits),
            "orientation": _patient_orientation(source.dataset)}


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


def _source_path(source_dir: Path | None, row: Mapping[str, str]) -> Path | None:
    if source_dir is None:
        return None
    rel = row.get("source_path", "")
    if not rel:
        return None
    path = (source_dir / rel).resolve()
    if not path.is_file() or source_dir.resolve() not in path.parents:
        return None
    return path


def unpad_resize(grid: np.ndarray, row: Mapping[str, str], shape: tuple[int, int], *, nearest: bool
                 ) -> np.ndarray:
    """Map an array on the model's padded input grid back onto the source image's pixel grid.

    Ingest resized the source by ``scale`` and padded it by ``pad_top``/``pad_left`` (recorded in
    the manifest); this crops the padding and resizes to ``shape``.
    """
    import cv2

    scale = float(row["scale"])
    top, left = int(row["pad_top"]), int(row["pad_left"])
    h = max(1, min(grid.shape[0] - top, round(shape[0] * scale)))
    w = max(1, min(grid.shape[1] - left, round(shape[1] * scale)))
    crop = np.ascontiguousarray(grid[top:top + h, left:left + w], dtype=np.float32)
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    out = cv2.resize(crop, (shape[1], shape[0]), interpolation=interp)
    return (out > 0.5).astype(np.uint8) if nearest else np.clip(out, 0.0, 1.0)


def export_dicom(task: TaskParams, *, data_dir: Path, source_dir: Path | None, explain_dir: Path,
                 out_dir: Path, patient_orientation: tuple[str, str] | None = None) -> int:
    """Write each explained 2D case's overlay as a DICOM Secondary Capture in a new series of its
    source study, so it opens next to the original in any DICOM viewer.

    These files carry the source's patient identifiers (PACS files them under the right patient),
    so they are written to their own folder (``exports/<task>``), never into the PHI-free report
    or a DVC output.

    Args:
        task: Validated task params.
        data_dir: ``data/interim/<task>``.
        source_dir: The dataset folder ingest read.
        explain_dir: ``explain/<task>``.
        out_dir: Destination folder; files are named by sample pseudonym.
        patient_orientation: Row/column direction letters for sources without Patient
            Orientation or Image Orientation (Patient) (e.g. ``("L", "F")`` for a PA chest shown
            conventionally); without it such sources are skipped with a warning.

    Returns:
        How many overlays were written.
    """
    from pipeline.stages.explain import read_explained

    explained = read_explained(explain_dir)
    if explained is None:
        raise ValueError(f"no explain outputs in {explain_dir}; run the explain stage first")
    method = explained.methods[0]
    from pipeline.io.errors import InputRejected
    from pipeline.report import export_secondary_capture, render_overlay

    out_dir.mkdir(parents=True, exist_ok=True)
    if task.kind != "2d":
        log.info("export-dicom applies to 2D DICOM tasks; nothing exported for %s", task.name)
        return 0
    manifest = {r["sample_id"]: r for r in _manifest(data_dir)}
    maps = explained.maps[method]
    written = 0
    for k, case in enumerate(explained.rows):
        row = manifest[case["sample_id"]]
        path = _source_path(source_dir if not task.ingest.redact_paths else None, row)
        if path is None:
            continue
        try:
            source = read_source_2d(task.ingest, path)
        except (InputRejected, OSError):
            continue
        if source.dataset is None:
            log.warning("export-dicom: %s has no DICOM source (image file); no overlay",
                        case["sample_id"])
            continue
        ds, image = source.dataset, source.image
        heat = unpad_resize(np.asarray(maps[k], np.float32), row, image.shape, nearest=False)
        overlay = render_overlay(np.rint(image * 255).astype(np.uint8), heat)
        orientation = None if _has_orientation(ds) else patient_orientation
        try:
            export_secondary_capture(ds, overlay, out_dir / f"{case['sample_id']}.dcm",
                                     series_description=f"medvision {METHOD_NAMES.get(method, method)} "
                                                        "overlay (not for diagnosis)",
                                     patient_orientation=orientation)
        except ValueError as exc:
            log.warning("export-dicom: no overlay for %s (%s)", case["sample_id"], exc)
            continue
        written += 1
    log.info("export %s: %d DICOM Secondary Capture overlay(s) in %s", task.name, written, out_dir)
    return written


def _has_orientation(ds: Any) -> bool:
    return bool(ds.get("PatientOrientation") or ds.get("ImageOrientationPatient"))
