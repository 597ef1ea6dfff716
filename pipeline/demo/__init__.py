"""Deterministic synthetic demo datasets in the user-facing folder contract.

A dataset folder holds ``labels.csv`` (UTF-8, header ``path,label,mask``; paths relative,
POSIX) and the files it names. The demos deliberately contain the pitfalls of real archives
(see :mod:`pipeline.demo.cxr` and :mod:`pipeline.demo.ct`) and fake PHI inside the DICOM
headers, never in file names or in labels.csv. Output is byte-for-byte reproducible for a seed.

Modules: :mod:`~pipeline.demo.cxr` and :mod:`~pipeline.demo.ct` (the two demos), with the CXR
files' encodings in :mod:`~pipeline.demo.cxr_encoding` and the CT volumes' plan and files in
:mod:`~pipeline.demo.ct_plan` and :mod:`~pipeline.demo.ct_files`; their phantoms
:mod:`~pipeline.demo.xray_phantom` and :mod:`~pipeline.demo.ct_phantom` (shared shapes in
:mod:`~pipeline.demo.shapes`), and the DICOM side: :mod:`~pipeline.demo.dicom_writer` (build
datasets) with :mod:`~pipeline.demo.dicom_elements` (their elements),
:mod:`~pipeline.demo.dicom_files` (encode and write files) and :mod:`~pipeline.demo.fake_phi`
(fake identifiers).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Demo kinds and the modules that generate them.
DEMO_KINDS: tuple[str, ...] = ("ct", "cxr")


def generate_demo(kind: str, out_dir: str | os.PathLike[str], *, seed: int = 0,
                  n_patients: int | None = None) -> Path:
    """Generate a demo dataset.

    Args:
        kind: ``"cxr"`` (2D chest radiographs, normal/opacity) or ``"ct"`` (3D chest CT,
            normal/nodule).
        out_dir: Destination folder; created if needed. Existing files of the same names are
            replaced; nothing else is removed.
        seed: Seed of every random choice; same seed, same bytes.
        n_patients: Number of fake patients (default: 150 for cxr, 120 for ct).

    Returns:
        ``out_dir / "labels.csv"``.

    Raises:
        ValueError: Unknown ``kind`` or ``n_patients < 1``.
    """
    if kind not in DEMO_KINDS:
        raise ValueError(f"kind must be one of {list(DEMO_KINDS)}. Received: {kind!r}")
    if kind == "cxr":
        from pipeline.demo.cxr import generate
    else:
        from pipeline.demo.ct import generate
    return generate(Path(out_dir), seed=int(seed), n_patients=n_patients)


def patients(seed: int, kind_tag: int, n_patients: int | None, default: int,
             draw_anatomy: Callable[[np.random.Generator], Any]) -> tuple[list[Any], list[Any]]:
    """Per-patient anatomy and fake PHI, each from its own seed sequence ``[seed, kind, 1|2, p]``.

    Raises:
        ValueError: ``n_patients < 1``.
    """
    from pipeline.demo.fake_phi import fake_phi

    n = default if n_patients is None else int(n_patients)
    if n < 1:
        raise ValueError(f"n_patients must be >= 1. Received: n_patients={n}")
    anatomy = [draw_anatomy(np.random.default_rng([seed, kind_tag, 1, p])) for p in range(n)]
    phis = [fake_phi(np.random.default_rng([seed, kind_tag, 2, p]), p) for p in range(n)]
    return anatomy, phis


def write_labels(out_dir: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    """Write ``out_dir/labels.csv`` (UTF-8, ``\\n`` line ends) atomically; return its path."""
    from pipeline.utils.atomic import write_text

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path = Path(out_dir) / "labels.csv"
    write_text(path, buf.getvalue())
    return path


def write_png(path: Path, image: np.ndarray) -> None:
    """Write a 2D array (values 0..255) as an 8-bit grayscale PNG, atomically."""
    from PIL import Image

    from pipeline.utils.atomic import atomic_path

    data = np.clip(np.rint(np.asarray(image)), 0, 255).astype(np.uint8)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(data).save(tmp, format="PNG")
