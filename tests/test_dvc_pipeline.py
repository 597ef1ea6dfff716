"""End to end in a throwaway clone with tiny params: `dvc repro` of every stage twice (the second
run is a no-op), no PHI in any output, `dvc exp run -S` experiments compared with `dvc exp show`,
`dvc metrics diff` and `dvc plots diff`, and `dvc push`/`dvc pull` through a local remote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.dataset.tables import read_table

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _sh(args: list[str], cwd: Path, env: dict) -> str:
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout + res.stderr


def _json(args: list[str], cwd: Path, env: dict):
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> tuple[Path, dict]:
    dest = tmp_path_factory.mktemp("clone")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["tasks"]["cxr"]["data"]["demo_patients"] = 12
    params["tasks"]["ct"]["data"]["demo_patients"] = 6
    params["tasks"]["cxr"]["external"]["site_b"]["demo_patients"] = 8  # validate@cxr on a 2nd site
    # 64 px: the experiment below trains MobileNetV3-Small, ~4x cheaper than at 128 px
    params["tasks"]["cxr"]["ingest"]["image_size"] = [64, 64]
    for task in params["tasks"].values():
        task["ingest"]["max_quarantine_fraction"] = 0.3  # tiny demos: 3 broken rows weigh more
        # width 16: width 8 at 128x128 hits a oneDNN crash in TF 2.21 on this CPU (see issue notes)
        # no EMA: its per-variable updates cost a sixth of a 1-epoch train stage's tracing here;
        # EMA through the trainer has its own tests (tests/train/test_ema.py, test_trainer.py)
        task["train"].update(epochs=1, width=16, batch_size=4, ema=False)
        task["evaluate"] = {**task.get("evaluate", {}), "bootstrap": 100}
        # one method at the last layer, single views, 2 random deletions: the selection itself
        # (auto) and view averaging have their own tests (tests/stages/test_explain_evaluate.py,
        # tests/explain/test_averaged.py); here the stages' wiring is the point
        task["explain"] = {**task.get("explain", {}), "methods": ["gradcam"], "layer": "last",
                           "deletion_random": 2, "tta": "none"}
    # 42% of the demo's CT voxels, same field of view (6.67 mm voxels instead of 5 mm)
    params["tasks"]["ct"]["ingest"].update(volume_shape=[24, 48, 48], target_spacing=[20 / 3] * 3)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t.invalid"}
    _sh(["git", "init", "-q"], dest, env)
    _sh(["git", "add", "-A"], dest, env)
    _sh(["git", "commit", "-qm", "init"], dest, env)
    return dest, env


@pytest.fixture(scope="module")
def first_run(repo) -> str:
    dest, env = repo
    return _sh([sys.executable, "-m", "dvc", "repro"], dest, env)


def test_repro_runs_every_stage_for_every_task(repo, first_run):
    dest, _ = repo
    for step in ("demo", "ingest", "train", "explain", "evaluate", "report", "validate"):
        for task in ("cxr", "ct"):
            assert f"Running stage '{step}@{task}'" in first_run
    for task in ("cxr", "ct"):
        out = dest / "data" / "interim" / task
        manifest = read_table(out / "manifest.csv")
        quarantine = read_table(out / "quarantine.csv")
        rows = read_table(dest / "data" / "raw" / task / "labels.csv")
        assert len(manifest) + sum(q["scope"] == "row" for q in quarantine) == len(rows)
        assert {m["split"] for m in manifest} == {"train", "val", "test"}
        assert {m["label"] for m in manifest} == set(yaml.safe_load(
            (dest / "params.yaml").read_text())["tasks"][task]["labels"])
    assert (dest / "dvc.lock").is_file()
    for task in ("cxr", "ct"):
        card = json.loads((dest / "models" / task / "model_card.json").read_text())
        assert card["task"] == task and card["epochs_run"] == 1
        assert (dest / "models" / task / "model.keras").stat().st_size > 10_000
        assert "step" in json.loads((dest / "dvclive" / task / "metrics.json").read_text())
        metrics = json.loads((dest / "metrics" / f"{task}.json").read_text())
        assert {"auroc", "precision", "recall", "f1", "accuracy", "iou"} <= set(metrics["test"])
        for key in ("auroc", "f1", "iou"):  # values with their interval, not placeholders
            value, low, high = (metrics["test"][k] for k in (key, f"{key}_ci_low", f"{key}_ci_high"))
            assert value is not None and low is not None and high is not None, key
            assert 0.0 <= low <= high <= 1.0, key
        manifest = read_table(dest / "data" / "interim" / task / "manifest.csv")
        test_ids = {m["sample_id"] for m in manifest if m["split"] == "test"}
        predictions = read_table(dest / "eval" / task / "predictions.csv")
        assert {p["sample_id"] for p in predictions if p["split"] == "test"} == test_ids, task
        assert {p["split"] for p in predictions} == {"val", "test"}
        index = (dest / "reports" / task / "index.html").read_text(encoding="utf-8")
        pages = {f.stem for f in (dest / "reports" / task / "cases").glob("*.html")}
        assert pages == test_ids  # one page per test case, each linked from the index
        assert all(f"cases/{sid}.html" in index for sid in test_ids)
        assert f"{metrics['test']['auroc']:.3f}" in index and "Research use only" in index
    external = json.loads((dest / "metrics" / "cxr" / "external" / "site_b.json").read_text())
    internal = json.loads((dest / "metrics" / "cxr.json").read_text())
    assert external["locked"]["threshold"] == internal["threshold"]
    assert {"auroc", "recall", "specificity"} <= set(external["external"]) and "difference" in external
    assert "External validation" in (dest / "reports" / "cxr-external" / "site_b" / "index.html").read_text()
    assert json.loads((dest / "metrics" / "ct" / "external" / "_none.json").read_text()) == {}


def test_second_repro_does_nothing(repo, first_run):
    dest, env = repo
    out = _sh([sys.executable, "-m", "dvc", "repro"], dest, env)
    assert "Running stage" not in out
    status = _sh([sys.executable, "-m", "dvc", "status"], dest, env)
    assert "up to date" in status.lower()


def test_no_demo_phi_reaches_interim_outputs(repo, first_run):
    import pydicom

    dest, _ = repo
    phi: set[str] = set()
    for path in (dest / "data" / "raw").rglob("*.dcm"):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
                   "InstitutionName", "ReferringPhysicianName"):
            value = str(ds.get(kw, "") or "")
            if len(value) >= 6:
                phi.add(value)
    assert len(phi) > 10
    outputs = [p for p in (dest / "data" / "interim").rglob("*") if p.is_file()]
    outputs += [p for d in ("models", "dvclive", "explain", "eval", "metrics", "reports")
                for p in (dest / d).rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in outputs)
    outputs += [dest / "dvc.lock"]
    for path in outputs:
        data = path.read_bytes()
        for value in phi:
            assert value.encode() not in data, f"{value!r} leaked into {path.name}"


@pytest.fixture(scope="module")
def committed(repo, first_run) -> Path:
    """The repro'd clone with its lock file and metrics committed: the experiments' baseline."""
    dest, env = repo
    _sh(["git", "add", "-A"], dest, env)
    _sh(["git", "commit", "-qm", "baseline"], dest, env)
    return dest


def test_experiments_compare_runs(repo, committed):
    """The README's experiment workflow from the committed pipeline: a backbone experiment
    (the README's second example, a keras.applications backbone, up to the metrics:
    `evaluate@cxr`) and a threshold-rule experiment on top of it, which reruns evaluate only.
    MobileNetV3-Small rather than the first example's EfficientNet-B0: the same wiring (an
    ImageNet-style backbone with its own input scaling, fixed width, block names for Grad-CAM)
    at about half the cost of its three stage processes. `dvc exp show` lists both with their
    params, `dvc metrics diff` and `dvc plots diff` compare them (the ROC plot holds both
    experiments' curves) and `dvc exp apply` brings one back, outputs included."""
    dest, env = repo
    dvc = [sys.executable, "-m", "dvc"]
    first = _sh([*dvc, "exp", "run", "-n", "mnet", "-S", "tasks.cxr.train.backbone=mobilenetv3small",
                 "-S", "tasks.cxr.train.dropout=0.1", "evaluate@cxr"], dest, env)
    assert "Running stage 'train@cxr'" in first and "Running stage 'report@cxr'" not in first
    # A run starts from the workspace (the last experiment's params): only the changed key's
    # stage and what depends on it up to the target rerun; the trained model is reused.
    second = _sh([*dvc, "exp", "run", "-n", "f1", "-S", "tasks.cxr.evaluate.threshold=f1",
                  "evaluate@cxr"], dest, env)
    assert "Running stage 'evaluate@cxr'" in second and "Running stage 'train@cxr'" not in second
    shown = _json([*dvc, "exp", "show", "--json"], dest, env)
    runs = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs", []):
                data = rev.get("data", {})
                name = rev.get("name") or data.get("name")
                runs[name] = data.get("params", {}).get("params.yaml", {}).get("data", {})["tasks"]["cxr"]
                assert "metrics/cxr.json" in data.get("metrics", {}), name
    assert runs["mnet"]["train"]["backbone"] == "mobilenetv3small" and runs["mnet"]["train"]["dropout"] == 0.1
    assert runs["mnet"]["evaluate"]["threshold"] == "youden"
    assert runs["f1"]["train"]["backbone"] == "mobilenetv3small"
    assert runs["f1"]["evaluate"]["threshold"] == "f1"
    table = _sh([*dvc, "exp", "show", "--only-changed", "--csv"], dest, env)  # the table, unclipped
    header = table.splitlines()[0].split(",")
    assert "mnet" in table and "mobilenetv3small" in table and "resnet18" in table
    assert {"tasks.cxr.train.backbone", "tasks.cxr.evaluate.threshold"} <= set(header)
    assert "tasks.ct.train.backbone" not in header  # changed only
    diff = _json([*dvc, "metrics", "diff", "mnet", "f1", "--all", "--json"], dest, env)
    assert "test.auroc" in diff["metrics/cxr.json"] and "threshold.value" in diff["metrics/cxr.json"]
    plots = _json([*dvc, "plots", "diff", "mnet", "f1", "--json"], dest, env)["data"]
    (roc,) = plots["eval/cxr/plots/roc.json"]
    assert set(roc["revisions"]) == {"mnet", "f1"}
    assert {v["rev"] for v in roc["content"]["data"]["values"]} == {"mnet", "f1"}  # overlaid
    _sh([*dvc, "plots", "diff", "mnet", "f1", "-o", "plots_diff"], dest, env)
    assert "mnet" in (dest / "plots_diff" / "index.html").read_text()
    _sh([*dvc, "exp", "apply", "mnet"], dest, env)
    applied = yaml.safe_load((dest / "params.yaml").read_text())["tasks"]["cxr"]
    assert applied["train"]["backbone"] == "mobilenetv3small" and applied["evaluate"]["threshold"] == "youden"
    card = json.loads((dest / "models" / "cxr" / "model_card.json").read_text())
    assert card["backbone"] == "mobilenetv3small"  # the experiment's outputs, not only its params
    metrics = json.loads((dest / "metrics" / "cxr.json").read_text())
    assert metrics["threshold"]["rule"] == "youden"


def test_push_and_pull_through_a_local_remote(repo, committed, tmp_path):
    """Data and models round-trip through a DVC remote (a local folder standing in for S3/GCS):
    a fresh `git clone` with an empty cache gets every output back with `dvc pull`, byte for byte,
    and DVC then finds the pipeline up to date (nothing to rerun)."""
    dest, env = repo
    dvc = [sys.executable, "-m", "dvc"]
    remote = tmp_path / "remote"
    # The experiments above may have left one applied in the workspace: back to the commit.
    _sh(["git", "checkout", "--", "."], dest, env)
    _sh([*dvc, "checkout", "--force"], dest, env)
    _sh([*dvc, "remote", "add", "-f", "-d", "team", str(remote)], dest, env)
    _sh([*dvc, "push"], dest, env)
    fresh = tmp_path / "fresh"
    _sh(["git", "clone", "-q", str(dest), str(fresh)], tmp_path, env)
    outputs = ["data/raw/cxr/labels.csv", "data/interim/ct/images.npy", "data/interim/cxr/manifest.csv",
               "models/cxr/model.keras", "models/ct/model.keras", "explain/ct/faithfulness.json",
               "reports/cxr/index.html"]
    assert not any((fresh / rel).exists() for rel in outputs)  # generated: not in git
    _sh([*dvc, "remote", "add", "-d", "team", str(remote)], fresh, env)
    _sh([*dvc, "pull"], fresh, env)
    for rel in outputs:
        assert (fresh / rel).read_bytes() == (dest / rel).read_bytes(), rel
    status = _sh([*dvc, "status"], fresh, env)
    assert "Data and pipelines are up to date" in status, status


def test_cli_lists_stages():
    res = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True,
                         cwd=ROOT)
    assert res.returncode == 0
    for stage in ("demo", "ingest", "train", "explain", "evaluate", "report", "predict", "export-dicom"):
        assert stage in res.stdout


def test_cli_bad_param_names_the_key(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["tasks"]["cxr"]["ingest"]["window"] = "wide"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    res = subprocess.run([sys.executable, "-m", "pipeline", "ingest", "--task", "cxr", "--params",
                          str(tmp_path / "p.yaml"), "--raw", str(tmp_path), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2
    assert "tasks.cxr.ingest.window must be 'auto', 'percentile' or [center, width]" in res.stderr
    assert not (tmp_path / "o").exists()
