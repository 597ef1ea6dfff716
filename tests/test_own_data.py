"""Bring your own data (README "User guide"): a task whose `data.source` is a folder outside the
repository runs through `dvc repro`; `demo@<task>` fingerprints the folder, so `dvc repro -f
demo@<task>` reruns ingest only when the folder's files changed."""

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
from tests.builders import PHI_STRINGS, make_2d_folder, make_mixed_2d_folder

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, env: dict) -> str:
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout + res.stderr


@pytest.fixture(scope="module")
def own_data_repo(tmp_path_factory) -> tuple[Path, Path, dict]:
    tmp = tmp_path_factory.mktemp("own")
    folder = make_2d_folder(tmp / "hospital" / "chest_xray", n_patients=10)
    repo = tmp / "repo"
    repo.mkdir()
    for rel in ("dvc.yaml", ".dvc/config", ".dvcignore"):
        if (ROOT / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, repo / rel)
    shutil.copytree(ROOT / "pipeline", repo / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    # The README's example task: only the source and the image size are the user's.
    params["tasks"] = {"chest": {"kind": "2d", "labels": ["normal", "opacity"],
                                 "data": {"source": str(folder)},
                                 "ingest": {"image_size": [32, 32], "max_quarantine_fraction": 0.5}},
                       # a public-archive-style mix: DICOM, PNG (8/16-bit), RGB JPEG, TIFF
                       "mixed": {"kind": "2d", "labels": ["normal", "opacity"], "multilabel": False,
                                 "data": {"source": str(make_mixed_2d_folder(tmp / "archive", 12))},
                                 "ingest": {"image_size": [32, 32], "max_quarantine_fraction": 0.2},
                                 "train": {"backbone": "resnet18", "width": 8, "weights": None,
                                           "epochs": 2, "batch_size": 8, "folds": 1}}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(repo)}
    _run(["git", "init", "-q"], repo, env)
    _run([sys.executable, "-m", "dvc", "repro", "ingest@chest"], repo, env)
    return repo, folder, env


def test_external_folder_is_fingerprinted_and_ingested(own_data_repo):
    repo, folder, _ = own_data_repo
    record = json.loads((repo / "data" / "raw" / "chest" / "SOURCE.json").read_text())
    assert record["source"] == str(folder) and len(record["fingerprint"]) == 64
    assert not (repo / "data" / "raw" / "chest" / "labels.csv").exists()  # the data is not copied
    manifest = read_table(repo / "data" / "interim" / "chest" / "manifest.csv")
    quarantine = read_table(repo / "data" / "interim" / "chest" / "quarantine.csv")
    assert len(manifest) == 20  # 10 patients x 2 images
    assert {r["source_path"] for r in quarantine} >= {"img/bad.dcm", "img/nowhere.dcm"}
    for path in (repo / "data").rglob("*"):
        if path.is_file():
            for value in PHI_STRINGS:
                assert value.encode() not in path.read_bytes(), (value, path.name)


def test_forced_demo_reruns_ingest_only_when_the_folder_changed(own_data_repo):
    repo, folder, env = own_data_repo
    dvc = [sys.executable, "-m", "dvc"]
    _run([*dvc, "repro", "-f", "demo@chest"], repo, env)
    assert "up to date" in _run([*dvc, "status", "ingest@chest"], repo, env).lower()
    # A new study arrives in the folder: the fingerprint, and then ingest, change.
    shutil.copy2(folder / "img" / "p1_0.dcm", folder / "img" / "p1_2.dcm")
    with open(folder / "labels.csv", "a", encoding="utf-8") as fh:
        fh.write("img/p1_2.dcm,normal,\n")
    _run([*dvc, "repro", "-f", "demo@chest"], repo, env)
    assert "changed" in _run([*dvc, "status", "ingest@chest"], repo, env).lower()
    out = _run([*dvc, "repro", "ingest@chest"], repo, env)
    assert "Running stage 'ingest@chest'" in out
    assert len(read_table(repo / "data" / "interim" / "chest" / "manifest.csv")) == 21


def test_mixed_dicom_png_jpeg_folder_ingests_and_trains_through_dvc_repro(own_data_repo):
    repo, _, env = own_data_repo
    # DVCLive (train) needs a commit to compare against, as in any real project.
    _run(["git", "add", "dvc.yaml", "params.yaml"], repo, env)
    _run(["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "init"],
         repo, env)
    out = _run([sys.executable, "-m", "dvc", "repro", "train@mixed"], repo, env)
    assert "Running stage 'ingest@mixed'" in out and "Running stage 'train@mixed'" in out
    interim = repo / "data" / "interim" / "mixed"
    manifest = read_table(interim / "manifest.csv")
    quarantine = {q["source_path"]: q["code"] for q in read_table(interim / "quarantine.csv")}
    assert len(manifest) == 24 and {m["format"] for m in manifest} == {"dicom", "png", "jpeg", "tiff"}
    assert quarantine == {"img/trunc.jpg": "truncated", "img/empty.png": "empty",
                          "img/photo.png": "colour", "labels.csv": "phi_column"}
    card = json.loads((repo / "models" / "mixed" / "model_card.json").read_text())
    assert card["backbone"] == "resnet18" and card["ingest_preprocessing"]["window"] == "auto"
    assert "up to date" in _run([sys.executable, "-m", "dvc", "status", "train@mixed"], repo, env).lower()
    for path in list((repo / "data" / "interim" / "mixed").rglob("*")) + list((repo / "models").rglob("*")):
        if path.is_file():
            assert b"SECRET" not in path.read_bytes(), path.name
