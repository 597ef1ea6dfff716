"""The export manifest (``export.json``): what a serving system needs to call the model right,
and what was checked.

Sections: ``labels``/``problem``, ``input`` (name, shape, dtype, the in-graph conversion, the
ingest preprocessing that makes the grid), ``output``, ``decision`` (the operating threshold the
evaluate stage chose on validation, or null and why), ``model_card`` (its sha256), ``files`` (every
written file with its sha256 and size), ``exports`` (each format with its verification figures),
``verification`` (which inputs, tolerances) and ``versions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.export.layout import MANIFEST, ExportLayout
from pipeline.utils.hashing import file_sha256

FORMAT = "medvision-export/1"


def file_records(root: Path) -> list[dict[str, Any]]:
    """Every file under ``root`` but the manifest: relative POSIX path, sha256, bytes (sorted)."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() != MANIFEST)
    return [{"path": p.relative_to(root).as_posix(), "sha256": file_sha256(p), "bytes": p.stat().st_size}
            for p in files]


def check_files(root: Path, manifest: Mapping[str, Any], *, under: str = "") -> None:
    """Check the files the manifest lists (those under ``under``, e.g. ``"saved_model/"``)
    against their recorded sha256, before anything loads them.

    Raises:
        ValueError: A listed file is missing or changed (names it), or none is listed.
    """
    listed = [f for f in manifest.get("files", []) if str(f.get("path", "")).startswith(under)]
    if not listed:
        raise ValueError(f"{root / MANIFEST} lists no files under {under!r}")
    for record in listed:
        path = root / record["path"]
        if not path.is_file():
            raise ValueError(f"export file missing: {path}")
        if file_sha256(path) != record["sha256"]:
            raise ValueError(f"export file changed since export (sha256 differs from the manifest): {path}")


def read_manifest(export_dir: str | Path) -> dict[str, Any]:
    """The manifest of an export folder.

    Raises:
        ValueError: Not an export of this format.
    """
    from pipeline.utils.jsonio import read_json

    manifest = read_json(ExportLayout(Path(export_dir)).manifest)
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{export_dir}: manifest format must be {FORMAT!r}. "
                         f"Received: {manifest.get('format')!r}")
    return manifest


def decision_section(point: Any, labels: list[str], metrics_path: Path | None,
                     metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """The operating point: the evaluate stage's threshold(s) from the metrics file, else null and
    why (the model card records none: it is chosen on validation after training)."""
    tta = str((metrics or {}).get("tta", {}).get("mode") or "none")
    out: dict[str, Any] = {"problem": point.problem, "tta": tta}
    if point.problem == "multiclass":
        return {**out, "threshold": None, "rule": "argmax",
                "note": "multi-class: the most probable label; no threshold applies"}
    if metrics is None or point.fallback:
        return {**out, "threshold": None, "source": str(metrics_path) if metrics is not None else None,
                "note": "no validated threshold found (metrics/<task>.json of this model missing or "
                        "incomplete; the model card records none): choose one before use. The "
                        "verification's decision agreement is measured at 0.5"}
    return {**out, "threshold": point.to_json(labels), "source": str(metrics_path),
            "note": ("chosen on the validation split by the evaluate stage"
                     + (f", on probabilities averaged over test-time augmentation views ({tta}); "
                        "the signature returns one view's" if tta != "none" else ""))}


def versions(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Versions of the libraries that wrote the export."""
    import keras
    import numpy as np
    import tensorflow as tf

    from pipeline import __version__

    return {"medvision": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, **dict(extra or {})}


def recorded_decision(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The operating point recorded at export, shaped as the metrics file's sections
    (``threshold``, ``tta.mode``) so ``predict`` reads it as it reads ``metrics/<task>.json``;
    None when no validated threshold was recorded."""
    decision = manifest.get("decision") or {}
    if decision.get("threshold") is None:
        return None
    return {"threshold": decision["threshold"], "tta": {"mode": decision.get("tta") or "none"}}
