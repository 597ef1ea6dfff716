"""Header reads by tag (``header_value``, ``has_element``) answer what pydicom's keyword access
answers: present, absent, empty and sequence elements, file meta included."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence

from pipeline.io.dicom import has_element, header_value, tag_of

KEYWORDS = ["Rows", "WindowCenter", "PixelSpacing", "Modality", "VOILUTSequence", "RescaleSlope",
            "PatientID", "TransferSyntaxUID"]


def _dataset() -> Dataset:
    ds = Dataset()
    ds.Rows = 28
    ds.WindowCenter = ""  # present but empty: "in" is true, the value is empty
    ds.PixelSpacing = [0.5, 0.25]
    ds.Modality = "DX"
    ds.VOILUTSequence = Sequence([Dataset()])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    return ds


@pytest.mark.parametrize("keyword", KEYWORDS)
def test_same_answers_as_keyword_access(keyword):
    ds = _dataset()
    for holder in (ds, ds.file_meta):
        assert has_element(holder, keyword) == (keyword in holder)
        assert header_value(holder, keyword) == holder.get(keyword)
        assert header_value(holder, keyword, "absent") == holder.get(keyword, "absent")


def test_unknown_keyword_is_an_error_not_a_silent_default():
    with pytest.raises(KeyError, match="NotAKeyword"):
        header_value(_dataset(), "NotAKeyword", 0)
    assert tag_of("Rows") == 0x00280010
