"""A tiny ingested 2D and 3D dataset with a trained model each, shared by the stage tests.

Each is built once per test run, also under pytest-xdist: the first worker that needs it builds
it in the run's shared temporary folder under a file lock, the others read it (the pytest-xdist
recipe for session fixtures). Tests treat these folders as read-only and write elsewhere.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

from pipeline.config import TaskParams
from pipeline.ingest import run_ingest
from pipeline.train.trainer import train
from tests.builders import make_2d_folder, make_3d_folder

FAST_TRAIN = {"weights": None, "epochs": 2, "batch_size": 8, "early_stopping_patience": 0, "lr_head": 3e-3,
              "folds": 1}
STAGES = {"evaluate": {"bootstrap": 200}, "explain": {"methods": ["gradcam", "gradcam++"], "batch_size": 8}}


def task_2d(**sections) -> TaskParams:
    doc = {"name": "tiny2d", "kind": "2d", "labels": ["normal", "opacity"], "data": {"source": "x"},
           "ingest": {"image_size": [32, 32], "window": "percentile", "max_quarantine_fraction": 0.5},
           "train": {**FAST_TRAIN, "backbone": "resnet18", "width": 16}, **STAGES}
    for key, value in sections.items():
        doc[key] = {**doc.get(key, {}), **value}
    return TaskParams.model_validate(doc)


def task_3d(**sections) -> TaskParams:
    doc = {"name": "tiny3d", "kind": "3d", "labels": ["normal", "nodule"], "data": {"source": "x"},
           "ingest": {"volume_shape": [8, 16, 16], "target_spacing": [4.0, 4.0, 4.0], "min_slices": 4,
                      "max_quarantine_fraction": 0.5, "splits": {"val": 0.25, "test": 0.25}},
           "train": {**FAST_TRAIN, "backbone": "resnet18_3d", "width": 4, "batch_size": 4}, **STAGES}
    for key, value in sections.items():
        doc[key] = {**doc.get(key, {}), **value}
    return TaskParams.model_validate(doc)


def _paths(tmp: Path) -> dict[str, Path]:
    return {"root": tmp, "raw": tmp / "raw", "data": tmp / "interim", "model": tmp / "model"}


def _prepare(tmp: Path, task: TaskParams, make_raw: Callable[[Path], Path]) -> dict[str, Path]:
    paths = _paths(tmp)
    make_raw(paths["raw"])
    run_ingest(task, source=paths["raw"], out_dir=paths["data"], seed=0, salt="s", workers=1)
    train(task, data_dir=paths["data"], model_dir=paths["model"], live_dir=None,
          backup_root=tmp / "backup", seed=3)
    return paths


def _shared(tmp_path_factory, worker_id: str, name: str, task: TaskParams,
            make_raw: Callable[[Path], Path]) -> dict[str, Path]:
    """``_prepare`` once per test run, shared by the xdist workers (built under a file lock)."""
    if worker_id == "master":  # not distributed
        return _prepare(tmp_path_factory.mktemp(name), task, make_raw)
    root = tmp_path_factory.getbasetemp().parent / f"shared-{name}"
    with FileLock(f"{root}.lock"):
        if not (root / ".done").is_file():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            _prepare(root, task, make_raw)
            (root / ".done").write_text("built\n")
    return _paths(root)


@pytest.fixture(scope="session")
def trained_2d(tmp_path_factory, worker_id) -> dict[str, Path]:
    return _shared(tmp_path_factory, worker_id, "stages2d", task_2d(),
                   lambda raw: make_2d_folder(raw, n_patients=16, broken=False))


@pytest.fixture(scope="session")
def trained_3d(tmp_path_factory, worker_id) -> dict[str, Path]:
    return _shared(tmp_path_factory, worker_id, "stages3d", task_3d(), lambda raw: make_3d_folder(raw, n=16))


@pytest.fixture(scope="session")
def trained_2d_folds(tmp_path_factory, worker_id) -> dict[str, Path]:
    """The 2D task trained as a 2-fold cross-validation ensemble (one epoch per member)."""
    return _shared(tmp_path_factory, worker_id, "stages2d_folds", task_2d(train={"folds": 2, "epochs": 1}),
                   lambda raw: make_2d_folder(raw, n_patients=16, broken=False))
