"""The end of a predict run: the journal's rows (and stored case records) -> the output folder.

``predictions.csv`` lists the predicted studies in input order, ``rejected.csv`` every other
input (``#n``: its position in the input order, with the reason, a code and, where its bytes
could be read, its pseudonymous id); with pages, the report (``index.html`` + ``cases/``). The
folder is written whole in a temporary sibling and moved into place, so it is never half
written and the journal of the finished run goes with the old folder.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.csv"
REJECTED = "rejected.csv"


def write_outputs(out_dir: Path, predictor: Any, rows: Sequence[Mapping[str, Any]], *, pages: bool,
                  cases_dir: Path) -> list[Any]:
    """Write the output folder from ``rows`` (journal rows in input order); returns the
    :class:`~pipeline.predict.run.Prediction` list."""
    from pipeline.dataset.tables import write_table
    from pipeline.predict.run import Prediction
    from pipeline.utils.atomic import atomic_dir

    predicted = [r for r in rows if "predicted_label" in r]
    results = [Prediction(r["sample_id"], r["predicted_label"], float(r["probability"]),
                          {k: float(v) for k, v in r["probabilities"].items()}) for r in predicted]
    with atomic_dir(out_dir) as tmp:
        if pages:
            _build_pages(tmp, predictor, [cases_dir / f"{r.sample_id}.npz" for r in results])
        write_table(tmp / PREDICTIONS, [
            {"sample_id": r.sample_id, "predicted_label": r.predicted_label,
             "probability": round(r.probability, 6),
             **{f"p_{k}": round(v, 6) for k, v in r.probabilities.items()}} for r in results],
            ("sample_id", "predicted_label", "probability"))
        write_table(tmp / REJECTED, [
            {"input": f"#{r['position'] + 1}", "reason": r["reason"], "code": r["code"],
             "sample_id": r["sample_id"]} for r in rows if "reason" in r],
            ("input", "reason", "code", "sample_id"))
    log.info("predict: %d of %d input(s) predicted, %d rejected", len(results), len(rows),
             len(rows) - len(results))
    return results


def _build_pages(folder: Path, predictor: Any, records: list[Path]) -> None:
    """The case report from the stored case records, in input order."""
    from pipeline.predict.case_store import load_case
    from pipeline.report import build_report

    task = predictor.card.get("task", "model")
    build_report(folder, task_name=f"{task} (new studies)", kind=predictor.kind, labels=predictor.labels,
                 cases=(load_case(p) for p in records), card=predictor.card, metrics=None,
                 notes=predictor.notes)
