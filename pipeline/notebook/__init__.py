"""Helpers for the notebooks in ``notebooks/``, which run on the same library as ``dvc repro``.

- :func:`open_workspace`: a task's data and model, from the DVC outputs (profile ``pipeline``)
  or a small demo built here (profile ``demo-small``, what CI runs); :class:`Workspace`.
- :func:`with_train_changes`, :func:`dvc_exp_command`, :func:`augment_yaml`,
  :func:`task_augment_spec`: from a notebook experiment back to params.yaml / ``dvc exp run``.
- :func:`show_gallery`, :func:`show_orthogonal`, :func:`overlay`: matplotlib figures drawn like
  the HTML report.

Importing this package imports neither TensorFlow nor matplotlib; the functions that need them do.
"""

from __future__ import annotations

from pipeline.notebook.plots import (
    VIEWS,
    lesion_center,
    orthogonal_slices,
    overlay,
    show_gallery,
    show_orthogonal,
    to_uint8,
)
from pipeline.notebook.snippets import (
    augment_yaml,
    changed_train_params,
    dvc_exp_command,
    hydra_value,
    task_augment_spec,
    with_train_changes,
)
from pipeline.notebook.workspace import (
    PROFILES,
    SMALL_PATIENTS,
    SMALL_SIDE,
    Workspace,
    find_root,
    open_workspace,
    small_task,
    stage_paths,
)

__all__ = [
    "PROFILES",
    "SMALL_PATIENTS",
    "SMALL_SIDE",
    "VIEWS",
    "Workspace",
    "augment_yaml",
    "changed_train_params",
    "dvc_exp_command",
    "find_root",
    "hydra_value",
    "lesion_center",
    "open_workspace",
    "orthogonal_slices",
    "overlay",
    "show_gallery",
    "show_orthogonal",
    "small_task",
    "stage_paths",
    "task_augment_spec",
    "to_uint8",
    "with_train_changes",
]
