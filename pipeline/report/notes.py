"""The sentences and headline numbers a report's index shows, from the metrics and the
explanation outputs: what the numbers are (and are not), how the heatmap method was chosen, the
shortcut audit, cross-validation. Pure functions of the recorded JSON, so the report stage and
tests share them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.explain.outputs import METHOD_NAMES


def headline(metrics: Mapping[str, Any], threshold: float | None,
             faithfulness: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The flat test metrics the report shows, plus the threshold and the deletion check of the
    shown method (``deletion_win_rate``, ``deletion_flag``...; see
    :class:`pipeline.explain.DeletionResult`)."""
    flat = {k: v for k, v in metrics.get("test", {}).items() if not isinstance(v, dict)}
    if threshold is not None:
        flat["threshold"] = threshold
    if isinstance(faithfulness, Mapping):
        for key, name in (("win_rate", "deletion_win_rate"), ("flag", "deletion_flag"),
                          ("fill", "deletion_fill"), ("scored_on", "deletion_scored_on"),
                          ("fraction", "deletion_fraction"), ("mean_drop_map", "deletion_drop_map"),
                          ("mean_drop_random", "deletion_drop_random")):
            if faithfulness.get(key) is not None:
                flat[name] = faithfulness[key]
    return flat


def report_notes(metrics: Mapping[str, Any], faithfulness: Mapping[str, Any], method: str) -> list[str]:
    """The notes on the report's index: what the numbers are and are not, in plain sentences."""
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
    notes += cross_validation_notes(metrics.get("cross_validation"))
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
    tta = explain.get("tta")
    if isinstance(tta, str) and tta != "none":
        views = {"flip": "the image and its left-right mirror",
                 "shift": "the image and 4 copies shifted by 4% of its side",
                 "flip_shift": "10 views of the image (4 shifts by 4% of its side, and the same "
                               "for its left-right mirror)"}.get(tta, tta)
        notes.append(f"Each heatmap is the mean of the maps of {views}, each moved back onto the "
                     "image: evidence that holds under these small changes, at a finer scale than "
                     "one map of the coarse feature grid. The label explained is chosen on the image itself.")
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


def cross_validation_notes(section: Mapping[str, Any] | None) -> list[str]:
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
