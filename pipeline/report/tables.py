"""Plain-language views of the metrics and the model card for the report pages.

Metrics come in as the evaluate stage writes them: flat ``{name: value}`` with the 95% CI as
``<name>_ci_low`` / ``<name>_ci_high`` (or a two-item ``<name>_ci``) and, optionally,
``<name>_ci_method`` (``"clopper-pearson"`` marks an exact interval that replaced a collapsed
bootstrap one). Names are explained in words a clinician uses (sensitivity, PPV...), measures
where lower is better say so, and counts and settings get readable names (:func:`readable_name`).

The heatmap measures (pointing game, heat share in lesions, IoU, deletion check) are kept apart
from the accuracy measures (:func:`split_rows`); their rows, chance levels and warnings are in
:mod:`pipeline.report.localization`. The model card's summary and full listing are
:func:`card_summary` and :func:`flatten`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: metric key -> (display name, what it means). Aliases share an entry.
_SENSITIVITY = ("Sensitivity (recall)", "Share of cases with the finding that the model flags.")
_PPV = ("Positive predictive value (precision)",
        "Share of flagged cases that really have the finding; depends on how common it is.")
_BRIER = ("Brier score", "Mean squared error of the probabilities; 0 is perfect, lower is better.")
_ECE = ("Expected calibration error",
        "Average gap between the stated probability and how often the finding is really present; "
        "lower is better.")
_POINTING = ("Pointing-game hit rate",
             "Share of positive cases whose heatmap peak falls inside the annotated lesion; by chance "
             "(a peak placed at random) it is the lesions' share of the image.")
METRIC_INFO: dict[str, tuple[str, str]] = {
    "auroc": ("AUROC", "How well the score ranks cases with the finding above cases without it, "
                       "over all thresholds; 0.5 is chance, 1 is perfect."),
    "recall": _SENSITIVITY,
    "sensitivity": _SENSITIVITY,
    "specificity": ("Specificity", "Share of cases without the finding that the model clears."),
    "precision": _PPV,
    "ppv": _PPV,
    "npv": ("Negative predictive value",
            "Share of cleared cases that really are without the finding; depends on how common it is."),
    "f1": ("F1 score", "Balance of sensitivity and positive predictive value."),
    "accuracy": ("Accuracy", "Share of all cases decided correctly; misleading when the finding is rare."),
    "auprc": ("AUPRC (average precision)",
              "Area under the precision-recall curve; depends on how common the finding is."),
    "brier": _BRIER,
    "brier_score": _BRIER,
    "ece": _ECE,
    "expected_calibration_error": _ECE,
    "iou": ("Heatmap-lesion overlap (IoU)",
            "Overlap of the thresholded heatmap with annotated lesions; 1 is identical. Measures the "
            "explanation, not the diagnosis."),
    "pointing_game": _POINTING,
    "pointing_game_hit_rate": _POINTING,
    "energy_in_mask": ("Heatmap share inside lesions",
                       "Share of the heatmap's total brightness inside annotated lesions; by chance (a "
                       "map blind to them) it is the lesions' share of the image."),
    "energy_chance": ("Lesions' share of the image",
                      "Chance level for the heatmap share: the fraction of the image the lesions cover."),
    "deletion_win_rate": ("Deletion check: heatmap beats random masking",
                          "Share of images where masking the regions the heatmap ranks highest lowered "
                          "the score more than masking random regions of the same size; 0.5 is chance."),
}
#: Heatmap (explanation) measures, in display order; shown in their own section.
LOCALIZATION_KEYS = ("pointing_game", "pointing_game_hit_rate", "energy_in_mask", "iou",
                     "deletion_win_rate")
#: Keys shown as a chance level next to their measure, never as rows of their own.
CHANCE_KEYS = frozenset({"pointing_game_chance", "energy_chance"})
#: Readable names of counts and settings (the table without CIs); other keys get
#: :func:`readable_name`'s fallback.
COUNT_NAMES: dict[str, str] = {
    "n": "Test cases",
    "n_patients": "Test patients",
    "n_positive": "Cases with the finding",
    "tp": "True positives",
    "fp": "False positives",
    "tn": "True negatives",
    "fn": "False negatives",
    "n_localized": "Cases with an annotated lesion (used for the heatmap measures)",
    "n_localized_patients": "Patients with an annotated lesion",
    "iou_threshold": "Heatmap cut-off for IoU (fraction of the map's maximum)",
    "localization_valid_resamples": "Bootstrap resamples behind the heatmap intervals",
    "deletion_fraction": "Deletion check: share of the image masked",
    "deletion_drop_map": "Deletion check: mean score drop, heatmap regions masked",
    "deletion_drop_random": "Deletion check: mean score drop, random regions masked",
    "threshold": "Operating threshold",
}
EXACT = "clopper-pearson"
_LOWER_IS_BETTER = frozenset({"brier", "brier_score", "ece", "expected_calibration_error"})
#: The few measures repeated on every case page.
HEADLINE_KEYS = ("auroc", "recall", "sensitivity", "specificity", "precision", "ppv", "npv")
_NOT_METRICS = frozenset({"threshold", "confusion_matrix"})


@dataclass(frozen=True)
class MetricRow:
    """One measure for display: ``value`` and ``ci`` are already formatted (``ci`` may be "").

    ``exact`` marks an exact (Clopper-Pearson) interval that replaced a collapsed bootstrap one;
    ``chance`` is the formatted chance level of a heatmap measure ("" when not applicable).
    """

    key: str
    name: str
    value: str
    ci: str
    meaning: str
    exact: bool = False
    chance: str = ""


def format_number(value: Any, digits: int = 3) -> str:
    """Numbers as short text: ints as-is, floats with ``digits`` decimals, NaN as 'n/a'."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def metric_rows(metrics: Mapping[str, Any], keys: Sequence[str] | None = None) -> list[MetricRow]:
    """Rows for the numeric metrics (known ones first, in clinical order), CIs attached.

    Args:
        metrics: Flat metrics mapping (see the module docstring).
        keys: Only these keys, in this order (absent ones skipped); default: all numeric ones.
    """
    ci_parts = {k for k in metrics if k.endswith(("_ci_low", "_ci_high", "_ci"))}
    numeric = [k for k, v in metrics.items() if k not in ci_parts and k not in _NOT_METRICS
               and is_number(v)]
    if keys is None:
        order = [k for k in METRIC_INFO if k in numeric]
        order += sorted(k for k in numeric if k not in METRIC_INFO)
    else:
        order = [k for k in keys if k in numeric]
    rows = []
    for key in order:
        name, meaning = METRIC_INFO.get(key, (readable_name(key), ""))
        if key in _LOWER_IS_BETTER and "lower" not in meaning:
            meaning += " Lower is better."
        ci = ci_text(metrics, key)
        rows.append(MetricRow(key=key, name=name, value=format_number(metrics[key]), ci=ci,
                              meaning=meaning, exact=bool(ci) and metrics.get(f"{key}_ci_method") == EXACT))
    return rows


