"""Where the ``validate`` stage writes, per task and cohort: one object instead of file names typed
again in the stage, the report and the tests. The four roots come from the command line
(dvc.yaml says them once); the names inside them are fixed here.

    data/external/<task>/<name>/raw/          the generated demo cohort, or SOURCE.json of a folder
    data/external/<task>/<name>/interim/      ingest outputs (images.npy, manifest.csv, ...)
    eval/<task>/external/predictions/<name>.csv
    eval/<task>/external/plots/{roc,pr,calibration,confusion}/<name>.json   (DVC plots)
    metrics/<task>/external/<name>.json       (DVC metrics)
    reports/<task>-external/<name>/index.html and reports/<task>-external/index.html

A task without cohorts writes :data:`EMPTY` placeholders (``{}`` / ``[]``) in the metrics and
plot folders, which git keeps and DVC reads as "nothing".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PLOT_KINDS = ("roc", "pr", "calibration", "confusion")
#: Placeholder file of a task without cohorts (cohort names cannot start with ``_``).
EMPTY = "_none.json"


@dataclass(frozen=True)
class ValidateLayout:
    """The output roots of ``validate@<task>``.

    Attributes:
        work: ``data/external/<task>``: each cohort's raw source record and ingest outputs.
        eval: ``eval/<task>/external``: predictions and DVC plot data.
        metrics: ``metrics/<task>/external``: one DVC metrics file per cohort.
        report: ``reports/<task>-external``: the HTML pages.
    """

    work: Path
    eval: Path
    metrics: Path
    report: Path

    def raw(self, name: str) -> Path:
        return self.work / name / "raw"

    def interim(self, name: str) -> Path:
        return self.work / name / "interim"

    @property
    def predictions_dir(self) -> Path:
        return self.eval / "predictions"

    def predictions(self, name: str) -> Path:
        return self.predictions_dir / f"{name}.csv"

    def plots_dir(self, kind: str) -> Path:
        return self.eval / "plots" / kind

    def plot(self, kind: str, name: str) -> Path:
        return self.plots_dir(kind) / f"{name}.json"

    def metrics_file(self, name: str) -> Path:
        return self.metrics / f"{name}.json"

    def page(self, name: str) -> Path:
        return self.report / name

    @property
    def owned(self) -> tuple[Path, ...]:
        """What the stage writes and clears before a run: the roots, but inside ``eval`` only
        its ``predictions`` and ``plots`` (DVC keeps a tracked ``.gitignore`` there)."""
        return (self.work, self.predictions_dir, self.eval / "plots", self.metrics, self.report)
