"""The dvc.yaml ``plots:``/``metrics:`` entries for the evaluate outputs render with DVC itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pipeline.evaluate
from pipeline.evaluate import OperatingPoint, evaluate_splits, write_metrics, write_plot_data
from tests.evaluate.synth import make_predictions

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _evaluate_stage_yaml() -> str:
    """The real dvc.yaml's evaluate stage, with only ``cmd``/``deps``/``outs`` replaced (this test
    renders DVC's plots and metrics from files it writes, without running the stage)."""
    import yaml

    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["evaluate"]
    do = {"cmd": "true", "metrics": stage["do"]["metrics"], "plots": stage["do"]["plots"]}
    return yaml.safe_dump({"stages": {"evaluate": {"foreach": stage["foreach"], "do": do}}}, sort_keys=False)


def _dvc(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    res = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"dvc {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def test_dvc_renders_the_evaluate_plots_and_metrics(tmp_path):
    templates = Path(pipeline.evaluate.__file__).parent / "templates"
    shutil.copytree(templates, tmp_path / "pipeline" / "evaluate" / "templates")
    (tmp_path / "params.yaml").write_text("tasks:\n  cxr: {}\n  tri: {}\n")
    (tmp_path / "dvc.yaml").write_text(_evaluate_stage_yaml())
    for task, problem in (("cxr", "binary"), ("tri", "multiclass")):
        val = make_predictions(problem, n=30, seed=1, split="val")
        test = make_predictions(problem, n=30, seed=2, split="test")
        ev = evaluate_splits(val=val, test=test, problem=problem, rule="youden", n_boot=50)
        write_metrics(tmp_path / "metrics" / f"{task}.json", ev.metrics)
        write_plot_data(tmp_path / "eval" / task / "plots", problem=problem,
                        targets=test.targets(problem), probs=test.probs,
                        label_names=test.label_names, operating_point=ev.operating_point)
    assert isinstance(ev.operating_point, OperatingPoint)
    _dvc(["init", "--no-scm", "-q"], tmp_path)

    plots = json.loads(_dvc(["plots", "show", "--json"], tmp_path))["data"]
    assert len(plots) == 8
    for path, renders in plots.items():
        (render,) = renders
        content = render["content"]
        text = json.dumps(content)
        assert "<DVC_METRIC" not in text, path  # every anchor filled
        values = content["data"]["values"]
        rows = json.loads((tmp_path / path).read_text())
        assert len(values) == len(rows) > 0, path
        if not path.endswith("confusion.json"):
            classes = {v["class"] for v in values}
            assert classes == ({"opacity"} if "/cxr/" in path else {"a", "b", "c"}), path
    roc_layer = plots["eval/tri/plots/roc.json"][0]["content"]["layer"][0]["encoding"]
    assert roc_layer["x"]["field"] == "fpr" and roc_layer["y"]["field"] == "tpr"

    (workspace,) = json.loads(_dvc(["metrics", "show", "--json"], tmp_path)).values()
    shown = workspace["data"]["metrics/tri.json"]["data"]
    assert shown == json.loads((tmp_path / "metrics" / "tri.json").read_text())
    assert shown["test"]["auroc_ci_low"] <= shown["test"]["auroc"] <= shown["test"]["auroc_ci_high"]
