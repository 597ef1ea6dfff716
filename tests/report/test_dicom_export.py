"""Secondary Capture export: reads back with pydicom, lands in the source's study as a new series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.demo import dicom_writer as dw
from pipeline.demo import fake_phi
from pipeline.report import export_secondary_capture, render_overlay
from tests.report.conftest import HOT_YX, SHAPE_2D, gaussian, image_2d

PHI = fake_phi.PHI(patient_name="DOE^JANE^7", patient_id="MRN0071234", birth_date="19700101",
                   accession_number="ACC884213", institution_name="St. Example General Hospital",
                   study_date="20240229")


def source_dx(**extra) -> object:
    pixels = np.arange(64 * 80, dtype=np.uint16).reshape(64, 80) % 4096
    return dw.make_image_dataset(pixels, bits_stored=12, phi=PHI, uid_key="dx",
                                 extra={"PatientOrientation": ["L", "F"], **extra})


def overlay() -> np.ndarray:
    return render_overlay(image_2d(0), gaussian(SHAPE_2D, HOT_YX, 10.0), opacity=0.5)


def test_written_file_reads_back_in_the_source_study(tmp_path: Path) -> None:
    import pydicom

    src = source_dx()
    out = export_secondary_capture(src, overlay(), tmp_path / "S0001_gradcam.dcm")
    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == dw.SECONDARY_CAPTURE_STORAGE
    assert ds.StudyInstanceUID == src.StudyInstanceUID
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID
    assert ds.SOPInstanceUID not in (src.SOPInstanceUID, ds.SeriesInstanceUID)
    (ref,) = ds.SourceImageSequence
    assert ref.ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert ref.ReferencedSOPClassUID == src.SOPClassUID
    assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
    assert ds.pixel_array.shape == (*SHAPE_2D, 3)
    np.testing.assert_array_equal(ds.pixel_array, overlay())
    assert "not for diagnosis" in ds.SeriesDescription and ds.SeriesNumber == 9001
    assert ds.ImageType[0] == "DERIVED" and ds.BurnedInAnnotation == "NO"
    # Files to PACS under the right patient: identifiers are copied, by design.
    assert ds.PatientID == PHI.patient_id and str(ds.PatientName) == PHI.patient_name
    assert out.read_bytes()[:128] == b"\x00" * 128 and out.read_bytes()[128:132] == b"DICM"
    assert list(tmp_path.iterdir()) == [out]  # atomic write, no temp files left


def test_uids_are_reproducible_and_overlays_can_share_a_series(tmp_path: Path) -> None:
    import pydicom

    src = source_dx()
    a = pydicom.dcmread(export_secondary_capture(src, overlay(), tmp_path / "a.dcm"))
    b = pydicom.dcmread(export_secondary_capture(src, overlay(), tmp_path / "b.dcm"))
    assert (a.SeriesInstanceUID, a.SOPInstanceUID) == (b.SeriesInstanceUID, b.SOPInstanceUID)
    other = overlay().copy()
    other[0, 0] = 0
    c = pydicom.dcmread(export_secondary_capture(src, other, tmp_path / "c.dcm", instance_number=2))
    assert c.SeriesInstanceUID == a.SeriesInstanceUID and c.SOPInstanceUID != a.SOPInstanceUID


def test_orientation_from_a_ct_slice_geometry(tmp_path: Path) -> None:
    import pydicom

    ct = dw.make_ct_slice_dataset(
        np.zeros((8, 8), np.int16), position=(0.0, 0.0, 0.0), orientation=(1, 0, 0, 0, 1, 0),
        pixel_spacing=(1.0, 1.0), slice_thickness=1.0, instance_number=1, series_uid="1.2.3.4",
        study_uid="1.2.3", frame_of_reference_uid="1.2.3.5", phi=PHI)
    ds = pydicom.dcmread(export_secondary_capture(ct, np.zeros((8, 8, 3), np.uint8), tmp_path / "ct.dcm"))
    assert list(ds.PatientOrientation) == ["L", "P"] and ds.StudyInstanceUID == "1.2.3"


@pytest.mark.parametrize("name", ["MRN0071234.dcm", "doe_overlay.dcm", "ACC884213-x.dcm", "19700101.dcm"])
def test_file_names_with_patient_identifiers_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pseudonym or UID") as info:
        export_secondary_capture(source_dx(), overlay(), tmp_path / name)
    message = str(info.value)
    assert not any(v in message for v in ("MRN0071234", "DOE", "ACC884213", "19700101"))
    assert not list(tmp_path.iterdir())


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        export_secondary_capture(source_dx(), np.zeros((4, 4), np.uint8), tmp_path / "x.dcm")
    src = source_dx()
    del src.PatientOrientation
    with pytest.raises(ValueError, match="pass patient_orientation"):
        export_secondary_capture(src, overlay(), tmp_path / "x.dcm")
    out = export_secondary_capture(src, overlay(), tmp_path / "x.dcm", patient_orientation=("L", "F"))
    assert out.exists()
    del src.StudyInstanceUID
    with pytest.raises(ValueError, match="StudyInstanceUID"):
        export_secondary_capture(src, overlay(), tmp_path / "y.dcm", patient_orientation=("L", "F"))
