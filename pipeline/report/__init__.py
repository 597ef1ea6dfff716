"""Clinician-facing reports: a static, self-contained HTML site per task, and DICOM export.

Public API:
    * :class:`CaseRecord`: one case's image, heatmap, mask and model decision (arrays in).
    * :func:`build_report`: ``index.html`` + ``cases/<sample_id>.html`` (files out), offline,
      strict Content-Security-Policy, every string escaped.
    * :func:`render_overlay`: the heatmap blended over an image, as RGB (what the page shows).
    * :func:`export_secondary_capture`: an overlay as a DICOM Secondary Capture in a new series
      of the source study (for PACS; carries the patient's identifiers by design).
"""

from __future__ import annotations

from pipeline.report.case import NONE_PRESENT, PHI_KEYWORDS, CaseRecord
from pipeline.report.dicom_export import export_secondary_capture
from pipeline.report.imaging import render_overlay
from pipeline.report.site import build_report

__all__ = ["NONE_PRESENT", "PHI_KEYWORDS", "CaseRecord", "build_report", "export_secondary_capture",
           "render_overlay"]
