"""Fake patient and study identifiers (PHI) for the demo DICOM files.

Obviously fake but realistic-looking names, IDs, dates, accession numbers and institutions,
drawn from an explicit ``np.random.Generator`` (same seed, same identifiers). A :class:`PHI` is
what :mod:`pipeline.demo.dicom_writer` writes into a dataset's patient and study elements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PHI:
    """Patient and study identifiers written into a dataset (all fake in this project).

    Attributes:
        patient_name: DICOM PN, e.g. ``"DOE^JANE^7"``.
        patient_id: e.g. ``"MRN0071234"``; identical for every object of one patient.
        birth_date: DICOM DA ``YYYYMMDD``.
        accession_number: Identifies the study order, e.g. ``"ACC884213"``.
        institution_name: Free text, e.g. ``"St. Example General Hospital"``.
        referring_physician: DICOM PN (may be empty).
        sex: ``"F"``, ``"M"``, ``"O"`` or empty.
        study_date: DICOM DA ``YYYYMMDD`` (may be empty); also used for series/content dates.
    """

    patient_name: str
    patient_id: str
    birth_date: str
    accession_number: str
    institution_name: str
    referring_physician: str = ""
    sex: str = ""
    study_date: str = ""


_LAST_NAMES = ("DOE", "ROE", "POE", "SAMPLE", "TESTER", "EXAMPLE", "DUMMY", "PHANTOM", "FAKE")
_FIRST_NAMES = ("JANE", "JOHN", "ALEX", "MARIA", "SAM", "LEE", "ROBIN", "KIM", "NOOR", "ELI")
_INSTITUTIONS = (
    "St. Example General Hospital",
    "Demo County Medical Center",
    "Synthetic University Clinic",
)
_PHYSICIANS = ("WELBY^MARCUS^^DR", "KILDARE^JAMES^^DR", "QUINN^MICHAELA^^DR")


def fake_phi(rng: np.random.Generator, index: int) -> PHI:
    """Draw obviously fake but realistic-looking identifiers for patient number ``index``.

    The patient ID embeds ``index`` so IDs are unique within a dataset.

    Args:
        rng: Source of randomness.
        index: Patient number (0-based), >= 0.

    Returns:
        A :class:`PHI`; ``accession_number`` and ``study_date`` describe one study and can be
        replaced per study with :func:`dataclasses.replace`.
    """
    if index < 0:
        raise ValueError(f"index must be >= 0. Received: index={index}")
    return PHI(
        patient_name=f"{_pick(rng, _LAST_NAMES)}^{_pick(rng, _FIRST_NAMES)}^{index}",
        patient_id=f"MRN{index:03d}{int(rng.integers(0, 10_000)):04d}",
        birth_date=fake_date(rng, 1930, 2005),
        accession_number=fake_accession(rng),
        institution_name=_pick(rng, _INSTITUTIONS),
        referring_physician=_pick(rng, _PHYSICIANS),
        sex="F" if rng.random() < 0.5 else "M",
        study_date=fake_date(rng, 2015, 2024),
    )


def fake_date(rng: np.random.Generator, first_year: int, last_year: int) -> str:
    """A DICOM DA string ``YYYYMMDD`` between two years (inclusive); days 1-28 only."""
    year = int(rng.integers(first_year, last_year + 1))
    return f"{year:04d}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"


def fake_accession(rng: np.random.Generator) -> str:
    """A fake accession number, ``"ACC"`` + 6 digits."""
    return f"ACC{int(rng.integers(100_000, 1_000_000))}"


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(0, len(options)))]
