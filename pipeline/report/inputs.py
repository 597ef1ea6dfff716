"""What the report is built from, read from the ingest, explain and evaluate outputs of a task.

- :func:`case_records`: one :class:`~pipeline.report.case.CaseRecord` per explained case, read
  lazily, shown at the source's own resolution where the source can be read again
  (:mod:`pipeline.report.source` maps the model-grid heatmaps back through the ingest geometry),
  otherwise on the model's input grid, and the page says so.
- :class:`Decision`: the operating point recorded by the evaluate stage, applied to a case.
- :func:`performance_inputs`: the test curves, operating points, confusion matrix and subgroups
  behind the index's figures and tables.
- :func:`manifest_rows`: the ingest manifest's rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import TaskParams
from pipeline.dataset.layout import InterimLayout
from pipeline.explain.outputs import METHOD_NAMES
from pipeline.report.case import NONE_PRESENT, CaseRecord
from pipeline.report.source import full_resolution_2d, labels_csv_attributes, source_view_3d


def performance_inputs(task: TaskParams, metrics: Mapping[str, Any], eval_dir: Path) -> dict[str, Any]:
    """What the index's figures and tables need from the evaluate outputs: the test curves
    (``eval/<task>/plots``; missing files are left out), each thresholded class's operating
    point, the confusion matrix at it (binary and multiclass) and the ``subgroups`` section."""
    from pipeline.evaluate import PLOT_FILES
    from pipeline.evaluate.curves import PLOTS
    from pipeline.report.performance import OperatingMark

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


class Decision:
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


def case_records(task: TaskParams, data_dir: Path, source_dir: Path | None, explained: Any, preds: Any,
                 decide: Decision, method: str) -> Iterator[Any]:
    """One :class:`~pipeline.report.CaseRecord` at a time (images are read lazily)."""
    from pipeline.dataset.store import open_array

    images = open_array(InterimLayout(data_dir).images)
    masks = open_array(InterimLayout(data_dir).masks)
    manifest = {r["sample_id"]: r for r in manifest_rows(data_dir)}
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
        label_heats = ({} if explained.label_maps is None else
                       dict(zip(task.labels, np.asarray(explained.label_maps[k], np.float32), strict=True)))
        mask = np.asarray(masks[index])[..., 0] if row.get("has_mask") == "1" else None
        image = np.asarray(images[index])[..., 0]
        attributes: dict[str, str] = {}
        shown: dict[str, Any] = {"image": image, "heatmap": heat, "mask": mask, "label_heatmaps": label_heats}
        if task.kind == "2d":
            full = full_resolution_2d(task.ingest, source_dir, row, heat, mask,
                                      free_text=task.report.show_free_text, label_heats=label_heats)
            if full is not None:
                shown.update(full)
                attributes = shown.pop("attributes")
            else:
                attributes["Shown at"] = "model input resolution (source image not available)"
        else:
            shown["spacing"] = task.ingest.target_spacing
            full3d = source_view_3d(task.ingest, source_dir, row, heat, mask, label_heats)
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


def manifest_rows(data_dir: Path) -> list[dict[str, str]]:
    """The rows of ``data_dir``'s ingest manifest."""
    from pipeline.dataset.tables import read_table

    return read_table(InterimLayout(data_dir).manifest)
