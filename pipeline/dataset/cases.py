"""Ingested samples selected for a stage, and their model inputs.

Stages after ingest (explain, evaluate, report) pick cases from ``manifest.csv`` by split and
read their rows of ``images.npy`` as the model sees them (float32 in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.dataset.layout import InterimLayout
from pipeline.dataset.tables import read_table


@dataclass(frozen=True)
class Cases:
    """Ingested samples selected for a stage, in manifest order.

    Attributes:
        rows: Their manifest rows (``sample_id``, ``split``, ``patient``, ``label``, ``index``...).
        indices: Row of each sample in ``images.npy`` / ``masks.npy``.
    """

    rows: tuple[dict[str, str], ...]
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[str]:
        return [r[name] for r in self.rows]


def select_cases(data_dir: Path, splits: Sequence[str], *, limit: int | None = None) -> Cases:
    """Manifest rows of ``splits`` (manifest order), at most ``limit`` of them."""
    rows = [r for r in read_table(InterimLayout(data_dir).manifest) if r["split"] in splits]
    if limit is not None:
        rows = rows[:limit]
    return Cases(tuple(rows), np.array([int(r["index"]) for r in rows], dtype=np.int64))


def load_inputs(images: Any, indices: np.ndarray) -> np.ndarray:
    """Model inputs for ``indices``: stored uint8 -> float32 in [0, 1] (the model's contract)."""
    out = np.empty((len(indices), *images.shape[1:]), dtype=np.float32)
    for i, row in enumerate(indices):
        out[i] = images[int(row)]
    out /= np.float32(255.0)
    return out
