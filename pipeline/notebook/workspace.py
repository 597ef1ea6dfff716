"""Where a notebook finds a task's data and model: the DVC outputs, or a small demo built here.

Two profiles (:data:`PROFILES`):

- ``"pipeline"``: the outputs of ``dvc repro`` under the repository root. Their paths are read
  from ``dvc.yaml`` (the ``demo``, ``ingest`` and ``train`` stages), not repeated here.
- ``"demo-small"``: a small copy of the task built from the library under a work folder: the
  task's demo dataset with few patients (:func:`pipeline.demo.generate_demo`), ingested at a
  reduced resolution with the same field of view (:func:`pipeline.ingest.run_ingest`), and on
  request a tiny model trained by the same trainer as the ``train`` stage
  (:func:`pipeline.train.trainer.train`). It is what CI runs; it takes a minute or less on a CPU.

Notebooks never write into DVC outputs: what they make goes to :attr:`Workspace.work_dir`.
Small builds are cached under the work folder, keyed by everything they depend on, and are
published by an atomic rename, so concurrent or interrupted runs never leave a half-built folder
that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import TaskParams, load_params
from pipeline.dataset.layout import InterimLayout

PROFILES: tuple[str, ...] = ("pipeline", "demo-small")
#: Fake patients of the small demo per task kind (about 3 images per CXR patient, 1.3 volumes per CT).
SMALL_PATIENTS: dict[str, int] = {"2d": 16, "3d": 12}
#: Largest image / volume side of the small profile (resolution only: the field of view is kept).
SMALL_SIDE: dict[str, int] = {"2d": 64, "3d": 32}
_MIN_SIDE: dict[str, int] = {"2d": 32, "3d": 8}
_SMALL_MODEL: dict[str, dict[str, Any]] = {
    "2d": {"backbone": "resnet18", "width": 16, "batch_size": 8},
    "3d": {"backbone": "resnet18_3d", "width": 4, "batch_size": 4},
}
_SMALL_TRAIN: dict[str, Any] = {"weights": None, "epochs": 2, "freeze_epochs": 0,
                                "early_stopping_patience": 0, "precision": "float32",
                                "strategy": "default"}
#: Grad-CAM layer of the small models: one block before the last, whose 1-2 cells per axis at
#: the small input sizes would make every map a constant or a 2 x 2 blur.
_SMALL_EXPLAIN_LAYER = "conv4_block2_out"
_WORK_SUBDIR = Path(".cache") / "notebooks"


@dataclass(frozen=True)
class Workspace:
    """A task's inputs for a notebook.

    Attributes:
        profile: ``"pipeline"`` or ``"demo-small"``.
        task: The params the data and model were made with (the small profile's are reduced:
            see :func:`small_task`).
        seed: ``base.seed`` of params.yaml.
        root: Repository root (holds params.yaml and dvc.yaml).
        raw_dir: ``pipeline``: the ``demo`` stage's output (the demo dataset, or only the
            fingerprint of an external folder); ``demo-small``: the generated demo dataset.
        data_dir: Ingest outputs (``images.npy``, ``masks.npy``, ``manifest.csv``,
            ``quarantine.csv``, ``dataset.json``).
        model_dir: Trained model (``model.keras``, ``model_card.json``); may not exist unless
            asked for.
        work_dir: Where the notebook writes (variant models, evaluations); created.
    """

    profile: str
    task: TaskParams
    seed: int
    root: Path
    raw_dir: Path
    data_dir: Path
    model_dir: Path
    work_dir: Path

    def dataset_info(self) -> dict[str, Any]:
        """``dataset.json`` of the ingest outputs: the preprocessing the arrays went through
        (windowing, sizes, spacing) and the sample counts."""
        import json

        return json.loads(InterimLayout(self.data_dir).info.read_text(encoding="utf-8"))


def find_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the current one) with params.yaml and
    dvc.yaml: the repository root when a notebook runs from ``notebooks/``.

    Raises:
        FileNotFoundError: No such folder up to the filesystem root.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").is_file() and (folder / "dvc.yaml").is_file():
            return folder
    raise FileNotFoundError(f"no folder holding params.yaml and dvc.yaml at or above {here}; "
                            "pass root= (the repository root)")


def open_workspace(task_name: str, *, profile: str = "pipeline",
                   root: str | os.PathLike[str] | None = None,
                   work_dir: str | os.PathLike[str] | None = None, need_model: bool = False,
                   n_patients: int | None = None) -> Workspace:
    """Locate (``pipeline``) or build (``demo-small``) a task's data, and its model if asked.

    Args:
        task_name: A task of params.yaml (``cxr``, ``ct``, ...).
        profile: One of :data:`PROFILES`.
        root: Repository root (default: :func:`find_root` from the current folder).
        work_dir: The notebook's output folder (default ``<root>/.cache/notebooks``, which git
            and DVC ignore); small builds are cached under it.
        need_model: Also require (``pipeline``) or train (``demo-small``) the task's model.
        n_patients: ``demo-small`` only: fake patients of the demo (default
            :data:`SMALL_PATIENTS` for the task kind).

    Raises:
        ValueError: Unknown profile; ``demo-small`` for a task whose data is not a demo.
        FileNotFoundError: ``pipeline`` outputs missing (the message says which stage to run).
        pipeline.config.ParamsError: Unknown task or invalid params.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}. Received: {profile!r}")
    root = Path(root).resolve() if root is not None else find_root()
    params = load_params(root / "params.yaml")
    task = params.task(task_name)
    work = Path(work_dir) if work_dir is not None else root / _WORK_SUBDIR
    if profile == "pipeline":
        return _pipeline_workspace(task, params.base.seed, root, work / task_name, need_model)
    return _small_workspace(task, params.base.seed, params.base.resolved_salt(), root, work,
                            need_model, n_patients)


