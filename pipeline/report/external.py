"""External validation pages: ``reports/<task>-external/<name>/index.html`` (one cohort, internal
test and external results side by side) and ``reports/<task>-external/index.html`` (the list of
cohorts). Each says "External validation" in its title, heading and banner.

Renders the metrics documents of :mod:`pipeline.validate.document` and the plot rows of
:mod:`pipeline.validate.plots` (dicts and lists in, one self-contained HTML file out, under the
same strict Content-Security-Policy and autoescaping as the rest of the report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.report.pages import render
from pipeline.report.svg import PALETTE, Axis, Guide, Series, line_chart
from pipeline.report.tables import METRIC_INFO, ci_text, format_number
from pipeline.utils.atomic import write_text

PAGE = "index.html"
#: Rows of the side-by-side table, in clinical order (absent keys are skipped).
SIDE_BY_SIDE = ("auroc", "auprc", "recall", "specificity", "precision", "npv", "accuracy", "f1",
                "brier", "ece", "pointing_game", "iou", "energy_in_mask")
CALIBRATION = (("ece", "Expected calibration error", "Mean gap between predicted and observed "
                "frequency, over probability bins. Lower is better."),
               ("brier", "Brier score", "Mean squared error of the probabilities. Lower is better."),
               ("calibration_in_the_large", "Calibration in the large",
                "Mean predicted probability minus observed fraction positive; 0 is calibrated, "
                "above 0 over-predicts."))


def write_cohort_page(out_dir: Path, *, task_name: str, cohort: str, doc: Mapping[str, Any],
                      internal: Mapping[str, Any], curves: Mapping[str, Sequence[Mapping[str, Any]]]
                      ) -> Path:
    """Write one cohort's page.

    Args:
        out_dir: ``reports/<task>-external/<name>``.
        task_name: The task.
        cohort: The cohort name.
        doc: Its metrics document (``metrics/<task>/external/<name>.json``).
        internal: The internal ``test`` section of ``metrics/<task>.json``.
        curves: Its plot rows (``roc``, ``calibration``; classes named per side).

    Returns:
        The page's path.
    """
    ext, diff = doc.get("external", {}), doc.get("difference", {})
    # Calibration drift has the same form as the differences: one table shows both.
    both = {**doc.get("calibration", {}).get("drift", {}), **diff}
    context = {
        "task_name": task_name, "cohort": cohort, "counts": doc.get("cohort", {}), "cohorts": [],
        "rows": side_by_side_rows(internal, ext, both),
        "threshold_text": _threshold_text(doc.get("locked", {})),
        "pairing_text": _pairing_text(diff),
        "calibration": _calibration_rows(doc.get("calibration", {})),
        "charts": _charts(curves),
        "comparison": _comparison_rows(ext, doc.get("cohort_threshold", {})),
        "comparison_text": _comparison_text(doc.get("cohort_threshold", {})),
        "subgroups": _subgroup_rows(doc.get("subgroups", {})),
        "recalibration": _recalibration(doc.get("recalibration")),
    }
    path = out_dir / PAGE
    write_text(path, render("external.html", script="external.js", **context))
    return path


def write_cohort_index(out_dir: Path, *, task_name: str, cohorts: Mapping[str, Mapping[str, Any]]
                       ) -> Path:
    """Write the list of cohorts (or "no cohorts") as ``out_dir/index.html``."""
    rows = [{"name": name, "href": f"{name}/{PAGE}", "samples": doc.get("cohort", {}).get("samples"),
             "auroc": _value_ci(doc.get("external", {}), "auroc"),
             "difference": _value_ci(doc.get("difference", {}), "auroc")}
            for name, doc in cohorts.items()]
    html = render("external.html", script="external.js", task_name=task_name, cohort=None,
                  cohorts=rows)
    path = out_dir / PAGE
    write_text(path, html)
    return path


def side_by_side_rows(internal: Mapping[str, Any], external: Mapping[str, Any],
                      difference: Mapping[str, Any]) -> list[dict[str, str]]:
    """One row per measure present on either side: values, CIs and the difference."""
    rows = []
    for key in SIDE_BY_SIDE:
        if internal.get(key) is None and external.get(key) is None:
            continue
        name, meaning = METRIC_INFO.get(key, (key, ""))
        rows.append({"key": key, "name": name, "meaning": meaning,
                     "internal": format_number(_num(internal.get(key))),
                     "internal_ci": ci_text(internal, key),
                     "external": format_number(_num(external.get(key))),
                     "external_ci": ci_text(external, key),
                     "difference": _signed(difference[key]) if key in difference else "not computed",
                     "difference_ci": ci_text(difference, key) if key in difference else ""})
    return rows


def _num(value: Any) -> Any:
    return float("nan") if value is None else value


def _signed(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):+.3f}"


def _value_ci(section: Mapping[str, Any], key: str) -> str:
    if key not in section:
        return "not computed"
    ci = ci_text(section, key)
    return format_number(_num(section[key])) + (f" ({ci})" if ci else "")


def _threshold_text(locked: Mapping[str, Any]) -> str:
    t = locked.get("threshold", {})
    value = t.get("value")
    if isinstance(value, dict):
        shown = ", ".join(f"{k} {format_number(v)}" for k, v in value.items())
    elif value is None:
        return "Decision: the most probable label (argmax), as in the development run."
    else:
        shown = format_number(value)
    return (f"Locked threshold {shown} (rule {t.get('rule')}, chosen on the internal validation split); "
            f"test-time augmentation: {locked.get('tta')}. Neither was changed for this cohort.")


def _pairing_text(diff: Mapping[str, Any]) -> str:
    if not diff:
        return "Differences were not computed (the internal test predictions were not available)."
    if diff.get("pairing") == "paired":
        return (f"Differences are paired: {diff.get('shared_patients')} patients appear in both "
                "cohorts, so the bootstrap draws patients once for both sides (95% percentile "
                "interval).")
    return ("Differences are unpaired: no patient appears in both cohorts, so each is resampled by "
            "patient on its own (95% percentile interval of the difference).")


def _calibration_rows(section: Mapping[str, Any]) -> list[dict[str, str]]:
    ext, inn, drift = (section.get(k, {}) for k in ("external", "internal_test", "drift"))
    return [{"name": name, "meaning": meaning, "internal": format_number(_num(inn.get(key))),
             "external": format_number(_num(ext.get(key))),
             "difference": _signed(drift[key]) if key in drift else "not computed",
             "difference_ci": ci_text(drift, key)}
            for key, name, meaning in CALIBRATION]


def _recalibration(section: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The recalibration section's text and calibration rows, or None when not requested."""
    if not section:
        return None
    fit, held = section.get("fitted_on", {}), section.get("measured_on", {})
    text = (f"{str(section.get('method', '')).capitalize()} recalibration fitted on {fit.get('patients')} "
            f"patients ({fit.get('samples')} cases) of this cohort and measured on the other "
            f"{held.get('patients')} patients ({held.get('samples')} cases).")
    if "skipped" in section:
        return {"text": f"{text} Not computed: {section['skipped']}.", "rows": []}
    value = section.get("threshold_on_recalibrated_scale")
    if value is not None:
        shown = (", ".join(f"{k} {format_number(v)}" for k, v in value.items()) if isinstance(value, dict)
                 else format_number(value))
        text += (f" The locked threshold corresponds to {shown} on the recalibrated scale, so the "
                 "decisions and the ranking (AUROC) do not change: only the probabilities do.")
    locked, refit = (section.get("held_out", {}).get(k, {}) for k in ("locked", "recalibrated"))
    change = section.get("change", {})
    rows = [{"name": name, "meaning": meaning, "internal": format_number(_num(locked.get(key))),
             "external": format_number(_num(refit.get(key))),
             "difference": _signed(change[key]) if key in change else "not computed",
             "difference_ci": ci_text(change, key)}
            for key, name, meaning in CALIBRATION]
    return {"text": text, "rows": rows}


