"""labels.csv: the dataset folder contract (see README, "Dataset folder contract").

Columns: ``path`` and ``label`` (required), ``patient_id``, ``split``, ``mask`` (optional). Any
other column (``view``, ``sex``, ``site``, ``age``, ...) is a subgroup attribute, copied to the
manifest as ``attr_<name>``, unless its name is on the PHI deny-list (:data:`PHI_COLUMN_PATTERNS`:
names, identifiers, dates, contact details, free-text notes), in which case it is not read and is
listed in quarantine with scope ``column``.
Bad rows never stop the stage: each becomes a :class:`Rejection` with a one-line reason, so every
row ends up in the manifest or the quarantine table.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline.errors import UserInputError

REQUIRED_COLUMNS = ("path", "label")
OPTIONAL_COLUMNS = ("patient_id", "split", "mask")
SPLITS = ("train", "val", "test")
#: Column names (lower-cased, non-alphanumerics as ``_``) that are never copied: they name or
#: identify a person, carry dates or contact details, or hold free text, where identifiers hide
#: (DICOM PS3.15 Annex E spirit). ``patient_id`` is the split key and is only ever pseudonymised.
PHI_COLUMN_PATTERNS = (
    r"name", r"date", r"time", r"(^|_)(dob|birth|birthday|born)($|_)",
    r"(patient|subject|study|series|sop|person|case|exam|visit|encounter|record|accession)_?(id|uid|no)",
    r"(^|_)(id|uid|ids|mrn|ssn|nhs|accession|identifier|number)($|_)",
    r"(^|_)(address|street|city|zip|zipcode|postcode|postal|phone|telephone|fax|email|e_mail|url|ip)($|_)",
    r"(^|_)(physician|doctor|radiologist|operator|institution|referring|reader)($|_)",
    r"(^|_)(note|notes|comment|comments|report|description|text|impression|history)($|_)",
)
#: Longest attribute value copied (longer cells are cut): attributes are categories, not text.
MAX_ATTRIBUTE_CHARS = 64


class DatasetError(UserInputError, ValueError):
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
    #: Subgroup attributes from extra columns, ``(column, value)`` in header order.
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Rejection:
    """One input that is not used, with why. ``row`` is None for files not listed in labels.csv
    (and for labels.csv columns that are not read, ``scope="column"``)."""

    source_path: str
    reason: str
    code: str
    row: int | None = None
    scope: str | None = None


def is_phi_column(name: str) -> bool:
    """Whether a labels.csv column name is on the PHI deny-list (:data:`PHI_COLUMN_PATTERNS`)."""
    key = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return any(re.search(p, key) for p in PHI_COLUMN_PATTERNS)


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
    extra = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if len(set(header)) != len(header) or "" in header:
        raise DatasetError(f"{csv_path}: column names must be unique and non-empty; found {header}")
    attributes = tuple(c for c in extra if not is_phi_column(c))
    rejected += [Rejection("labels.csv", f"column {c[:40]!r} is on the PHI deny-list (names, ids, "
                           "dates, contact details, free text); not read", "phi_column", None, "column")
                 for c in extra if c not in attributes]
    reader.fieldnames = header
    line_numbers = [n for n, _ in text_lines[1:]]
    rows: list[LabelRow] = []
    seen: set[str] = set()
    for record, line_no in zip(reader, line_numbers, strict=False):
        parsed = _parse_row(root, record, line_no, labels=labels, seen=seen, multilabel=multilabel,
                            attributes=attributes)
        (rows if isinstance(parsed, LabelRow) else rejected).append(parsed)
    rejected.sort(key=lambda r: (r.row or 0))  # stable: column entries first, then rows
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
    multilabel: bool = False, attributes: tuple[str, ...] = (),
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
    attrs = tuple((c, (value(c) or "")[:MAX_ATTRIBUTE_CHARS]) for c in attributes)
    return LabelRow(row=line_no, path=path, label=label, patient_id=value("patient_id"),
                    split=split, mask=mask, attributes=attrs)


def _inside(root: Path, rel: str) -> bool:
    pure = PurePosixPath(rel.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or os.path.isabs(rel):
        return False
    return True
