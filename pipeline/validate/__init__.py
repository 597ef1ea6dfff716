"""External validation: a locked model and threshold applied to new labelled cohorts.

The development run (ingest, train, evaluate, explain) locks the model, its preprocessing, the
operating threshold chosen on val, the TTA mode and the explanation method and layer. Here each
cohort of ``tasks.<t>.external`` is ingested with those settings and measured; nothing is
re-fitted on it for the result (``evaluate.recalibration`` measures a refitted probability scale
apart, for comparison only).

- :mod:`pipeline.validate.locked`: what the development run locked (:class:`LockedModel`).
- :mod:`pipeline.validate.cohort`: a cohort's source -> ingested arrays (split ``external``).
- :mod:`pipeline.validate.compare`: external - internal differences, paired or unpaired bootstrap.
- :mod:`pipeline.validate.recalibration`: temperature / Platt refits on a slice of a cohort.
- :mod:`pipeline.validate.document`: the metrics file of one cohort (pure numpy).
- :mod:`pipeline.validate.plots`: DVC plot rows, external beside internal.
- :mod:`pipeline.validate.layout`: where everything is written.
- :mod:`pipeline.validate.run`: the orchestration behind :mod:`pipeline.stages.validate`.
"""

from __future__ import annotations

from pipeline.validate.compare import Scored, cohort_statistic, metric_differences, pairing
from pipeline.validate.document import external_document
from pipeline.validate.layout import ValidateLayout

__all__ = ["Scored", "ValidateLayout", "cohort_statistic", "external_document", "metric_differences",
           "pairing"]
