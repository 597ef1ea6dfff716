"""Model card (a small JSON next to the model) and safe model loading.

Files in ``models/<task>/``: ``model.keras`` (Keras v3 format) and ``model_card.json``.
Models are only ever loaded with ``safe_mode=True`` (no Lambda/pickled code is executed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from pipeline.dataset.layout import IMAGES, INFO, MANIFEST
from pipeline.utils.atomic import write_json

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
CARD_FILE = "model_card.json"


def data_fingerprint(data_dir: Path, names: tuple[str, ...] = (MANIFEST, INFO, IMAGES)) -> str:
    """SHA-256 over the ingest outputs the model was trained on (streamed, bounded memory)."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0")
        with open(data_dir / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def write_card(model_dir: Path, card: dict[str, Any]) -> Path:
    """Write ``model_card.json`` atomically."""
    path = model_dir / CARD_FILE
    write_json(path, card)
    return path


def read_card(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a model card."""
    return json.loads((Path(model_dir) / CARD_FILE).read_text(encoding="utf-8"))


def matching_metrics(metrics_path: Path | None, card: dict[str, Any]) -> dict[str, Any] | None:
    """``metrics/<task>.json`` if it belongs to the model of ``card`` (same backbone), else None.

    The metrics file holds the operating threshold, TTA mode and explanation layer the evaluate
    and explain stages chose for one model; those of another backbone are not used (a warning
    says so).
    """
    if metrics_path is None or not Path(metrics_path).is_file():
        return None
    metrics = json.loads(Path(metrics_path).read_text(encoding="utf-8"))
    recorded = metrics.get("model", {}).get("backbone")
    if recorded is not None and card.get("backbone") is not None and recorded != card["backbone"]:
        log.warning("%s was written for backbone %s, this model is %s; its threshold and "
                    "explanation layer are not used", metrics_path, recorded, card["backbone"])
        return None
    return metrics


def card_ingest_params(card: dict[str, Any], base: Any = None) -> Any:
    """The ingest settings the model was trained with (``ingest_preprocessing`` of its card), as
    :class:`~pipeline.config.IngestParams`: what new images must go through to look like the
    training data. Keys the card does not record (quarantine limit, workers, path redaction)
    come from ``base`` (an IngestParams), else the defaults.
    """
    from pipeline.config import IngestParams

    pre = dict(card.get("ingest_preprocessing", {}))
    if "target_spacing_mm" in pre:  # cards written before the key had one name
        pre.setdefault("target_spacing", pre.pop("target_spacing_mm"))
    known = set(IngestParams.model_fields)
    start = base.model_dump() if base is not None else {}
    return IngestParams.model_validate({**start, **{k: v for k, v in pre.items() if k in known}})


def load_model(path: str | os.PathLike[str]) -> Any:
    """Load a ``.keras`` model (or ``models/<task>/``) in safe mode; never ``safe_mode=False``.

    Raises:
        ValueError: Not a Keras v3 ``.keras`` file.
    """
    import keras

    import pipeline.models  # noqa: F401  (registers the custom layers, if any)
    import pipeline.train.schedule  # noqa: F401

    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if path.suffix != ".keras":
        raise ValueError(f"only Keras v3 '.keras' models are loaded. Received: {path.name!r}")
    return keras.saving.load_model(path, safe_mode=True, compile=False)


def load_trained(model_dir: Path, task: Any) -> tuple[Any, dict[str, Any]]:
    """The task's trained model (safe mode) and its card, checked against the task's params.

    Raises:
        ValueError: The model was trained for another task kind or label set.
    """
    card = read_card(model_dir)
    if card.get("kind") != task.kind or tuple(card.get("labels", ())) != tuple(task.labels):
        raise ValueError(f"model in {model_dir} was trained for kind={card.get('kind')!r}, labels="
                         f"{card.get('labels')}; task {task.name!r} has kind={task.kind!r}, labels="
                         f"{list(task.labels)}. Retrain (dvc repro) after changing labels or kind.")
    return load_model(model_dir), card
