"""``predict`` orchestration: inputs -> decoding pool -> model in chunks -> journal -> outputs.

Studies are processed in fixed chunks of the discovery order (chunk ``k`` holds positions
``k * chunk`` to ``(k + 1) * chunk - 1``). The workers decode ahead while this process runs the
model on one chunk at a time (one forward batch per chunk), renders its case records, and
appends the chunk's rows to the journal (:mod:`pipeline.predict.journal`). A killed run rerun
with the same arguments skips the journal's chunks; since a chunk's batch is the same in either
run, the final files are byte-identical to an uninterrupted run's. The outputs are written at
the end, the whole folder at once (:func:`pipeline.utils.atomic.atomic_dir`), which also removes
the journal.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.predict.inputs import Candidate, discover
from pipeline.predict.journal import Journal
from pipeline.predict.outputs import REJECTED, write_outputs
from pipeline.predict.predictor import Predictor, load_predictor

log = logging.getLogger(__name__)

#: Work folder inside the output folder: the journal and the finished case records.
WORK_DIR = ".predict"
#: Studies per chunk (journal entry and forward batch): small 2D grids, large 3D volumes.
DEFAULT_CHUNK = {"2d": 32, "3d": 4}


@dataclass(frozen=True)
class Prediction:
    """One study's result: pseudonymous id, decided label, the probability the decision compared
    with the threshold, and every label's probability."""

    sample_id: str
    predicted_label: str
    probability: float
    probabilities: dict[str, float]


def run_predict(model_dir: Path, inputs: Sequence[Path], out_dir: Path, *, threshold: float | None = None,
                metrics_path: Path | None = None, method: str | None = None, layer: str | None = None,
                show_free_text: bool = False, tta: str | None = None, pages: bool = True,
                workers: int | None = 1, progress: bool = False, restart: bool = False,
                chunk: int | None = None) -> list[Prediction]:
    """Predict (and explain) ``inputs`` with the model in ``model_dir``; write the results to ``out_dir``.

    Args:
        model_dir: ``models/<task>`` (model + card), or an export folder (``exports/serving/<task>``,
            :mod:`pipeline.export`): probabilities then come from its SavedModel's serving signature
            (fed the uint8 grid), and the pages have no heatmaps (explanations need the Keras model;
            the report's notes and the log say so). Without a matching metrics file the threshold
            and TTA mode recorded in the export's manifest are used.
        inputs: Files, folders (searched recursively) and CSVs of paths
            (:mod:`pipeline.predict.inputs`).
        out_dir: Output folder, replaced at the end: ``predictions.csv`` (input order),
            ``rejected.csv`` (every unusable input, by position ``#n``, with its reason) and, with
            ``pages``, the report (``index.html`` + ``cases/``). While running it holds the journal.
        threshold: Operating threshold for binary models; default: the one the evaluate stage
            chose on validation (``metrics_path``), else 0.5 (the report then says so).
        metrics_path: ``metrics/<task>.json`` holding that threshold (default: that path
            relative to the working directory, for the card's task).
        method: Explanation method shown (see :data:`pipeline.config.EXPLAIN_METHODS`); default:
            the method the explain stage reported for this model, else ``gradcam``.
        layer: Grad-CAM target layer (a layer name, ``auto`` or ``auto:N``); default: the layer
            the explain stage used for this model, else ``auto``. For a k-fold ensemble this is
            a layer of its members; the heatmap is the mean of the members' maps.
        show_free_text: Also show free-text header fields (SeriesDescription) on the pages.
        tta: Test-time augmentation (:data:`pipeline.evaluate.tta.TTA_MODES`); default: the mode
            the evaluate stage used, since its threshold was chosen on those averaged
            probabilities; else ``none``. Heatmaps are of the original image.
        pages: Write the case report (heatmaps and pages); off: the CSVs only, much faster.
        workers: Decoding processes (1: decode in this process; None: one per core).
        progress: Show a progress bar on stderr.
        restart: Discard an unfinished run's journal made with other settings or inputs
            (default: refuse, :class:`~pipeline.predict.journal.JournalMismatch`).
        chunk: Studies per journal entry and forward batch (default :data:`DEFAULT_CHUNK`).

    Returns:
        The predictions, in input order.

    Raises:
        ValueError: No readable input, a bad threshold or ``tta`` mode, or an unfinished run
            with other settings in ``out_dir`` (JournalMismatch).
    """
    predictor = load_predictor(model_dir, threshold=threshold, metrics_path=metrics_path, method=method,
                               layer=layer, tta=tta, explain=pages)
    studies = discover(inputs, kind=predictor.kind)
    chunk = int(chunk or DEFAULT_CHUNK[predictor.kind])
    workers = predictor.ingest.n_workers if workers is None else int(workers)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1. Received: {chunk}")
    out_dir, work = Path(out_dir), Path(out_dir) / WORK_DIR
    header = _header(predictor, studies, pages=pages, show_free_text=show_free_text, chunk=chunk)
    with Journal.open(work / "journal.jsonl", header, restart=restart) as journal:
        _run_chunks(predictor, studies, journal, work, chunk=chunk, workers=workers, progress=progress,
                    pages=pages, show_free_text=show_free_text)
        finished = journal.rows
    rows = [finished[c.position] for c in studies]
    results = write_outputs(out_dir, predictor, rows, pages=pages, cases_dir=work / "cases")
    if not results:
        raise ValueError(f"none of the {len(studies)} input(s) could be read; see {out_dir / REJECTED}")
    return results


