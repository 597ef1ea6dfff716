"""``export_model``: a trained ``models/<task>`` -> a verified export folder (``exports/serving/<task>``)."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Verification inputs when the caller gives none.
DEFAULT_SAMPLES = 8


def verification_grids(grid_shape: tuple[int, ...], *, data_dir: Path | None = None,
                       samples: int = DEFAULT_SAMPLES, seed: int = 0) -> tuple[np.ndarray, str]:
    """uint8 ``(samples, *grid_shape)`` inputs and where they come from: rows of the ingest
    outputs' ``images.npy`` spread evenly over the file (``data_dir``), else random grids.

    Raises:
        ValueError: ``samples < 1``, or ``images.npy`` of another dtype or grid shape.
    """
    from pipeline.dataset.layout import InterimLayout
    from pipeline.dataset.store import open_array

    if samples < 1:
        raise ValueError(f"samples must be >= 1. Received: {samples}")
    if data_dir is None:
        rng = np.random.default_rng(seed)
        grids = rng.integers(0, 256, size=(samples, *grid_shape), dtype=np.uint8)
        return grids, f"{samples} random uint8 grids (seed {seed}): no ingest outputs given"
    images = open_array(InterimLayout(data_dir).images)
    if images.dtype != np.uint8 or tuple(images.shape[1:]) != tuple(grid_shape):
        raise ValueError(f"{InterimLayout(data_dir).images}: expected uint8 (N, {grid_shape}) as the "
                         f"model card says. Received: {images.dtype} {images.shape}")
    rows = np.unique(np.linspace(0, len(images) - 1, min(samples, len(images))).round().astype(np.int64))
    return np.asarray(images[rows]), f"{len(rows)} rows of images.npy (ingest outputs), evenly spaced"


def export_model(model_dir: Path, out_dir: Path, *, metrics_path: Path | None = None,
                 grids: np.ndarray | None = None, grids_source: str | None = None,
                 seed: int = 0, onnx: bool = False, labelled: Any = None) -> dict[str, Any]:
    """Export the model of ``model_dir`` for serving, verify every export, write ``out_dir``.

    ``out_dir`` is built in a temporary sibling folder and replaces any previous export only when
    everything succeeded (:func:`pipeline.utils.atomic.atomic_dir`).

    Args:
        model_dir: ``models/<task>`` (``model.keras`` + ``model_card.json``).
        out_dir: e.g. ``exports/serving/<task>``: replaced if it is an earlier export, refused
            if it holds anything else (``exports/<task>`` may hold DICOM overlays with PHI).
        metrics_path: ``metrics/<task>.json`` holding the validated threshold; used only if it
            was written for this model's backbone (None or missing: the threshold is null).
        grids: uint8 verification inputs ``(N, *grid)``; default: :data:`DEFAULT_SAMPLES`
            random grids (``seed``). :func:`verification_grids` reads real ones.
        grids_source: What ``grids`` are, for the manifest.
        seed: Seed of the random grids.
        onnx: Also write ``model.onnx`` (needs the ``[onnx]`` extra).
        labelled: A :class:`pipeline.export.accuracy.LabelledSplit` (e.g. the test split,
            :func:`~pipeline.export.accuracy.labelled_split`): every export's AUROC on it and
            its change from the Keras model's go into the manifest's ``accuracy`` section.

    Returns:
        The manifest written to ``out_dir/export.json``.

    Raises:
        ExportMismatchError: A float32 export differs from the Keras model beyond its tolerance
            (nothing is written).
        UserInputError: ``onnx`` without tf2onnx/onnxruntime installed.
        ValueError: Bad grids, a model that does not match its card, or an ``out_dir`` that
            holds something other than an export.
    """
    from pipeline.evaluate.decision import OperatingPoint
    from pipeline.export.layout import MANIFEST, ExportLayout, is_export_dir
    from pipeline.export.manifest import decision_section, versions
    from pipeline.export.verification import TOLERANCES, check_tolerances, verify
    from pipeline.train.card import CARD_FILE, load_model, matching_metrics, read_card
    from pipeline.utils.atomic import atomic_dir, write_json

    if Path(out_dir).exists() and not is_export_dir(out_dir) and any(Path(out_dir).iterdir()):
        raise ValueError(f"{out_dir} holds files but no export (no {MANIFEST}): refusing to replace it. "
                         "Choose an empty or new folder, e.g. exports/serving/<task>")
    card = read_card(model_dir)
    labels = list(card["labels"])
    grid_shape = tuple(int(n) for n in card["input_shape"])
    model = load_model(model_dir)
    if tuple(model.inputs[0].shape[1:]) != grid_shape:
        raise ValueError(f"{model_dir}: the model takes {tuple(model.inputs[0].shape[1:])}, its card says "
                         f"{grid_shape}")
    metrics = matching_metrics(metrics_path, card)
    point = OperatingPoint.from_json(card["problem"], labels, (metrics or {}).get("threshold"))
    if grids is None:
        grids, grids_source = verification_grids(grid_shape, samples=DEFAULT_SAMPLES, seed=seed)
    grids = np.asarray(grids)
    if grids.dtype != np.uint8 or tuple(grids.shape[1:]) != grid_shape or len(grids) == 0:
        raise ValueError(f"verification grids must be uint8 (N, {', '.join(map(str, grid_shape))}). "
                         f"Received: {grids.dtype} {grids.shape}")
    tool_versions = _onnx_versions() if onnx else {}
    with atomic_dir(out_dir) as tmp:
        layout = ExportLayout(tmp)
        shutil.copyfile(Path(model_dir) / CARD_FILE, tmp / CARD_FILE)
        exports, runners = _write_exports(model, layout, grid_shape, onnx=onnx)
        results = verify(model, runners, grids, point=point, labels=labels)
        for name, agreement in results.items():
            exports[name]["verification"] = agreement.to_json(TOLERANCES.get(name))
            log.info("export %s: max |p - p_keras| %.3g, decision agreement %.3f", name,
                     agreement.max_abs_diff, agreement.decision_agreement)
        check_tolerances(results)
        verification = {"inputs": grids_source or f"{len(grids)} grids given by the caller",
                        "n_inputs": int(len(grids)), "tolerances": dict(TOLERANCES),
                        "compared_with": "the Keras model on float32(grid) / 255"}
        manifest = _manifest(card, model, layout, exports, verification,
                             decision_section(point, labels, metrics_path, metrics), versions(tool_versions))
        if labelled is not None:
            from pipeline.export.accuracy import accuracy_by_export

            manifest["accuracy"] = accuracy_by_export(model, runners, labelled, point=point)
        write_json(layout.manifest, manifest)
    return manifest


def _write_exports(model: Any, layout: Any, grid_shape: tuple[int, ...], *,
                   onnx: bool) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Write every export into ``layout``; return name -> manifest entry and name -> runner
    (exports that cannot run here get no runner and say why)."""
    from pipeline.export.layout import SAVED_MODEL, SIGNATURE
    from pipeline.export.serving import load_signature, write_saved_model
    from pipeline.export.tflite import TFLITE_VARIANTS, TFLiteRunner, convert_tflite, tflite_source
    from pipeline.utils.atomic import write_bytes

    write_saved_model(model, layout.saved_model, grid_shape)
    exports: dict[str, dict[str, Any]] = {
        "saved_model": {"path": SAVED_MODEL, "format": "TensorFlow SavedModel", "signature": SIGNATURE}}
    runners: dict[str, Any] = {"saved_model": load_signature(layout.saved_model)}
    with tempfile.TemporaryDirectory(prefix="medvision-export-") as scratch:
        source = tflite_source(model, grid_shape, layout.saved_model, Path(scratch))
        converted_all = {variant: convert_tflite(source, variant) for variant in TFLITE_VARIANTS}
    for variant, what in TFLITE_VARIANTS.items():
        name, path = f"tflite_{variant}", layout.tflite(variant)
        converted = converted_all[variant]
        write_bytes(path, converted.content)
        exports[name] = {"path": path.name, "format": "TFLite", "variant": what, "op_sets": converted.op_sets,
                         "select_tf_ops": list(converted.select_tf_ops)}
        if variant != "float32" and len(converted.content) >= 0.9 * len(converted_all["float32"].content):
            exports[name]["note"] = ("hardly smaller than float32: the converter found no kernel of this "
                                     "kind for the model's main ops (e.g. CONV_3D), which stay float32")
        try:
            runners[name] = TFLiteRunner(path)
        except RuntimeError as exc:  # Flex ops: the tensorflow wheel's interpreter has no delegate
            reason = f"not verified: this TFLite interpreter cannot run it ({str(exc).splitlines()[0]})"
            exports[name]["verification"] = {"status": reason}
            log.warning("export %s: %s", name, reason)
    if onnx:
        from pipeline.export.onnx_model import OPSET, convert_onnx, onnx_runner

        convert_onnx(layout.saved_model, layout.onnx)
        exports["onnx"] = {"path": layout.onnx.name, "format": "ONNX", "opset": OPSET}
        runners["onnx"] = onnx_runner(layout.onnx)
    return exports, runners


