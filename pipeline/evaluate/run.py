"""The ``evaluate`` stage's work, :func:`run_evaluate` (entry point :mod:`pipeline.stages.evaluate`):
predictions for val and test, operating threshold chosen on val,
metrics with patient-level bootstrap CIs (plus Grad-CAM localization and faithfulness from the
``explain`` stage), test metrics per subgroup of coded attributes, DVC metrics and plot data.

Outputs: ``eval/<task>/predictions.csv``, ``eval/<task>/plots/{roc,pr,confusion,calibration}.json``
and ``metrics/<task>.json`` (see :mod:`pipeline.evaluate.summary` for its layout). With
``evaluate.tta`` the val and test probabilities are both means over the views of
:mod:`pipeline.evaluate.tta`, so the threshold is chosen on the same kind of output it is applied
to; the mode is recorded as ``tta: {mode, views}`` in the metrics file, where ``predict`` reads it
back. Grad-CAM maps (explain stage, IoU) are of the original view. A model trained with
``train.folds >= 2`` (the mean of its fold models) is evaluated like any other; its card's
cross-validation results are copied under ``cross_validation`` (out-of-fold AUROC and loss over
the training split, the ensemble's and each member's val AUROC).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import TaskParams
from pipeline.dataset.cases import select_cases
from pipeline.dataset.layout import InterimLayout
from pipeline.evaluate.curves import PLOTS
from pipeline.evaluate.inference import predict_probs
from pipeline.train.card import load_trained
from pipeline.utils.jsonio import read_json

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.csv"


@dataclass(frozen=True)
class EvaluateResult:
    metrics: dict[str, Any]
    predictions: Path


def run_evaluate(task: TaskParams, *, data_dir: Path, model_dir: Path, explain_dir: Path | None,
                 out_dir: Path, metrics_path: Path, seed: int) -> EvaluateResult:
    """Evaluate the trained model of ``task`` on its val and test splits.

    Args:
        task: Validated task params (``task.evaluate`` holds the knobs, ``tta`` included).
        data_dir: ``data/interim/<task>`` (ingest outputs).
        model_dir: ``models/<task>``.
        explain_dir: ``explain/<task>`` (maps and faithfulness), or None to skip localization.
        out_dir: ``eval/<task>``: predictions and plot data.
        metrics_path: ``metrics/<task>.json``.
        seed: Bootstrap seed.

    Raises:
        ValueError: No val or test samples, or a model trained for another label set.
    """
    from pipeline.dataset.store import open_array
    from pipeline.evaluate import (
        evaluate_splits,
        read_predictions,
        write_metrics,
        write_plot_data,
        write_predictions,
    )
    from pipeline.evaluate.tta import n_views

    ep = task.evaluate
    cases = select_cases(data_dir, ("val", "test"))
    for split in ("val", "test"):
        if split not in cases.column("split"):
            raise ValueError(f"the '{split}' split of task {task.name!r} is empty: nothing to "
                             f"evaluate; check tasks.{task.name}.ingest.splits")
    model, card = load_trained(model_dir, task)
    probs = predict_probs(model, open_array(InterimLayout(data_dir).images), cases.indices,
                          batch_size=ep.batch_size, tta=ep.tta)
    preds_path = out_dir / PREDICTIONS
    write_predictions(preds_path, sample_ids=cases.column("sample_id"), patients=cases.column("patient"),
                      splits=cases.column("split"), labels=cases.column("label"), probs=probs,
                      label_names=task.labels)
    preds = read_predictions(preds_path)
    localization = (_localization(task, data_dir, explain_dir, seed=seed)
                    if explain_dir is not None else None)
    in_body = localization.pop("_in_body", None) if localization else None
    evaluation = evaluate_splits(val=preds.select("val"), test=preds.select("test"), problem=task.problem,
                                 rule=ep.threshold, n_boot=ep.bootstrap, seed=seed, level=ep.ci_level,
                                 n_bins=ep.calibration_bins, localization=localization)
    metrics = dict(evaluation.metrics)
    if explain_dir is not None and (explain_dir / "faithfulness.json").is_file():
        metrics["explain"] = read_json(explain_dir / "faithfulness.json")
    if in_body is not None:
        metrics["localization_in_body"] = in_body
    metrics["model"] = {"backbone": card.get("backbone"), "epochs_run": card.get("epochs_run"),
                        "precision": card.get("precision")}
    if card.get("cross_validation"):  # train.folds >= 2: the model is the mean of the fold models
        metrics["cross_validation"] = cross_validation_metrics(card["cross_validation"])
    metrics["tta"] = {"mode": ep.tta, "views": n_views(ep.tta)}  # what predict must use too
    metrics["subgroups"] = _subgroups(task, cases, preds.select("test"), evaluation.operating_point,
                                      seed=seed)
    write_metrics(metrics_path, metrics)
    metrics = read_json(metrics_path)  # what DVC sees (rounded, NaN as null)
    test = preds.select("test")
    write_plot_data(out_dir / PLOTS, problem=task.problem, targets=test.targets(task.problem),
                    probs=test.probs, label_names=task.labels, operating_point=evaluation.operating_point,
                    n_bins=ep.calibration_bins)
    log.info("evaluate %s: test AUROC %s (threshold %s, tta %s)", task.name, metrics["test"].get("auroc"),
             metrics["threshold"], ep.tta)
    return EvaluateResult(metrics, preds_path)


#: Keys of the model card's ``cross_validation`` section copied into ``metrics/<task>.json``.
CROSS_VALIDATION_KEYS = ("folds", "oof_auroc", "oof_loss", "oof_samples", "ensemble_val_auroc",
                         "ensemble_val_loss", "member_val")


def cross_validation_metrics(section: dict[str, Any]) -> dict[str, Any]:
    """The scores of a k-fold model card's ``cross_validation`` section (no per-member detail);
    ``member_val`` as ``{"member_0": auroc, ...}`` so that DVC shows one metric per member."""
    out = {k: section[k] for k in CROSS_VALIDATION_KEYS if k in section}
    if isinstance(out.get("member_val"), list):
        out["member_val"] = {f"member_{i}": v for i, v in enumerate(out["member_val"])}
    return out


def _subgroups(task: TaskParams, cases: Any, test: Any, operating_point: Any, *, seed: int
               ) -> dict[str, Any]:
    """Test metrics per value of the coded manifest attributes (see
    :mod:`pipeline.evaluate.subgroups`); ``cases`` are the manifest rows predicted, in order."""
    from pipeline.evaluate.subgroups import candidate_columns, subgroup_metrics

    rows = [r for r in cases.rows if r["split"] == "test"]
    if [r["sample_id"] for r in rows] != list(test.sample_ids):
        raise ValueError("test predictions and manifest rows are out of order; rerun evaluate")
    columns, skipped = candidate_columns(rows[0].keys() if rows else ())
    ep = task.evaluate
    return subgroup_metrics(task.problem, test.targets(task.problem), test.probs, test.patients,
                            operating_point, task.labels,
                            attributes={c: [r.get(c) or "" for r in rows] for c in columns},
                            skipped=skipped, n_boot=ep.bootstrap, seed=seed, level=ep.ci_level)


def _localization(task: TaskParams, data_dir: Path, explain_dir: Path, *, seed: int
                  ) -> dict[str, Any] | None:
    """IoU / pointing game of the first explain method on the test cases that have a lesion mask
    (binary tasks: those of the positive class, the class the maps explain)."""
    from pipeline.dataset.store import open_array
    from pipeline.evaluate import localization_metrics, localization_scores
    from pipeline.explain.outputs import read_explained

    explained = read_explained(explain_dir)
    if explained is None:
        return None
    # Binary: the maps explain the positive class, so they are scored on the positive cases (a
    # "malignant" map of a benign nodule is not expected to sit on it); other tasks: every case.
    explained_label = task.labels[-1] if task.problem == "binary" else None
    keep = [i for i, r in enumerate(explained.rows) if r["split"] == "test" and r.get("has_mask") == "1"
            and (explained_label is None or r["label"] == explained_label)]
    if not keep:
        log.info("evaluate %s: no test case with a lesion mask was explained; no IoU", task.name)
        return None
    masks = open_array(InterimLayout(data_dir).masks)
    maps = explained.maps[explained.methods[0]]
    heat = np.stack([np.asarray(maps[i], dtype=np.float32) for i in keep])
    mask = np.stack([np.asarray(masks[int(explained.rows[i]["index"])])[..., 0] for i in keep])
    scores = localization_scores(heat, mask, threshold=task.evaluate.iou_threshold)
    out = localization_metrics(scores, [explained.rows[i]["patient"] for i in keep],
                               n_boot=task.evaluate.bootstrap, seed=seed, level=task.evaluate.ci_level,
                               threshold=task.evaluate.iou_threshold)
    out["localization_method"] = explained.methods[0]
    out["_in_body"] = _in_body(task, data_dir, explained, keep, heat, mask)
    return out


def _in_body(task: TaskParams, data_dir: Path, explained: Any, keep: list[int], heat: np.ndarray,
             mask: np.ndarray) -> dict[str, Any]:
    """The same localization with the maps restricted to the body (field of view) computed from
    each image (:func:`pipeline.explain.fov.body_mask`): heat outside it is removed and the map
    renormalised. Reported beside, never instead of, the unrestricted measures."""
    from pipeline.dataset.store import open_array
    from pipeline.evaluate import localization_scores
    from pipeline.explain.fov import body_mask
    from pipeline.explain.shortcut_regions import restrict_to_fov

    images = open_array(InterimLayout(data_dir).images)
    x = np.stack([np.asarray(images[int(explained.rows[i]["index"])]) for i in keep])
    hu = tuple(task.ingest.hu_window) if task.kind == "3d" else None
    body = body_mask(x, task.kind, **({"hu_window": hu} if hu else {}))
    restricted = restrict_to_fov(heat, body)
    scores = localization_scores(restricted, mask, threshold=task.evaluate.iou_threshold)

    def mean(values: np.ndarray) -> float | None:
        finite = np.asarray(values, np.float64)[np.isfinite(values)]
        return round(float(finite.mean()), 6) if finite.size else None

    outside = [float(h[~b].sum() / max(h.sum(), 1e-12)) for h, b in zip(heat, body, strict=True)]
    return {"pointing_game": mean(scores.hit), "iou": mean(scores.iou),
            "energy_in_mask": mean(scores.energy), "energy_chance": mean(scores.chance),
            "heat_outside_body": round(float(np.mean(outside)), 6),
            "note": "maps restricted to the body computed from the image (heat outside removed, "
                    "renormalised); the unrestricted measures are the reported ones"}
