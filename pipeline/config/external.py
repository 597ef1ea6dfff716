"""``tasks.<t>.external``: external validation cohorts (:data:`ExternalCohorts`), each a
:class:`~pipeline.config.data.DataParams` source validated like ``tasks.<t>.data``.

    external:
      site_b: {source: demo:cxr, demo_seed: 1, demo_patients: 28}   # a generated "second site"
      site_c: /data/hospital_c                                      # a dataset folder (shorthand)

A bare string is short for ``{source: <string>}``. Cohort names become file and folder names
(``metrics/<task>/external/<name>.json``), so they follow the task-name rule.
"""

from __future__ import annotations

import re
from typing import Any

from pipeline.config.data import DataParams

#: Cohort names: lower-case snake case (file names, DVC metrics paths).
COHORT_NAME = re.compile(r"[a-z][a-z0-9_]*")
ExternalCohorts = dict[str, DataParams]


def normalize_cohorts(value: Any) -> Any:
    """``external`` before field validation: None is empty, a bare string is ``{source: ...}``;
    names must match :data:`COHORT_NAME`.

    Raises:
        ValueError: Not a mapping, or a bad cohort name (the message names it).
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping of cohort name to a dataset source. Received: {value!r}")
    for name in value:
        if not isinstance(name, str) or not COHORT_NAME.fullmatch(name):
            raise ValueError(f"cohort names must match [a-z][a-z0-9_]* (they become file names). "
                             f"Received: {name!r}")
    return {name: {"source": spec} if isinstance(spec, str) else spec for name, spec in value.items()}