def _run_chunks(predictor: Predictor, studies: list[Candidate], journal: Journal, work: Path, *, chunk: int,
                workers: int, progress: bool, pages: bool, show_free_text: bool) -> None:
    """Predict every chunk the journal does not have yet, appending each when it is done."""
    from tqdm import tqdm

    from pipeline.ingest.pool import map_ordered
    from pipeline.predict.worker import StudyJob, crashed, prepare

    todo = [c for c in studies if c.position // chunk not in journal.chunks]
    done = len(studies) - len(todo)
    log.info("predict: %d input(s) found, %d already done (resumed from the journal), %d to do, "
             "%d worker(s)", len(studies), done, len(todo), workers)
    jobs = [StudyJob(c.position, c.path, predictor.kind, predictor.ingest, keep_source=pages)
            for c in todo if c.rejection is None]
    decoded = map_ordered(prepare, jobs, workers=workers, chunk=8 if predictor.kind == "2d" else 1,
                          on_crash=crashed)
    seen = {r["sample_id"]: p for p, r in journal.rows.items() if "predicted_label" in r}
    bar = tqdm(total=len(studies), initial=done, desc="predict", unit="study", disable=not progress)
    try:
        for k, group in itertools.groupby(todo, key=lambda c: c.position // chunk):
            items = [(c, None if c.rejection else next(decoded)) for c in group]
            journal.append(k, _predict_chunk(predictor, items, seen, work / "cases", pages=pages,
                                             show_free_text=show_free_text, chunk=chunk))
            bar.update(len(items))
            _test_pause()
    finally:
        bar.close()


def _predict_chunk(predictor: Predictor, items: list[tuple[Candidate, Any]], seen: dict[str, int],
                   cases_dir: Path, *, pages: bool, show_free_text: bool,
                   chunk: int) -> list[dict[str, Any]]:
    """Journal rows of one chunk: rejections, and the predictions of one forward batch."""
    rows: list[dict[str, Any]] = []
    usable = []
    for candidate, prepared in items:
        reason = candidate.rejection or (prepared.sample.rejection if prepared is not None else None)
        sid = prepared.sample_id if prepared is not None else ""
        if reason is None and sid in seen:
            reason = (f"the same bytes as input #{seen[sid] + 1}", "duplicate")
        if reason is not None:
            log.warning("predict: input #%d rejected: %s", candidate.position + 1, reason[0])
            rows.append({"position": candidate.position, "sample_id": sid, "reason": reason[0],
                         "code": reason[1]})
            continue
        seen[sid] = candidate.position
        usable.append(prepared)
    for prepared, probs in zip(usable, _probabilities(predictor, usable, chunk), strict=True):
        predicted, probability = predictor.point.decide(probs, predictor.labels)
        log.debug("predict %s: %s (p=%.3f)", prepared.sample_id, predicted, probability)
        if pages:
            from pipeline.predict.case_store import save_case
            from pipeline.predict.pages import case_record

            save_case(cases_dir, case_record(predictor, prepared, predicted, probability, probs,
                                             show_free_text=show_free_text))
        rows.append({"position": prepared.position, "sample_id": prepared.sample_id,
                     "predicted_label": predicted, "probability": float(probability),
                     "probabilities": dict(zip(predictor.labels, map(float, probs), strict=True))})
    return sorted(rows, key=lambda r: r["position"])


def _probabilities(predictor: Predictor, usable: list[Any], chunk: int) -> Iterator[np.ndarray]:
    """Every label's probability for each study, from one forward batch (with the TTA views)."""
    from pipeline.evaluate.inference import fixed_batch
    from pipeline.evaluate.tta import tta_predict

    if not usable:
        return iter(())
    grid = np.stack([p.sample.image for p in usable])  # uint8, as images.npy stores it
    x = grid if predictor.served else grid.astype(np.float32) / np.float32(255.0)
    # one forward batch per chunk, padded to the chunk size: a study's probability does not
    # depend on how many others in its chunk were usable (pipeline.evaluate.inference)
    out = tta_predict(fixed_batch(predictor.predict_batch, chunk), x, mode=predictor.tta)
    if predictor.problem == "binary":
        out = np.stack([1.0 - out[:, 0], out[:, 0]], axis=1)
    return iter(out)


def _header(predictor: Predictor, studies: list[Candidate], *, pages: bool, show_free_text: bool,
            chunk: int) -> dict[str, Any]:
    """What the results depend on (the journal refuses to mix runs that differ in any of it)."""
    import hashlib

    inputs = hashlib.sha256()
    for c in studies:  # paths are hashed, never stored (they may hold identifiers)
        stat = c.path.stat() if c.path.is_file() else None
        inputs.update(f"{c.path.resolve()}|{stat.st_size if stat else -1}|"
                      f"{stat.st_mtime_ns if stat else -1}\n".encode())
    point = predictor.point
    return {"model": predictor.model_hash, "inputs": inputs.hexdigest(), "n_inputs": len(studies),
            "settings": {"rule": point.rule, "thresholds": [float(t) for t in point.thresholds],
                         "tta": predictor.tta, "method": predictor.method, "layer": predictor.layer,
                         "map_views": predictor.map_views, "pages": pages, "show_free_text": show_free_text,
                         "chunk": chunk}}


def _test_pause() -> None:
    """Test hook: wait after each chunk, so a test can kill the run in the middle."""
    pause = os.environ.get("MEDVISION_TEST_PREDICT_PAUSE")
    if pause:
        time.sleep(float(pause))
