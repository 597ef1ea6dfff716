"""labels.csv: the dataset folder contract (see README, "Dataset folder contract").

Columns: ``path`` and ``label`` (required), ``patient_id``, ``split``, ``mask`` (optional).
Bad rows never stop the stage: each becomes a :class:`Rejection` with a one-line reason, so every
row ends up in the manifest or the quarantine table.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

REQUIRED_COLUMNS = ("path", "label")
OPTIONAL_COLUMNS = ("patient_id", "split", "mask")
SPLITS = ("train", "val", "test")


class DatasetError(ValueError):
    """The dataset folder as a whole is unusable (no labels.csv, required column missing)."""


@dataclass(frozen=True)
class LabelRow:
    """One usable labels.csv row. ``row`` is the 1-based line number (header = line 1)."""

    row: int
    path: str
    label: str
    patient_id: str | None = None
    split: str | None = None
    mask: str | None = None


@dataclass(frozen=True)
class Rejection:
    """One input that is not used, with why. ``row`` is None for files not listed in labels.csv."""

    source_path: str
    reason: str
    code: str
    row: int | None = None


def read_labels(root: Path, *, labels: tuple[str, ...], multilabel: bool = False
                ) -> tuple[list[LabelRow], list[Rejection]]:
    """Parse ``root/labels.csv`` into usable rows and rejected rows.

    Lines that are not valid UTF-8 are rejected one by one (the rest of the file is still used).

    Args:
        root: Dataset folder.
        labels: Allowed class names (the task's ``labels`` param).
        multilabel: The ``label`` cell holds zero or more names separated by ``|`` (empty = none
            of the labels); they are normalised to the order of ``labels``.

    Raises:
        DatasetError: labels.csv missing or lacking a required column.
    """
    csv_path = root / "labels.csv"
    try:
        raw = csv_path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{csv_path}: labels.csv not found in the dataset folder") from None
    text_lines, rejected = _decode_lines(raw)
    reader = csv.DictReader(io.StringIO("".join(line for _, line in text_lines)))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DatasetError(f"{csv_path}: missing required column(s) {missing}; found {header}")
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise DatasetError(
            f"{csv_path}: unknown column(s) {unknown}; allowed: "
            f"{list(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
        )
    reader.fieldnames = header
    line_numbers = [n for n, _ in text_lines[1:]]
    rows: list[LabelRow] = []
    seen: set[str] = set()
    for record, line_no in zip(reader, line_numbers, strict=False):
        parsed = _parse_row(root, record, line_no, labels=labels, seen=seen, multilabel=multilabel)
        (rows if isinstance(parsed, LabelRow) else rejected).append(parsed)
    rejected.sort(key=lambda r: (r.row or 0))
    return rows, rejected


def _decode_lines(raw: bytes) -> tuple[list[tuple[int, str]], list[Rejection]]:
    """Split into lines, decode each as UTF-8 (BOM tolerated); reject undecodable lines."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    good: list[tuple[int, str]] = []
    bad: list[Rejection] = []
    for number, line in enumerate(raw.splitlines(keepends=True), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            if number == 1:
                raise DatasetError("labels.csv header line is not valid UTF-8") from None
            bad.append(Rejection("<labels.csv>", f"labels.csv line {number} is not valid UTF-8",
                                 "bad_csv", number))
            continue
        if text.strip():
            good.append((number, text if text.endswith(("\n", "\r")) else text + "\n"))
    return good, bad


def _parse_row(
    root: Path, record: dict, line_no: int, *, labels: tuple[str, ...], seen: set[str],
    multilabel: bool = False,
) -> LabelRow | Rejection:
    def value(key: str) -> str | None:
        v = record.get(key)
        v = v.strip() if isinstance(v, str) else None
        return v or None

    path = value("path")
    if path is None:
        return Rejection("<labels.csv>", f"labels.csv line {line_no}: empty path", "bad_row", line_no)
    if None in record:  # more fields than columns
        return Rejection(path, f"labels.csv line {line_no}: more fields than columns", "bad_row",
                         line_no)
    label = value("label")
    names = [n.strip() for n in (label or "").split("|") if n.strip()] if multilabel else [label]
    unknown = [n for n in names if n not in labels]
    if unknown:
        shown = (unknown[0] or "")[:40]
        return Rejection(path, f"unknown label {shown!r}; allowed: {list(labels)}", "bad_label",
                         line_no)
    if multilabel:
        label = "|".join(n for n in labels if n in names)
    split = value("split")
    if split is not None and split not in SPLITS:
        return Rejection(path, f"split must be one of {list(SPLITS)}. Received: {split[:20]!r}",
                         "bad_row", line_no)
    if not _inside(root, path):
        return Rejection(path, "path is absolute or leaves the dataset folder", "bad_path", line_no)
    if path in seen:
        return Rejection(path, "duplicate row for a path listed earlier", "duplicate", line_no)
    if not (root / path).exists():
        return Rejection(path, "file not found", "missing_file", line_no)
    mask = value("mask")
    if mask is not None and (not _inside(root, mask) or not (root / mask).is_file()):
        return Rejection(path, "mask file not found or outside the dataset folder", "bad_mask",
                         line_no)
    seen.add(path)
    return LabelRow(row=line_no, path=path, label=label, patient_id=value("patient_id"),
                    split=split, mask=mask)


def _inside(root: Path, rel: str) -> bool:
    pure = PurePosixPath(rel.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or os.path.isabs(rel):
        return False
    return True
