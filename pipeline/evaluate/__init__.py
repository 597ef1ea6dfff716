"""Evaluation: predictions file, threshold on val, metrics with patient-level bootstrap CIs,
localization (IoU, pointing game), test-time augmentation views and DVC metrics/plots outputs.

Pure numpy / scikit-learn, no TensorFlow: the stage entry point runs the model (``tta`` takes its
predict function and only imports Keras for backend tensors), this package turns its
probabilities (and Grad-CAM maps) into numbers and plot data.
"""

from __future__ import annotations

from pipeline.evaluate.bootstrap import Estimate, bootstrap, resample_counts
from pipeline.evaluate.curves import (
    PLOT_FILES,
    calibration_rows,
    confusion_rows,
    pr_rows,
    roc_rows,
    write_plot_data,
)
from pipeline.evaluate.decision import OperatingPoint, choose_operating_point
from pipeline.evaluate.localization import (
    LocalizationScores,
    binarize_map,
    iou,
    localization_metrics,
    localization_scores,
    mask_iou,
    pointing_hit,
)
from pipeline.evaluate.metrics import (
    RATE_METRICS,
    BinaryStats,
    ClassificationStats,
    binary_metrics,
    classification_metrics,
    confusion_matrix,
)
from pipeline.evaluate.predictions import (
    Predictions,
    as_probability_matrix,
    label_indicators,
    read_predictions,
    write_predictions,
)
from pipeline.evaluate.summary import (
    Evaluation,
    classification_section,
    evaluate_splits,
    to_jsonable,
    write_metrics,
)
from pipeline.evaluate.threshold import (
    ThresholdRule,
    UndefinedThresholdError,
    choose_threshold,
    parse_threshold_rule,
    validate_threshold_rule,
)
from pipeline.evaluate.tta import TTA_MODES, View, apply_view, check_tta_mode, n_views, tta_predict

__all__ = [
    "PLOT_FILES", "RATE_METRICS", "TTA_MODES", "BinaryStats", "ClassificationStats", "Estimate",
    "Evaluation", "LocalizationScores", "OperatingPoint", "Predictions", "ThresholdRule",
    "UndefinedThresholdError", "View", "apply_view", "as_probability_matrix", "binarize_map",
    "binary_metrics", "bootstrap", "calibration_rows", "check_tta_mode", "choose_operating_point",
    "choose_threshold", "classification_metrics", "classification_section", "confusion_matrix",
    "confusion_rows",
    "evaluate_splits", "iou", "label_indicators", "localization_metrics", "localization_scores",
    "mask_iou", "n_views", "parse_threshold_rule", "pointing_hit", "pr_rows", "read_predictions",
    "resample_counts", "roc_rows", "to_jsonable", "tta_predict", "validate_threshold_rule",
    "write_metrics", "write_plot_data", "write_predictions",
]
