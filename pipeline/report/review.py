"""Review groups on the index page: the errors and the cases a clinician should look at first.

Each group counts all its cases but keeps only its ``limit`` highest-scoring rows (a bounded
heap), so memory does not grow with the number of cases.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.report.case import (
    FALSE_NEGATIVE,
    FALSE_POSITIVE,
    INCORRECT,
    TRUE_POSITIVE,
    UNKNOWN,
    CaseRow,
    flip_distance,
)


@dataclass
class Group:
    """One review group: which rows belong, how they rank, and what the page says about it."""

    key: str
    title: str
    description: str
    select: Callable[[CaseRow], bool]
    score: Callable[[CaseRow], float]
    hide_when_empty: bool = False
    total: int = 0
    _heap: list[tuple[float, int, CaseRow]] = field(default_factory=list)

    def offer(self, row: CaseRow, seq: int, limit: int) -> None:
        """Count ``row`` if it belongs here and keep it if it is among the top ``limit``."""
        if not self.select(row):
            return
        self.total += 1
        item = (self.score(row), -seq, row)  # ties: earlier cases first
        if len(self._heap) < limit:
            heapq.heappush(self._heap, item)
        else:
            heapq.heappushpop(self._heap, item)

    @property
    def rows(self) -> list[CaseRow]:
        """Kept rows, highest score first."""
        return [row for _, _, row in sorted(self._heap, key=lambda t: (t[0], t[1]), reverse=True)]


class Review:
    """The index's review groups, fed one row at a time."""

    def __init__(self, *, positive_label: str | None, limit: int) -> None:
        flagged = f"called {positive_label}" if positive_label else "flagged"
        self.limit = limit
        self._seq = itertools.count()
        self.any_truth = False
        self.groups = [
            Group("false-positives", "False positives",
                  f"Cases {flagged} although the reference label says otherwise, most confident first.",
                  lambda r: r.category == FALSE_POSITIVE, lambda r: r.margin),
            Group("false-negatives", "False negatives",
                  "Cases with the finding that the model missed, most confident first.",
                  lambda r: r.category == FALSE_NEGATIVE, lambda r: r.margin),
            Group("other-errors", "Other incorrect predictions",
                  "Predictions that differ from the reference label, most confident first.",
                  lambda r: r.outcome == INCORRECT and r.category not in (FALSE_POSITIVE, FALSE_NEGATIVE),
                  lambda r: r.margin, hide_when_empty=True),
            Group("confident-true-positives", "Most confident true positives",
                  "Correct detections the model was surest about. Check that the heatmap sits on the "
                  "finding and not on a shortcut such as a marker, tube, text or the image border.",
                  lambda r: r.category == TRUE_POSITIVE, lambda r: r.probability),
            Group("uncertain", "Least certain predictions",
                  "Predictions closest to the decision threshold; small image changes could flip them.",
                  lambda r: r.low_confidence, lambda r: -flip_distance(r)),
        ]

    def offer(self, row: CaseRow) -> None:
        """Route one case's row to the groups it belongs to."""
        self.any_truth = self.any_truth or row.outcome != UNKNOWN
        seq = next(self._seq)
        for group in self.groups:
            group.offer(row, seq, self.limit)

    def for_page(self) -> list[dict[str, object]]:
        """Template data: one dict per group shown (title, description, total, rows, empty text)."""
        out = []
        for g in self.groups:
            if g.hide_when_empty and g.total == 0:
                continue
            needs_truth = g.key != "uncertain"
            if needs_truth and not self.any_truth:
                empty = "No ground truth is available for these cases, so errors cannot be identified."
            else:
                empty = "None in this set."
            out.append({"key": g.key, "title": g.title, "description": g.description,
                        "total": g.total, "rows": g.rows, "empty": empty})
        return out
