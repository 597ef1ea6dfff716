"""Stage processes pay TensorFlow's import (5-10 s on a 2-core CPU) only when they run a model.

The report stage and the packages it reaches (explain's outputs, the models' target-layer rules,
evaluate's metrics, config, ingest) must stay importable without TensorFlow or Keras: one eager
import deep in a package (``pipeline.models`` used to import Keras on import) put it back into
every report run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIGHT = ("pipeline.config", "pipeline.ingest", "pipeline.explain", "pipeline.explain.outputs",
         "pipeline.models", "pipeline.models.target_layer", "pipeline.evaluate", "pipeline.report.run",
         "pipeline.stages.report")
_PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in ("tensorflow", "keras") if m in sys.modules)))
"""


def test_the_report_path_imports_no_tensorflow():
    res = subprocess.run([sys.executable, "-c", _PROBE, *LIGHT], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []


def test_models_names_still_resolve_and_unknown_names_fail_clearly():
    import pytest

    import pipeline.models as models

    assert set(models.__all__) == set(models._HOMES)
    assert "resnet18" in models.BACKBONES and callable(models.build_model)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        models.nope  # noqa: B018