def _comparison_rows(external: Mapping[str, Any], own: Mapping[str, Any]) -> list[dict[str, str]]:
    keys = ("recall", "specificity", "precision", "npv", "accuracy", "f1")
    return [{"name": METRIC_INFO.get(k, (k, ""))[0],
             "internal": _value_ci(external, k), "external": _value_ci(own, k)}
            for k in keys if k in external or k in own]


def _comparison_text(own: Mapping[str, Any]) -> str:
    value = own.get("threshold", {}).get("value")
    shown = (", ".join(f"{k} {format_number(v)}" for k, v in value.items()) if isinstance(value, dict)
             else format_number(value) if value is not None else "none (argmax)")
    return (f"Threshold re-chosen on this cohort with the same rule: {shown}. This is for comparison "
            "only: it was chosen and measured on the same cases, so it is optimistic, and a "
            "deployed model would not have it. The locked column is the external validation result.")


def _subgroup_rows(section: Mapping[str, Any]) -> list[dict[str, str]]:
    rows = []
    for attribute, info in (section.get("attributes") or {}).items():
        for value, group in info.get("values", {}).items():
            for cls, m in group.get("classes", {}).items():
                rows.append({"attribute": attribute.removeprefix("attr_"), "value": value, "cls": cls,
                             "n": str(group.get("n")), "auroc": _value_ci(m, "auroc"),
                             "sensitivity": format_number(_num(m.get("sensitivity"))),
                             "specificity": format_number(_num(m.get("specificity")))})
    return rows


def _charts(curves: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Any]:
    from markupsafe import Markup

    specs = (("roc", "fpr", "tpr", "ROC curve", "False positive rate (1 - specificity)",
              "True positive rate (sensitivity)"),
             ("calibration", "mean_predicted", "observed_fraction", "Reliability diagram",
              "Mean predicted probability", "Observed fraction positive"))
    charts = []
    for kind, x, y, title, x_label, y_label in specs:
        groups: dict[str, list[tuple[float, float]]] = {}
        for r in curves.get(kind, ()):
            if r.get(x) is not None and r.get(y) is not None:
                groups.setdefault(str(r["class"]), []).append((float(r[x]), float(r[y])))
        series = [Series(name, tuple(points)) for name, points in list(groups.items())[:len(PALETTE)]]
        if not series:
            continue
        charts.append(Markup(line_chart(
            chart_id=f"ext-{kind}", title=f"{title}: internal test and external cohort",
            description=f"{title} of the locked model on the internal test split and the external "
                        "cohort, one line each.",
            x_axis=Axis(x_label), y_axis=Axis(y_label), series=series,
            guides=[Guide((0.0, 0.0), (1.0, 1.0), "chance" if kind == "roc" else "perfect calibration")])))
    return charts
