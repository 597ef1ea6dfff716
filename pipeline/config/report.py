"""``tasks.<t>.report``: report knobs (:class:`ReportParams`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pipeline.config.common import Frozen


class ReportParams(Frozen):
    """Report knobs."""

    #: Calls in this band around the threshold are flagged "low confidence": its half-width at a
    #: threshold of 0.5 (0.1: 0.4-0.6), as wide on the log-odds scale at other thresholds (0.1 at
    #: a threshold of 0.096: 0.066-0.137). Without a threshold: the largest flagged gap between
    #: the two most likely labels.
    uncertain_band: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.1
    #: Cases shown per review group on the index (false positives, false negatives, ...).
    highlight_limit: Annotated[int, Field(ge=1)] = 8
    #: Show free-text header fields (SeriesDescription) on case pages. Off by default: free text
    #: is where identifiers hide (PS3.15 removes it unless cleaned), and the pages leave the
    #: hospital network more easily than the DICOM files do.
    show_free_text: bool = False
