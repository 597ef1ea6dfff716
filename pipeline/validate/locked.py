"""What the development run locked: the operating point, TTA mode, explanation method and layer
(``metrics/<task>.json``) and the ingest preprocessing (the model card). External validation
reads these and re-fits none of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import IngestParams, TaskParams
from pipeline.evaluate.decision import OperatingPoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockedModel:
    """The development run's decisions for one model.

    Attributes:
        operating_point: The threshold(s) chosen on the internal val split.
        tta: Test-time augmentation mode of the evaluate stage (the threshold was chosen on it).
        method: Explanation method the explain stage reported first, or None (no explain run).
        layer: Its target layer name, or None.
        map_tta: TTA of the explanation maps (the explain stage's).
        ingest: The training data's ingest settings (card), with the task's bookkeeping keys.
        internal: The internal ``test`` section of ``metrics/<task>.json``.
        card: The model card.
    """

    operating_point: OperatingPoint
    tta: str
    method: str | None
    layer: str | None
    map_tta: str
    ingest: IngestParams
    internal: dict[str, Any]
    card: dict[str, Any]

    def to_json(self, label_names: tuple[str, ...]) -> dict[str, Any]:
        """The ``locked`` section of an external metrics file."""
        return {"threshold": self.operating_point.to_json(label_names), "tta": self.tta,
                "explain": {"method": self.method, "layer": self.layer, "tta": self.map_tta},
                "model": {"backbone": self.card.get("backbone"),
                          "training_data_sha256": self.card.get("training_data_sha256")},
                "refitted": "nothing"}


def load_locked(task: TaskParams, *, card: dict[str, Any], metrics_path: Path) -> LockedModel:
    """Read the locked decisions of ``task``'s model.

    Args:
        task: Validated task params (its ingest bookkeeping: quarantine limit, workers, redaction).
        card: The model card (``models/<task>/model_card.json``).
        metrics_path: ``metrics/<task>.json`` written by evaluate for this model.

    Raises:
        ValueError: No metrics file for this model (evaluate must run first), or no recorded
            threshold where the task needs one.
    """
    from pipeline.train.card import card_ingest_params, matching_metrics

    metrics = matching_metrics(metrics_path, card)
    if metrics is None:
        raise ValueError(f"validate@{task.name} needs {metrics_path} written by evaluate for this "
                         "model (the locked threshold); run the evaluate stage first")
    point = OperatingPoint.from_json(task.problem, task.labels, metrics.get("threshold"))
    if point.fallback:
        raise ValueError(f"{metrics_path} records no threshold for some outputs; rerun evaluate")
    explain = metrics.get("explain") or {}
    methods = explain.get("methods") or []
    return LockedModel(
        operating_point=point,
        tta=str((metrics.get("tta") or {}).get("mode") or "none"),
        method=str(methods[0]) if methods else None,
        layer=str(explain["layer"]) if explain.get("layer") else None,
        map_tta=str(explain.get("tta") or "none"),
        ingest=card_ingest_params(card, base=task.ingest),
        internal=dict(metrics.get("test") or {}),
        card=card,
    )
