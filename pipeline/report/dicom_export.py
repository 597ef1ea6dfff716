"""Export a heatmap overlay as a DICOM Secondary Capture next to the original in PACS.

The exported object joins the source's study (same ``StudyInstanceUID``, patient and study
attributes copied by highdicom) as a new series, references the source image in
``SourceImageSequence`` and says in its series description that it is not for diagnosis.
Because it must file under the right patient, it carries the patient's identifiers: this
export is opt-in and its files belong in the PACS, never in a report, log or DVC output.
UIDs are derived from the inputs, so exporting the same overlay twice gives the same UIDs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.utils.atomic import atomic_path

DEFAULT_SERIES_DESCRIPTION = "medvision Grad-CAM overlay (not for diagnosis)"
DEFAULT_SERIES_NUMBER = 9001
_DERIVATION = ("Heatmap of what drove a machine-learning model's output, blended over the model's "
               "input image. It is not a map of disease. Research use only; not for diagnosis.")
_PHI_NAME_KEYWORDS = ("PatientID", "PatientBirthDate", "AccessionNumber", "OtherPatientIDs")


def export_secondary_capture(
    source: Any,
    overlay_rgb: np.ndarray,
    out_path: str | os.PathLike[str],
    *,
    series_number: int = DEFAULT_SERIES_NUMBER,
    series_description: str = DEFAULT_SERIES_DESCRIPTION,
    series_instance_uid: str | None = None,
    instance_number: int = 1,
    patient_orientation: Sequence[str] | None = None,
    manufacturer: str = "medvision",
) -> Path:
    """Write ``overlay_rgb`` as a Secondary Capture image in a new series of ``source``'s study.

    Args:
        source: The original image's ``pydicom.Dataset`` (one slice for a series); needs
            ``StudyInstanceUID``, ``SOPClassUID`` and ``SOPInstanceUID``.
        overlay_rgb: ``(H, W, 3)`` uint8 RGB, e.g. from :func:`pipeline.report.render_overlay`.
        out_path: Destination file. Its name must not contain the source's patient ID, birth
            date, accession number or name parts: name exports by pseudonym or UID.
        series_number: ``SeriesNumber`` of the new series.
        series_description: ``SeriesDescription`` of the new series (keep "not for diagnosis").
        series_instance_uid: Put several overlays in one series; default: derived from the
            study, ``series_number`` and ``series_description``.
        instance_number: ``InstanceNumber`` within the series.
        patient_orientation: ``(row direction, column direction)`` letters such as
            ``("L", "P")`` for the overlay's pixel grid; default: the source's
            ``PatientOrientation``, else derived from its ``ImageOrientationPatient``.
        manufacturer: ``Manufacturer`` of the creating software.

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: Bad overlay, source without the needed UIDs, no orientation available, or a
            file name containing the patient's identifiers (the message does not repeat them).
    """
    import highdicom as hd
    from pydicom.dataset import Dataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    overlay = np.asarray(overlay_rgb)
    if overlay.ndim != 3 or overlay.shape[-1] != 3 or overlay.dtype != np.uint8:
        raise ValueError("overlay_rgb must be a (H, W, 3) uint8 array. "
                         f"Received: shape={overlay.shape}, dtype={overlay.dtype}")
    for keyword in ("StudyInstanceUID", "SOPClassUID", "SOPInstanceUID"):
        if not str(getattr(source, keyword, "") or ""):
            raise ValueError(f"source dataset needs {keyword} to place the export in its study")
    out_path = Path(out_path)
    _check_file_name(out_path.name, source)
    orientation = _orientation(source, patient_orientation)
    if series_instance_uid is None:
        series_instance_uid = generate_uid(entropy_srcs=[
            "medvision-sc-series", str(source.StudyInstanceUID), str(series_number), series_description])
    digest = hashlib.sha256(overlay.tobytes() + repr(overlay.shape).encode()).hexdigest()
    sop_instance_uid = generate_uid(entropy_srcs=[
        "medvision-sc-instance", series_instance_uid, str(source.SOPInstanceUID), digest])

    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source, pixel_array=overlay, photometric_interpretation="RGB",
        bits_allocated=8, coordinate_system="PATIENT", series_instance_uid=series_instance_uid,
        series_number=int(series_number), sop_instance_uid=sop_instance_uid,
        instance_number=int(instance_number), manufacturer=manufacturer,
        patient_orientation=orientation, transfer_syntax_uid=ExplicitVRLittleEndian,
    )
    sc.SeriesDescription = series_description
    sc.DerivationDescription = _DERIVATION
    sc.ImageComments = _DERIVATION
    sc.BurnedInAnnotation = "NO"
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    sc.SourceImageSequence = [reference]
    sc.preamble = b"\x00" * 128  # never a DICOM/PE polyglot
    with atomic_path(out_path, suffix=".dcm") as tmp:
        sc.save_as(tmp, enforce_file_format=True)
    return out_path


def _check_file_name(name: str, source: Any) -> None:
    """Refuse a file name that contains the source's patient identifiers (without echoing them)."""
    lowered = name.lower()
    for keyword in _PHI_NAME_KEYWORDS:
        value = str(getattr(source, keyword, "") or "").strip().lower()
        if len(value) >= 3 and value in lowered:
            raise ValueError(f"out_path file name contains the source's {keyword}; "
                             "name exports by pseudonym or UID, never by patient identifiers")
    name_parts = str(getattr(source, "PatientName", "") or "").replace("^", " ").replace("=", " ")
    for part in name_parts.split():
        if len(part) >= 3 and part.lower() in lowered:
            raise ValueError("out_path file name contains part of the source's PatientName; "
                             "name exports by pseudonym or UID, never by patient identifiers")


def _orientation(source: Any, given: Sequence[str] | None) -> tuple[str, str]:
    """Patient orientation of the overlay's rows and columns."""
    if given is not None:
        if len(given) != 2:
            raise ValueError(f"patient_orientation needs 2 values. Received: {list(given)!r}")
        return str(given[0]), str(given[1])
    value = getattr(source, "PatientOrientation", None)
    if value is not None and not isinstance(value, str) and len(value) == 2 and all(value):
        return str(value[0]), str(value[1])
    iop = getattr(source, "ImageOrientationPatient", None)
    if iop is not None and len(iop) == 6:
        return _letters([float(v) for v in iop[:3]]), _letters([float(v) for v in iop[3:]])
    raise ValueError("source has neither PatientOrientation nor ImageOrientationPatient; "
                     "pass patient_orientation=(row direction, column direction), e.g. ('L', 'P')")


def _letters(direction: list[float]) -> str:
    """The DICOM orientation letter (LPS+: x to L, y to P, z to H) of a direction cosine
    vector's strongest axis (highdicom accepts one letter per direction)."""
    axis = max(range(3), key=lambda i: abs(direction[i]))
    return (("R", "L"), ("A", "P"), ("F", "H"))[axis][direction[axis] > 0]
