"""The DVC metrics file of one external cohort, ``metrics/<task>/external/<name>.json``.

Pure numpy: the probabilities come in, the document goes out. Layout::

    {
      "cohort": {"name": "site_b", "samples": 84, "quarantined_rows": 0, ...},
      "locked": {"threshold": {...}, "tta": "none", "explain": {...}, "refitted": "nothing"},
      "bootstrap": {...as metrics/<task>.json...}, "ece_bins": 10,
      "external": {...the keys of metrics/<task>.json "test"...},       # at the locked threshold
      "cohort_threshold": {"for_comparison_only": true, "threshold": {...}, ...same keys...},
      "calibration": {"external": {"ece", "brier", "calibration_in_the_large"},
                      "internal_test": {...}, "drift": {"ece": ext - int, "ece_ci_low", ...}},
      "difference": {"pairing": "unpaired", "shared_patients": 0,
                     "auroc": ext - int, "auroc_ci_low": ..., "auroc_ci_high": ..., ...},
      "subgroups": {...as metrics/<task>.json, "split": "external"...},
      "recalibration": {"for_comparison_only": true, "method": "platt", "fitted_on": {...},
                        "measured_on": {...}, "held_out": {"locked": {...}, "recalibrated": {...}},
                        "change": {"ece": recalibrated - locked, "ece_ci_low", ...}, ...}
    }

``external`` is the result: the locked model at the locked threshold on data it never saw.
``cohort_threshold`` re-chooses the threshold *on the cohort itself* with the task's rule, to
show how much of a drop is the threshold's; it is optimistic (chosen and measured on the same
cases) and is never the estimate to report. Without the internal test predictions the
``difference`` and ``drift`` sections are absent. ``recalibration`` (only when
``evaluate.recalibration`` is set) refits the probability scale on a slice of the cohort's
patients and measures it on the others (:mod:`pipeline.validate.recalibration`); it is for
comparison too and replaces nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.evaluate.bootstrap import CLOPPER_PEARSON
from pipeline.evaluate.decision import OperatingPoint, choose_operating_point
from pipeline.evaluate.predictions import Predictions, Problem
from pipeline.evaluate.subgroups import subgroup_metrics
from pipeline.evaluate.summary import classification_section, to_jsonable
from pipeline.validate.compare import CITL, Scored, cohort_statistic, metric_differences

#: Metrics whose external - internal difference is reported with an interval.
DIFFERENCE_METRICS = ("auroc", "auprc", "accuracy", "recall", "specificity", "f1")
CALIBRATION_METRICS = ("ece", "brier", CITL)
RECALIBRATION_NOTE = ("probability scale refitted on a slice of this cohort's patients and measured on "
                      "the others, for comparison only: what a site could gain by recalibrating "
                      "before use; ranking and decisions are unchanged; the locked result is "
                      "'external'")
COMPARISON_NOTE = ("threshold re-chosen on this cohort with the task's rule: for comparison only "
                   "(optimistic, chosen and measured on the same cases); the locked result is "
                   "'external'")


def external_document(*, problem: Problem, external: Predictions, internal: Predictions | None,
                      operating_point: OperatingPoint, rule: str | float, locked: Mapping[str, Any],
                      cohort: Mapping[str, Any], attributes: Mapping[str, Sequence[str]],
                      skipped: Mapping[str, str], localization: Mapping[str, Any] | None = None,
                      n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                      n_bins: int = 10, recalibration: str = "none",
                      recalibration_share: float = 0.5) -> dict[str, Any]:
    """The metrics document of one cohort (layout in the module docstring), JSON-ready.

    Args:
        problem: Task problem type.
        external: The cohort's predictions (as read back from its predictions file).
        internal: The internal test split's predictions (``eval/<task>/predictions.csv``), or
            None: no difference or drift.
        operating_point: The locked operating point (from ``metrics/<task>.json``).
        rule: The task's threshold rule, used only for ``cohort_threshold``.
        locked: The ``locked`` section (:meth:`pipeline.validate.locked.LockedModel.to_json`).
        cohort: The ``cohort`` section (counts, no identifiers).
        attributes, skipped: Subgroup attributes of the cohort's samples (see
            :func:`pipeline.evaluate.subgroups.candidate_columns`).
        localization: Flat localization keys merged into ``external`` (cases with masks).
        n_boot, seed, level: Patient-level bootstrap, as the evaluate stage's.
        n_bins: Calibration bins.
        recalibration, recalibration_share: ``evaluate.recalibration`` (``none``: no section)
            and the share of patients it is fitted on.
    """
    names = tuple(external.label_names)
    targets = external.targets(problem)
    boot = {"n_boot": n_boot, "seed": seed, "level": level}
    section = classification_section(problem, targets, external.probs, external.patients,
                                     operating_point, names, n_bins=n_bins, **boot)
    doc: dict[str, Any] = {
        "cohort": dict(cohort), "locked": dict(locked),
        "bootstrap": {**boot, "unit": "patient", "method": "percentile",
                      "degenerate_method": CLOPPER_PEARSON},
        "ece_bins": n_bins,
        "external": {**section, **(localization or {})},
        "cohort_threshold": _cohort_threshold(problem, external, rule, boot, n_bins),
        "subgroups": subgroup_metrics(problem, targets, external.probs, external.patients,
                                      operating_point, names, attributes=attributes,
                                      skipped=skipped, split="external", **boot),
    }
    ext_stat = Scored(cohort_statistic(problem, targets, external.probs, operating_point, names,
                                       n_bins=n_bins), external.patients)
    calibration: dict[str, Any] = {"external": _point(ext_stat, CALIBRATION_METRICS)}
    if internal is not None:
        int_stat = Scored(cohort_statistic(problem, internal.targets(problem), internal.probs,
                                           operating_point, names, n_bins=n_bins), internal.patients)
        diff = metric_differences(ext_stat, int_stat, (*DIFFERENCE_METRICS, *CALIBRATION_METRICS),
                                  **boot)
        calibration["internal_test"] = _point(int_stat, CALIBRATION_METRICS)
        calibration["drift"] = _subset(diff, CALIBRATION_METRICS)
        doc["difference"] = _subset(diff, DIFFERENCE_METRICS)
    doc["calibration"] = calibration
    if recalibration != "none":
        doc["recalibration"] = recalibration_section(problem, external, operating_point, recalibration,
                                                     share=recalibration_share, n_bins=n_bins, **boot)
    return to_jsonable(doc)


def recalibration_section(problem: Problem, external: Predictions, operating_point: OperatingPoint,
                          method: str, *, share: float, n_boot: int, seed: int, level: float,
                          n_bins: int) -> dict[str, Any]:
    """The ``recalibration`` section: fitted on ``share`` of the cohort's patients, measured on
    the rest, locked against recalibrated (paired), or why it was skipped."""
    from pipeline.validate.recalibration import fit_recalibration, split_patients

    names = tuple(external.label_names)
    targets = external.targets(problem)
    positive = targets[:, 1:].any(axis=1)  # binary: the positive class; others: not the first label
    if problem == "multilabel":
        positive = targets.any(axis=1)
    fitting = split_patients(external.patients, positive, share=share, seed=seed)
    out: dict[str, Any] = {"for_comparison_only": True, "note": RECALIBRATION_NOTE, "method": method,
                           "share": share}
    patients = np.asarray(external.patients, dtype=str)
    for key, rows in (("fitted_on", fitting), ("measured_on", ~fitting)):
        out[key] = {"patients": len(set(patients[rows])), "samples": int(rows.sum())}
    both = [problem == "multiclass" or bool(targets[rows][:, c].any() and (~targets[rows][:, c]).any())
            for rows in (fitting, ~fitting) for c in ([1] if problem == "binary" else range(len(names)))]
    if not all(both):
        out["skipped"] = ("each slice needs cases with and without every label's finding "
                          "(too few patients in the cohort)")
        return out
    recal = fit_recalibration(method, problem, targets[fitting], external.probs[fitting])
    held = ~fitting
    mapped = OperatingPoint(problem, operating_point.rule,
                            tuple(recal.threshold(t, k) for k, t in enumerate(operating_point.thresholds)),
                            operating_point.fallback)
    held_patients = tuple(patients[held])
    locked = Scored(cohort_statistic(problem, targets[held], external.probs[held], operating_point, names,
                                     n_bins=n_bins), held_patients)
    refit = Scored(cohort_statistic(problem, targets[held], recal.apply(external.probs[held]), mapped, names,
                                    n_bins=n_bins), held_patients)
    change = metric_differences(refit, locked, (*CALIBRATION_METRICS, "auroc", "accuracy"),
                                n_boot=n_boot, seed=seed, level=level)
    out.update({
        "parameters": recal.parameters(names),
        "threshold_on_recalibrated_scale": mapped.to_json(names).get("value"),
        "held_out": {"locked": _point(locked, CALIBRATION_METRICS),
                     "recalibrated": _point(refit, CALIBRATION_METRICS)},
        "change": _subset(change, (*CALIBRATION_METRICS, "auroc", "accuracy")),
    })
    return out


def _cohort_threshold(problem: Problem, external: Predictions, rule: str | float,
                      boot: Mapping[str, Any], n_bins: int) -> dict[str, Any]:
    names = tuple(external.label_names)
    targets = external.targets(problem)
    own = choose_operating_point(problem, targets, external.probs, rule)
    section = classification_section(problem, targets, external.probs, external.patients, own,
                                      names, n_bins=n_bins, **boot)
    note = COMPARISON_NOTE if problem != "multiclass" else "argmax decision: no threshold to choose"
    return {"for_comparison_only": True, "note": note, "threshold": own.to_json(names), **section}


def _point(scored: Scored, metrics: Sequence[str]) -> dict[str, float]:
    values = scored.statistic(np.ones((1, len(scored.patients))))
    return {m: float(values[m][0]) for m in metrics}


def _subset(diff: Mapping[str, Any], metrics: Sequence[str]) -> dict[str, Any]:
    keep = ("pairing", "shared_patients", "n_boot", "level", "unit")
    out = {k: diff[k] for k in keep}
    for m in metrics:
        out.update({k: diff[k] for k in (m, f"{m}_ci_low", f"{m}_ci_high", f"{m}_valid_resamples")})
    return out