def readable_name(key: str) -> str:
    """Display name of a count or setting: :data:`COUNT_NAMES`, else the key in words
    (``n_cases`` -> "Number of cases", ``custom_score`` -> "Custom score")."""
    if key in COUNT_NAMES:
        return COUNT_NAMES[key]
    words = [w for w in key.split("_") if w]
    if not words:
        return key
    if words[0] == "n" and len(words) > 1:
        words = ["number", "of", *words[1:]]
    text = " ".join(words)
    return text[0].upper() + text[1:]


def split_rows(rows: Sequence[MetricRow]) -> tuple[list[MetricRow], list[MetricRow]]:
    """``(measures, counts)``: the described accuracy measures, and the rest (case counts,
    settings such as ``iou_threshold``, bootstrap bookkeeping), which get no CI column and no
    explanation. Heatmap measures and their chance levels are in neither: they have their own
    section (:func:`pipeline.report.localization.localization_rows`)."""
    apart = set(LOCALIZATION_KEYS) | CHANCE_KEYS
    measures = [r for r in rows if r.key in METRIC_INFO and r.key not in apart]
    return measures, [r for r in rows if r.key not in METRIC_INFO and r.key not in apart]


def is_number(value: Any) -> bool:
    """A real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def ci_text(metrics: Mapping[str, Any], key: str) -> str:
    """The 95% CI of ``key`` as text (``0.812 to 0.934``), or "" when it is not in ``metrics``."""
    low, high = metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
    pair = metrics.get(f"{key}_ci")
    if low is None and isinstance(pair, Sequence) and not isinstance(pair, str) and len(pair) == 2:
        low, high = pair
    if is_number(low) and is_number(high):
        return f"{format_number(float(low))} to {format_number(float(high))}"
    return ""


def confusion_matrix(metrics: Mapping[str, Any], labels: Sequence[str]) -> list[list[str]] | None:
    """``metrics["confusion_matrix"]`` (rows = truth, columns = prediction) as text cells, or
    ``None`` when absent or not a square integer matrix over ``labels``."""
    cm = metrics.get("confusion_matrix")
    if hasattr(cm, "tolist"):  # a numpy array
        cm = cm.tolist()
    n = len(labels)
    if not isinstance(cm, Sequence) or len(cm) != n:
        return None
    if not all(isinstance(r, Sequence) and len(r) == n for r in cm):
        return None
    if not all(is_number(v) for r in cm for v in r):
        return None
    return [[format_number(int(v)) for v in row] for row in cm]


#: Model-card fields worth a line in the summary, in order, with their display names.
_CARD_SUMMARY = (
    ("task", "Task"), ("kind", "Image type"), ("problem", "Problem"), ("labels", "Labels"),
    ("backbone", "Network (backbone)"), ("input_shape", "Model input shape"),
    ("input", "Model input"), ("weights", "Pretrained weights"), ("precision", "Numeric precision"),
    ("samples", "Cases per split"), ("epochs_run", "Epochs trained"), ("seed", "Random seed"),
    ("training_data_sha256", "Training data fingerprint (SHA-256)"),
    ("val_metrics", "Validation metrics"), ("versions", "Software versions"),
)


def card_summary(card: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(name, text)`` pairs for the model-card fields clinicians and auditors ask about."""
    rows = []
    for key, name in _CARD_SUMMARY:
        if key not in card:
            continue
        value = card[key]
        if key == "weights" and value is None:
            text = "none (trained from scratch)"
        elif key == "input_shape" and isinstance(value, Sequence):
            text = " × ".join(str(v) for v in value)
        else:
            text = _inline(value)
        rows.append((name, text))
    return rows


def flatten(card: Mapping[str, Any], *, max_depth: int = 6) -> list[tuple[str, str]]:
    """Every card field as ``("params.batch_size", "16")`` pairs, sorted by key."""
    out: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any, depth: int) -> None:
        if isinstance(value, Mapping) and value and depth < max_depth:
            for k in sorted(value, key=str):
                walk(f"{prefix}.{k}" if prefix else str(k), value[k], depth + 1)
        else:
            out.append((prefix, _inline(value)))

    walk("", card, 0)
    return out


def _inline(value: Any) -> str:
    """A JSON-like value on one line: mappings as ``k: v · k: v``, lists comma-separated."""
    if value is None:
        return "none"
    if isinstance(value, Mapping):
        return " · ".join(f"{k}: {_inline(v)}" for k, v in value.items())
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ", ".join(_inline(v) for v in value)
    return format_number(value)
