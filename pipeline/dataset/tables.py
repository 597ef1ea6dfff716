"""Manifest and quarantine tables: one row per usable sample / per rejected input.

Both are CSV with a fixed leading column order so other tools can rely on them:
``manifest.csv`` starts with ``sample_id, split, label, source_path`` and ``quarantine.csv`` with
``source_path, reason``. List-valued metadata is JSON-encoded in its cell.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from pipeline.utils.atomic import write_text

MANIFEST_LEADING = ("sample_id", "split", "label", "source_path", "patient", "label_index",
                    "index", "has_mask", "row")
QUARANTINE_COLUMNS = ("source_path", "reason", "code", "row", "scope")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def write_table(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]],
                leading: Iterable[str]) -> None:
    """Write ``rows`` as CSV atomically: ``leading`` columns first, then the rest sorted."""
    leading = list(leading)
    extra = sorted({k for r in rows for k in r} - set(leading))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    columns = leading + extra
    writer.writerow(columns)
    for r in rows:
        writer.writerow([_cell(r.get(k)) for k in columns])
    write_text(path, buf.getvalue())


def read_table(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Read a manifest/quarantine CSV as a list of string dicts."""
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))