def stage_paths(root: str | os.PathLike[str], task_name: str) -> dict[str, Path]:
    """The DVC outputs of a task, read from ``<root>/dvc.yaml``.

    Returns:
        ``{"raw": ..., "data": ..., "model": ..., "explain": ..., "eval": ..., "metrics": ...}``
        (absolute paths; they may not exist yet).

    Raises:
        ValueError: dvc.yaml lacks one of the stages ``demo``, ``ingest``, ``train``,
            ``explain``, ``evaluate`` or its ``outs``/``metrics``.
    """
    import yaml

    root = Path(root).resolve()
    stages = (yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8")) or {}).get("stages", {})

    def first(stage: str, key: str = "outs") -> Path:
        try:
            entry = stages[stage]["do"][key][0]
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"dvc.yaml must define stages.{stage}.do.{key} (a foreach over tasks). "
                             f"Received stages: {sorted(stages)}") from None
        name = entry if isinstance(entry, str) else next(iter(entry))
        return root / name.replace("${key}", task_name)

    return {"raw": first("demo"), "data": first("ingest").parent, "model": first("train"),
            "explain": first("explain"), "eval": first("evaluate").parent,
            "metrics": first("evaluate", "metrics")}


def small_task(task: TaskParams) -> TaskParams:
    """``task`` reduced for the ``demo-small`` profile.

    Ingest: at most :data:`SMALL_SIDE` pixels per side (3D: voxel spacing scaled so the field of
    view stays the same), one worker, a quarter of the patients each for val and test (so both
    hold both classes), a lenient quarantine limit (the demo's broken files are a larger share
    of a small dataset). Train: a from-scratch ResNet-18 (2D width 16, 3D width 4), 2 epochs,
    float32, one device; the augmentation list is kept. Evaluate/explain: fewer bootstrap
    resamples and cases; maps from the penultimate ResNet block (the last one has only 1-2
    cells per axis at these sizes).
    """
    ing = task.ingest
    ingest: dict[str, Any] = {"workers": 1, "max_quarantine_fraction": 0.5,
                              "splits": {"val": 0.25, "test": 0.25}}
    if task.kind == "2d":
        ingest["image_size"] = _smaller(ing.image_size, SMALL_SIDE["2d"], _MIN_SIDE["2d"])
    else:
        shape = _smaller(ing.volume_shape, SMALL_SIDE["3d"], _MIN_SIDE["3d"])
        ingest["volume_shape"] = shape
        ingest["target_spacing"] = [sp * old / new for sp, old, new
                                    in zip(ing.target_spacing, ing.volume_shape, shape, strict=True)]
        ingest["min_slices"] = min(ing.min_slices, 4)
    raw = task.model_dump(mode="json")
    raw["ingest"].update(ingest)
    raw["train"].update({**_SMALL_TRAIN, **_SMALL_MODEL[task.kind]})
    raw["evaluate"].update({"bootstrap": 100, "batch_size": 16})
    raw["explain"].update({"batch_size": 8, "max_cases": 16, "layer": _SMALL_EXPLAIN_LAYER})
    return TaskParams.model_validate(raw)


