"""``tasks.<t>.report``: report knobs (:class:`ReportParams`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pipeline.config.common import Frozen


class ReportParams(Frozen):
    """Report knobs."""

    #: Probabilities within this distance of the threshold are flagged "low confidence".
    uncertain_band: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.1
    #: Cases shown per review group on the index (false positives, false negatives, ...).
    highlight_limit: Annotated[int, Field(ge=1)] = 8
    #: Show free-text header fields (SeriesDescription) on case pages. Off by default: free text
    #: is where identifiers hide (PS3.15 removes it unless cleaned), and the pages leave the
    #: hospital network more easily than the DICOM files do.
    show_free_text: bool = False
