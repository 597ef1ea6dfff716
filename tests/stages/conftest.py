"""A tiny ingested 2D and 3D dataset with a trained model each, shared by the stage tests."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def _prepare(tmp: Path, task: TaskParams, folder: Path) -> dict[str, Path]:
    data = tmp / "interim"
    run_ingest(task, source=folder, out_dir=data, seed=0, salt="s", workers=1)
    model = tmp / "model"
    train(task, data_dir=data, model_dir=model, live_dir=None, backup_root=tmp / "backup", seed=3)
    return {"root": tmp, "raw": folder, "data": data, "model": model}


@pytest.fixture(scope="session")
def trained_2d(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("stages2d")
    folder = make_2d_folder(tmp / "raw", n_patients=16, broken=False)
    return _prepare(tmp, task_2d(), folder)


@pytest.fixture(scope="session")
def trained_3d(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("stages3d")
    folder = make_3d_folder(tmp / "raw", n=16)
    return _prepare(tmp, task_3d(), folder)


@pytest.fixture(scope="session")
def trained_2d_folds(tmp_path_factory) -> dict[str, Path]:
    """The 2D task trained as a 2-fold cross-validation ensemble (one epoch per member)."""
    tmp = tmp_path_factory.mktemp("stages2d_folds")
    folder = make_2d_folder(tmp / "raw", n_patients=16, broken=False)
    return _prepare(tmp, task_2d(train={"folds": 2, "epochs": 1}), folder)
