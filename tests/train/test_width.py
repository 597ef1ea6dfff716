"""train.width reaches the architectures that have one and is ignored by fixed-width backbones."""

from __future__ import annotations

import pytest

from pipeline.config import TaskParams
from pipeline.train.trainer import width_for


def _task(kind: str, backbone: str, width: int | None) -> TaskParams:
    shape = {"image_size": [64, 64]} if kind == "2d" else {"volume_shape": [16, 32, 32]}
    return TaskParams(name="t", kind=kind, labels=("a", "b"), data={"source": "/tmp"},
                      ingest=shape, train={"backbone": backbone, "width": width, "weights": None})


@pytest.mark.parametrize(("kind", "backbone", "width", "expected"), [
    ("2d", "resnet18", 32, 32),
    ("2d", "densenet121", 32, None),  # `dvc exp run -S ...backbone=densenet121` keeps width: 32
    ("2d", "efficientnetb0", 32, None),
    ("2d", "resnet50", None, None),
    ("3d", "resnet18_3d", 16, 16),
    ("3d", "densenet121_3d", 16, 16),
])
def test_width_for(kind, backbone, width, expected):
    assert width_for(_task(kind, backbone, width)) == expected
