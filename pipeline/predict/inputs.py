"""What ``predict --input`` names, expanded into studies in a stable order.

An input is a file, a folder (searched recursively, entries in sorted name order) or a CSV of
paths (a ``path`` column; relative paths are resolved against the CSV's folder; a row may name a
folder). Each study found is a :class:`Candidate` whose ``position`` is its place in that order:
``predictions.csv`` lists studies in it and ``rejected.csv`` refers to inputs by it (``#1`` is
the first), never by file name, which may hold identifiers.

What one study is depends on the model:

- 2D models: every file is a study (DICOM, PNG, JPEG, TIFF; the reader tells them apart by
  content and rejects anything else with its reason). A NIfTI file is rejected (a volume).
- 3D models: a folder holding DICOM files is one series (with everything below it, as
  :func:`pipeline.io.series.read_dicom_series` reads it); a ``.nii``/``.nii.gz`` file is one
  volume. Other files in the folders searched are rejected (PNG/JPEG: a 2D image; else not a
  supported format). A file named directly on the command line goes to the reader, which says
  why it is unusable.

Decisions made here read at most a file's first 132 bytes; decoding happens in the workers.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.io.volume import NIFTI_SUFFIXES

#: ``(reason, code)`` of a study rejected before decoding; reasons never name the file.
Rejection = tuple[str, str]

NOT_FOUND: Rejection = ("input not found", "not_found")
VOLUME_FOR_2D: Rejection = ("a NIfTI volume; this model takes 2D images", "wrong_kind")
IMAGE_FOR_3D: Rejection = ("a 2D image file; this model takes 3D volumes (a DICOM series folder or "
                           "NIfTI)", "wrong_kind")
UNSUPPORTED_3D: Rejection = ("not a DICOM series slice or a NIfTI volume", "unsupported")
CSV_WITHOUT_PATH: Rejection = ("a CSV of inputs needs a 'path' column", "bad_csv")
CSV_EMPTY_PATH: Rejection = ("empty 'path' in a CSV of inputs", "bad_csv")
CSV_UNREADABLE: Rejection = ("the CSV of inputs cannot be read as UTF-8 text", "bad_csv")
NESTED_CSV: Rejection = ("a CSV of inputs named inside another one (not followed)", "bad_csv")


@dataclass(frozen=True)
class Candidate:
    """One study to predict, or an input already known to be unusable.

    Attributes:
        position: 0-based place in the discovery order (``#position+1`` in ``rejected.csv``).
        path: The file or series folder (never written out).
        rejection: Set when the input is unusable before decoding (not found, wrong kind).
    """

    position: int
    path: Path
    rejection: Rejection | None = None


def discover(inputs: Sequence[str | os.PathLike[str]], *, kind: str) -> list[Candidate]:
    """Expand ``inputs`` (files, folders, CSVs of paths) into studies for a ``kind`` model.

    Args:
        inputs: As given on the command line, in order.
        kind: ``"2d"`` or ``"3d"``: what one study is (module docstring).

    Returns:
        Every study and every unusable file, in a stable order (inputs in the order given,
        folder entries sorted by name, CSV rows in file order).

    Raises:
        ValueError: ``kind`` is not ``2d`` or ``3d``.
    """
    if kind not in ("2d", "3d"):
        raise ValueError(f"kind must be one of ['2d', '3d']. Received: {kind!r}")
    found = [item for path in inputs for item in _expand(Path(path), kind, named=True, csv_ok=True)]
    return [Candidate(i, path, rejection) for i, (path, rejection) in enumerate(found)]


def is_csv_of_paths(path: Path) -> bool:
    """A file named on the command line (or in no CSV) that lists inputs."""
    return path.suffix.lower() == ".csv" and path.is_file()


def _expand(path: Path, kind: str, *, named: bool, csv_ok: bool) -> Iterator[tuple[Path, Rejection | None]]:
    """``(path, rejection)`` of every study under ``path``; ``named``: given by the user."""
    if not path.exists():
        yield path, NOT_FOUND
    elif path.is_dir():
        if kind == "3d" and _holds_dicom(path):
            yield path, None
            return
        for child in sorted(path.iterdir(), key=lambda p: p.name):
            yield from _expand(child, kind, named=False, csv_ok=False)
    elif named and is_csv_of_paths(path):
        if csv_ok:
            yield from _from_csv(path, kind)
        else:
            yield path, NESTED_CSV
    else:
        yield path, _file_rejection(path, kind, named=named)


def _file_rejection(path: Path, kind: str, *, named: bool) -> Rejection | None:
    """Why a file is no study for a ``kind`` model, if that is clear without decoding it."""
    nifti = path.name.lower().endswith(NIFTI_SUFFIXES)
    if kind == "2d":
        return VOLUME_FOR_2D if nifti else None
    if nifti or named:
        return None
    from pipeline.io.image_file import sniff_format

    try:
        return IMAGE_FOR_3D if sniff_format(path) is not None else UNSUPPORTED_3D
    except OSError:
        return UNSUPPORTED_3D


def _from_csv(path: Path, kind: str) -> Iterator[tuple[Path, Rejection | None]]:
    """The inputs a CSV lists (its ``path`` column), relative to the CSV's folder."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            columns = [c.strip() for c in reader.fieldnames or []]
    except (UnicodeDecodeError, csv.Error):
        yield path, CSV_UNREADABLE
        return
    if "path" not in columns:
        yield path, CSV_WITHOUT_PATH
        return
    for row in rows:
        value = next((v for k, v in row.items() if k is not None and k.strip() == "path"), None)
        value = (value or "").strip()
        if not value:
            yield path, CSV_EMPTY_PATH
            continue
        target = Path(value).expanduser()
        yield from _expand(target if target.is_absolute() else path.parent / target, kind, named=True,
                           csv_ok=False)


def _holds_dicom(folder: Path) -> bool:
    """The folder directly holds at least one DICOM file (a ``DICM`` marker or ``.dcm`` name)."""
    for child in folder.iterdir():
        if child.is_file() and (child.suffix.lower() == ".dcm" or _dicom_magic(child)):
            return True
    return False


def _dicom_magic(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"