def _smaller(shape: tuple[int, ...], side: int, minimum: int) -> list[int]:
    scale = min(1.0, side / max(shape))
    return [max(minimum, min(s, math.ceil(s * scale))) for s in shape]


def _pipeline_workspace(task: TaskParams, seed: int, root: Path, work: Path,
                        need_model: bool) -> Workspace:
    paths = stage_paths(root, task.name)
    if not InterimLayout(paths["data"]).manifest.is_file():
        raise FileNotFoundError(f"no ingest outputs in {paths['data']}: run `dvc repro ingest@{task.name}` "
                                "from the repository root, or use profile 'demo-small'")
    if need_model and not (paths["model"] / "model.keras").is_file():
        raise FileNotFoundError(f"no trained model in {paths['model']}: run `dvc repro train@{task.name}` "
                                "from the repository root, or use profile 'demo-small'")
    work.mkdir(parents=True, exist_ok=True)
    return Workspace("pipeline", task, seed, root, paths["raw"], paths["data"], paths["model"], work)


def _small_workspace(task: TaskParams, seed: int, salt: str, root: Path, work: Path, need_model: bool,
                     n_patients: int | None) -> Workspace:
    demo = task.data.demo_kind
    if demo is None:
        raise ValueError(f"profile 'demo-small' builds the task's demo dataset, but tasks.{task.name}"
                         f".data.source is a folder. Received: {task.data.source!r}; use profile "
                         "'pipeline' (after dvc repro)")
    small = small_task(task)
    n = SMALL_PATIENTS[task.kind] if n_patients is None else int(n_patients)
    dumped = small.model_dump(mode="json", include={"kind", "labels", "multilabel", "data", "ingest"})
    data_key = _key({"task": dumped, "patients": n, "seed": seed,
                     "salt": hashlib.sha256(salt.encode()).hexdigest()})
    home = work / f"{task.name}-small-{data_key}"
    dataset = _build_once(home / "dataset", lambda tmp: _build_dataset(small, demo, tmp, n, seed, salt))
    data_dir = dataset / "data"
    model_dir = home / f"model-{_key(small.train.model_dump(mode='json'))}"
    if need_model:
        _build_once(model_dir, lambda tmp: _train(small, data_dir, tmp, seed))
    out = home / "work"
    out.mkdir(parents=True, exist_ok=True)
    return Workspace("demo-small", small, seed, root, dataset / "raw", data_dir, model_dir, out)


def _key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def _build_once(final: Path, build: Callable[[Path], None]) -> Path:
    """Return ``final``, building it first (into a private folder, then renamed) if absent."""
    if final.is_dir():
        return final
    tmp = final.with_name(f".{final.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        build(tmp)
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():  # not lost to a concurrent build of the same thing: a real error
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _build_dataset(task: TaskParams, demo: str, out: Path, n_patients: int, seed: int, salt: str) -> None:
    from pipeline.demo import generate_demo
    from pipeline.ingest import run_ingest

    generate_demo(demo, out / "raw", seed=task.data.demo_seed, n_patients=n_patients)
    run_ingest(task, source=out / "raw", out_dir=out / "data", seed=seed, salt=salt, workers=1)


def _train(task: TaskParams, data_dir: Path, out: Path, seed: int) -> None:
    from pipeline.train.trainer import train

    backup = out.with_name(out.name + ".backup")  # private to this build, like ``out``
    try:
        train(task, data_dir=data_dir, model_dir=out, live_dir=None, backup_root=backup, seed=seed)
    finally:
        shutil.rmtree(backup, ignore_errors=True)