def _manifest(card: dict[str, Any], model: Any, layout: Any, exports: dict[str, Any],
              verification: dict[str, Any], decision: dict[str, Any],
              versions: dict[str, str]) -> dict[str, Any]:
    from pipeline.export.layout import INPUT_NAME, OUTPUT_NAME
    from pipeline.export.manifest import FORMAT, file_records
    from pipeline.export.serving import CONVERSION
    from pipeline.train.card import CARD_FILE
    from pipeline.utils.hashing import file_sha256

    labels, grid = list(card["labels"]), [int(n) for n in card["input_shape"]]
    n_out = int(model.outputs[0].shape[-1])
    return {
        "format": FORMAT,
        "task": card.get("task"), "kind": card["kind"], "problem": card["problem"], "labels": labels,
        "backbone": card.get("backbone"),
        "input": {"name": INPUT_NAME, "shape": [None, *grid], "dtype": "uint8",
                  "axes": "(batch, H, W, C)" if len(grid) == 3 else "(batch, D, H, W, C)",
                  "values": "the grid ingest stores in images.npy (window mapped to 0..255, white = dense)",
                  "conversion": CONVERSION, "preprocessing": card.get("ingest_preprocessing", {}),
                  "model_preprocessing": card.get("model_preprocessing")},
        "output": {"name": OUTPUT_NAME, "shape": [None, n_out], "dtype": "float32",
                   "meaning": _output_meaning(card["problem"], labels)},
        "decision": decision,
        "model_card": {"path": CARD_FILE, "sha256": file_sha256(layout.root / CARD_FILE)},
        "exports": exports,
        "verification": verification,
        "files": file_records(layout.root),
        "versions": versions,
    }


def _output_meaning(problem: str, labels: list[str]) -> str:
    if problem == "binary":
        return f"P({labels[1]!r}) (sigmoid, one column); P({labels[0]!r}) = 1 - it"
    if problem == "multiclass":
        return f"softmax over {labels} (columns in this order)"
    return f"one sigmoid per label, {labels} (columns in this order)"


def _onnx_versions() -> dict[str, str]:
    from pipeline.export.onnx_model import onnx_versions

    return onnx_versions()
