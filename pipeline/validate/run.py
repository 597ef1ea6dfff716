"""External validation of one task, behind :mod:`pipeline.stages.validate`: every cohort of
``tasks.<t>.external`` ingested with the model's settings, predicted by the locked model with the
locked TTA, measured at the locked threshold, localized with the locked explanation method and
layer, and written as DVC metrics, plots and an HTML page (paths in
:mod:`pipeline.validate.layout`). Nothing is fitted on the cohorts for the result; the optional
recalibration (``evaluate.recalibration``) is measured apart, for comparison only.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import TaskParams
from pipeline.validate.layout import EMPTY, PLOT_KINDS, ValidateLayout

log = logging.getLogger(__name__)

INTERNAL_PREDICTIONS = "predictions.csv"


def run_validate(task: TaskParams, *, model_dir: Path, metrics_path: Path, eval_dir: Path,
                 layout: ValidateLayout, seed: int, salt: str, workers: int | None = None,
                 progress: bool = False) -> dict[str, dict[str, Any]]:
    """Validate ``task``'s model on each of its external cohorts; replaces ``layout``'s folders.

    Args:
        task: Validated task params (``task.external`` names the cohorts; ``task.evaluate`` the
            bootstrap, bins and batch size; ``task.evaluate.threshold`` only for the
            for-comparison threshold).
        model_dir: ``models/<task>``.
        metrics_path: ``metrics/<task>.json`` (locked threshold, TTA, explanation method/layer,
            internal test metrics).
        eval_dir: ``eval/<task>`` (the internal test predictions, for paired/unpaired differences).
        layout: Output roots.
        seed, salt: Bootstrap seed and pseudonym key (the development run's).
        workers: Ingest processes (default: ``ingest.workers``).
        progress: Progress bars on stderr.

    Returns:
        Cohort name -> its metrics document (empty without cohorts).
    """
    from pipeline.report.external import write_cohort_index

    if not task.external:
        _reset(layout)
        _write_empty(layout)
        write_cohort_index(layout.report, task_name=task.name, cohorts={})
        log.info("validate %s: no external cohorts (tasks.%s.external is empty)", task.name, task.name)
        return {}
    from pipeline.evaluate.predictions import read_predictions
    from pipeline.train.card import load_trained, read_card
    from pipeline.validate.locked import load_locked

    # The locked decision first: without evaluate's metrics for this model the run fails at
    # once, before TensorFlow loads the model, and leaves the previous outputs as they were.
    locked = load_locked(task, card=read_card(model_dir), metrics_path=metrics_path)
    _reset(layout)
    model, _ = load_trained(model_dir, task)
    internal_path = eval_dir / INTERNAL_PREDICTIONS
    internal = read_predictions(internal_path).select("test") if internal_path.is_file() else None
    if internal is None:
        log.warning("validate %s: no %s; differences to the internal test are not computed",
                    task.name, internal_path)
    docs = {}
    for name, source in task.external.items():
        docs[name] = validate_cohort(task, name, source, model=model, locked=locked, internal=internal,
                                     layout=layout, seed=seed, salt=salt, workers=workers,
                                     progress=progress)
    write_cohort_index(layout.report, task_name=task.name, cohorts=docs)
    return docs


def validate_cohort(task: TaskParams, name: str, source: Any, *, model: Any, locked: Any,
                    internal: Any, layout: ValidateLayout, seed: int, salt: str,
                    workers: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Ingest, predict, measure and report one cohort; returns its metrics document."""
    from pipeline.dataset.cases import select_cases
    from pipeline.dataset.layout import InterimLayout
    from pipeline.dataset.store import open_array
    from pipeline.evaluate.inference import predict_probs
    from pipeline.evaluate.predictions import read_predictions, write_predictions
    from pipeline.evaluate.subgroups import candidate_columns
    from pipeline.evaluate.summary import write_metrics
    from pipeline.report.external import write_cohort_page
    from pipeline.validate.cohort import EXTERNAL_SPLIT, ingest_cohort
    from pipeline.validate.document import external_document
    from pipeline.validate.plots import cohort_plot_rows, write_cohort_plots

    ep = task.evaluate
    cohort = ingest_cohort(task, name, source, ingest=locked.ingest, layout=layout, seed=seed,
                           salt=salt, workers=workers, progress=progress)
    cases = select_cases(cohort.data_dir, (EXTERNAL_SPLIT,))
    if not len(cases):
        raise ValueError(f"tasks.{task.name}.external.{name}: no usable sample (all quarantined; "
                         f"see {InterimLayout(cohort.data_dir).quarantine})")
    probs = predict_probs(model, open_array(InterimLayout(cohort.data_dir).images), cases.indices,
                          batch_size=ep.batch_size, tta=locked.tta)
    write_predictions(layout.predictions(name), sample_ids=cases.column("sample_id"),
                      patients=cases.column("patient"), splits=cases.column("split"),
                      labels=cases.column("label"), probs=probs, label_names=task.labels)
    external = read_predictions(layout.predictions(name))  # rounded as evaluate's, read back
    columns, skipped = candidate_columns(cases.rows[0].keys())
    doc = external_document(
        problem=task.problem, external=external, internal=internal,
        operating_point=locked.operating_point, rule=ep.threshold,
        locked=locked.to_json(task.labels), cohort=_cohort_section(name, source, cohort),
        attributes={c: [r.get(c) or "" for r in cases.rows] for c in columns}, skipped=skipped,
        localization=cohort_localization(task, model, locked, cohort.data_dir, cases, seed=seed),
        n_boot=ep.bootstrap, seed=seed, level=ep.ci_level, n_bins=ep.calibration_bins,
        recalibration=ep.recalibration, recalibration_share=ep.recalibration_share)
    write_metrics(layout.metrics_file(name), doc)
    rows = cohort_plot_rows(task.problem, name, external, internal, locked.operating_point,
                            n_bins=ep.calibration_bins)
    write_cohort_plots(layout, name, rows)
    write_cohort_page(layout.page(name), task_name=task.name, cohort=name, doc=doc,
                      internal=locked.internal, curves=rows)
    ext = doc["external"]
    log.info("validate %s/%s: AUROC %s [%s, %s] at the locked threshold %s (internal test %s)",
             task.name, name, ext.get("auroc"), ext.get("auroc_ci_low"), ext.get("auroc_ci_high"),
             doc["locked"]["threshold"].get("value"), locked.internal.get("auroc"))
    return doc


def cohort_localization(task: TaskParams, model: Any, locked: Any, data_dir: Path, cases: Any, *,
                        seed: int) -> dict[str, Any] | None:
    """Pointing game / IoU of the locked method and layer on the cohort's cases with a lesion
    mask (binary tasks: those of the positive class, as evaluate scores them); None without
    masks or without a locked method."""
    from pipeline.dataset.cases import load_inputs
    from pipeline.dataset.layout import InterimLayout
    from pipeline.dataset.store import open_array
    from pipeline.evaluate.localization import localization_metrics, localization_scores
    from pipeline.explain import Explainer

    positive = task.labels[-1] if task.problem == "binary" else None
    keep = [i for i, r in enumerate(cases.rows) if r.get("has_mask") == "1"
            and (positive is None or r["label"] == positive)]
    if not keep or locked.method is None:
        log.info("validate %s: %s; no localization", task.name,
                 "no locked explanation method" if keep else "no case with a lesion mask")
        return None
    layout = InterimLayout(data_dir)
    rows = cases.indices[keep]
    explainer = Explainer(model, layer=locked.layer or "auto", backbone=locked.card.get("backbone"))
    heat = explainer.maps(load_inputs(open_array(layout.images), rows), method=locked.method,
                          batch_size=task.explain.batch_size, tta=locked.map_tta)
    masks = open_array(layout.masks)
    mask = np.stack([np.asarray(masks[int(i)])[..., 0] for i in rows])
    ep = task.evaluate
    scores = localization_scores(np.asarray(heat, np.float32), mask, threshold=ep.iou_threshold)
    out = localization_metrics(scores, [cases.rows[i]["patient"] for i in keep], n_boot=ep.bootstrap,
                               seed=seed, level=ep.ci_level, threshold=ep.iou_threshold)
    out["localization_method"] = locked.method
    out["localization_layer"] = explainer.layer
    return out


def _cohort_section(name: str, source: Any, cohort: Any) -> dict[str, Any]:
    s = cohort.summary
    kind = ("demo" if source.demo_kind else "medmnist" if source.is_medmnist else "folder")
    return {"name": name, "source_kind": kind,
            **({"demo_seed": source.demo_seed} if source.demo_kind else {}),
            "rows": s.rows, "samples": s.samples, "quarantined_rows": s.quarantined_rows,
            "quarantined_files": s.quarantined_files, "quarantine_codes": s.reasons}


def _reset(layout: ValidateLayout) -> None:
    """Remove an earlier run's outputs, so a removed cohort leaves nothing behind."""
    for root in layout.owned:
        if root.exists():
            shutil.rmtree(root)
    for path in (layout.work, layout.predictions_dir, layout.metrics, layout.report,
                 *(layout.plots_dir(k) for k in PLOT_KINDS)):
        path.mkdir(parents=True, exist_ok=True)


def _write_empty(layout: ValidateLayout) -> None:
    """Placeholders git keeps and DVC reads as nothing: ``{}`` metrics, ``[]`` plot rows."""
    from pipeline.utils.atomic import write_text

    write_text(layout.metrics / EMPTY, "{}\n")
    for kind in PLOT_KINDS:
        write_text(layout.plots_dir(kind) / EMPTY, "[]\n")
