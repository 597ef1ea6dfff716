"""params.yaml, parsed once into typed, frozen objects.

Every stage calls :func:`load_params` and then :meth:`Params.task`. Unknown keys and bad values
fail before any work with :class:`ParamsError`, whose message names the full key path, what is
allowed and what was received, e.g.::

    tasks.cxr.ingest.window must be 'auto', 'percentile' or [center, width]. Received: 'wide'

One module per part of params.yaml; import from here:

- :mod:`~pipeline.config.params`: the whole file (:class:`Params`, ``base``:
  :class:`BaseParams`) and :func:`load_params`.
- :mod:`~pipeline.config.task`: one task, ``tasks.<t>`` (:class:`TaskParams`).
- One module per section of a task: :mod:`~pipeline.config.data` (:class:`DataParams`, source
  prefixes, :data:`MEDMNIST_SIZES`), :mod:`~pipeline.config.ingest`,
  :mod:`~pipeline.config.train`, :mod:`~pipeline.config.evaluate`,
  :mod:`~pipeline.config.explain` (:data:`EXPLAIN_METHODS`), :mod:`~pipeline.config.report` and
  :mod:`~pipeline.config.external` (external validation cohorts, each a :class:`DataParams`).
- :mod:`~pipeline.config.common`: :class:`ParamsError` and the frozen base model.

The package sits at the bottom of ``pipeline``: it imports only its own modules, the
import-free :mod:`pipeline.rules` and :mod:`pipeline.errors`, pydantic and PyYAML
(``tests/test_dvc_deps.py`` checks this).
"""

from __future__ import annotations

from pipeline.config.common import ParamsError
from pipeline.config.data import MEDMNIST_SIZES, DataParams
from pipeline.config.evaluate import EvaluateParams
from pipeline.config.explain import EXPLAIN_AUTO_METHODS, EXPLAIN_METHODS, ExplainParams
from pipeline.config.ingest import IngestParams
from pipeline.config.params import BaseParams, Params, load_params
from pipeline.config.report import ReportParams
from pipeline.config.task import TaskParams
from pipeline.config.train import TrainParams

__all__ = [
    "EXPLAIN_AUTO_METHODS",
    "EXPLAIN_METHODS",
    "MEDMNIST_SIZES",
    "BaseParams",
    "DataParams",
    "EvaluateParams",
    "ExplainParams",
    "IngestParams",
    "Params",
    "ParamsError",
    "ReportParams",
    "TaskParams",
    "TrainParams",
    "load_params",
]
