"""The notebooks in notebooks/.

Fast checks: committed without outputs or execution counts, a papermill ``parameters`` cell whose
default profile is the pipeline's, and only public names of ``pipeline`` imported. Slow: every
notebook executed with papermill on the ``demo-small`` profile (both tasks where it applies), in
a temporary working directory, checking the JSON summary each one writes against the data.
"""

from __future__ import annotations

import ast
import importlib
import json
import shlex
import shutil
from collections import Counter
from pathlib import Path

import nbformat
import pytest
import yaml

from pipeline.config import load_params
from pipeline.dataset.tables import read_table

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["01_explore_data", "02_augmentations", "03_train_and_compare", "04_explain_case"]
PARAMETERS = {"TASK", "PROFILE", "ROOT", "WORKDIR", "SUMMARY_PATH"}


def _code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_the_four_notebooks_are_there():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "papermill" not in nb.metadata, "an executed copy was committed"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"cell {i} has outputs: strip them before committing"
        assert cell.execution_count is None, f"cell {i} has an execution count"
        assert not {"execution", "papermill"} & set(cell.metadata), f"cell {i} has run metadata"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_parameters_cell_first_and_literal(path):
    first = _code_cells(path)[0]
    assert first.metadata.get("tags") == ["parameters"]
    values = {}
    for node in ast.parse(first.source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.dump(node)
        values[node.targets[0].id] = ast.literal_eval(node.value)  # papermill overrides literals
    assert PARAMETERS <= set(values)
    assert values["PROFILE"] == "pipeline" and values["TASK"] == "cxr"
    assert values["ROOT"] is None and values["WORKDIR"] is None and values["SUMMARY_PATH"] is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_only_public_pipeline_names(path):
    source = "\n".join(c.source for c in _code_cells(path))
    imported = 0
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [(node.module or "", a.name) for a in node.names]
        else:
            continue
        for module, name in modules:
            if module.split(".")[0] != "pipeline":
                continue
            assert not any(part.startswith("_") for part in module.split(".")), module
            mod = importlib.import_module(module)
            if name is not None:
                assert not name.startswith("_") and hasattr(mod, name), f"{module}.{name}"
            imported += 1
    assert imported >= 3  # the notebooks run on the library, not on copied code


# --- executed ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Shared by the notebooks of this module: the small demos and models are built once."""
    return tmp_path_factory.mktemp("notebook-work")


#: An IPython startup file for the kernels of the notebooks that train or explain: their
#: ``tf.function``s run eagerly, as in the test processes (tests/conftest.py), where tiny models
#: cost less to run than to trace. The same library code traces in the ``dvc repro`` and
#: ``dvc exp run`` tests; ``MEDVISION_TEST_GRAPH=1`` keeps graphs here too.
_EAGER_STARTUP = """
import tensorflow as tf

tf.config.run_functions_eagerly(True)
"""


def _eager_ipython_dir(workdir: Path) -> Path:
    startup = workdir / "ipython-eager" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-eager.py").write_text(_EAGER_STARTUP, encoding="utf-8")
    return workdir / "ipython-eager"


def _execute(name: str, task: str, workdir: Path, tmp_path: Path, monkeypatch, *, eager: bool = False,
             **params) -> dict:
    import papermill as pm

    from tests.conftest import _eager_wanted

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    if eager and _eager_wanted():
        monkeypatch.setenv("IPYTHONDIR", str(_eager_ipython_dir(workdir)))
    summary = tmp_path / "summary.json"
    run_dir = tmp_path / "cwd"  # not the repository: the notebook must not depend on its cwd
    run_dir.mkdir()
    pm.execute_notebook(
        str(ROOT / "notebooks" / f"{name}.ipynb"), str(tmp_path / f"{name}-{task}.ipynb"),
        parameters={"TASK": task, "PROFILE": "demo-small", "ROOT": str(ROOT), "WORKDIR": str(workdir),
                    "SUMMARY_PATH": str(summary), **params},
        kernel_name="python3", cwd=str(run_dir), progress_bar=False, log_output=False,
    )
    assert not any(run_dir.iterdir()), "the notebook wrote into its working directory"
    return json.loads(summary.read_text(encoding="utf-8"))


def _data_dir(workdir: Path, task: str) -> Path:
    (found,) = workdir.glob(f"{task}-small-*/dataset/data")
    return found


def _apply_dvc_overrides(command: str, tmp_path: Path) -> Path:
    """Apply a printed ``dvc exp run -S ...`` command's overrides to a copy of params.yaml with
    DVC's own parser (what ``dvc exp run`` does first); return the copy."""
    from dvc.utils.hydra import apply_overrides

    args = shlex.split(command)
    assert args[:3] == ["dvc", "exp", "run"]
    overrides = [args[i + 1] for i, a in enumerate(args) if a == "-S"]
    assert overrides and len(overrides) * 2 == len(args) - 3
    copy = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", copy)
    apply_overrides(copy, overrides)
    return copy


@pytest.mark.slow
@pytest.mark.parametrize("task", ["cxr", "ct"])
def test_01_explore_counts_match_the_manifest(task, workdir, tmp_path, monkeypatch):
    summary = _execute("01_explore_data", task, workdir, tmp_path, monkeypatch, N_PER_CLASS=2)
    data = _data_dir(workdir, task)
    manifest = read_table(data / "manifest.csv")
    quarantine = read_table(data / "quarantine.csv")
    per_split: dict[str, Counter] = {}
    for r in manifest:
        per_split.setdefault(r["split"], Counter())[r["label"]] += 1
    assert summary["per_split"] == {s: dict(c) for s, c in per_split.items()}
    assert summary["n_samples"] == len(manifest) == summary["shape"][0]
    assert summary["patients_per_split"] == {
        s: len({r["patient"] for r in manifest if r["split"] == s}) for s in ("train", "val", "test")}
    assert summary["patients_in_several_splits"] == 0
    assert summary["quarantined_rows"] == sum(r["scope"] == "row" for r in quarantine)
    assert summary["quarantined_files"] == sum(r["scope"] == "file" for r in quarantine)
    assert summary["quarantine_codes"] == dict(Counter(r["code"] for r in quarantine))
    if task == "cxr":  # the CXR demo always holds broken rows
        assert summary["quarantined_rows"] >= 1
    shown = {r["sample_id"]: r["label"] for r in manifest if r["sample_id"] in set(summary["gallery"])}
    assert len(shown) == len(summary["gallery"]) and set(shown.values()) == {r["label"] for r in manifest}


#: cxr runs a list given in the notebook (certain motion: the IoU check is not vacuous), ct its
#: params (null: the default list).
AUGMENT_2D = [{"transform": "Affine", "p": 1.0, "rotate": [5, 10], "translate_percent": [0.05, 0.1]},
              {"transform": "RandomBrightnessContrast", "p": 0.5}]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["cxr", "ct"])
def test_02_augmentations_keep_masks_aligned_and_paste_back(task, workdir, tmp_path, monkeypatch):
    from pipeline.augment import DEFAULT_3D, validate_spec

    kind, spec = ("2d", AUGMENT_2D) if task == "cxr" else ("3d", DEFAULT_3D)
    extra = {"AUGMENT": AUGMENT_2D} if task == "cxr" else {}
    summary = _execute("02_augmentations", task, workdir, tmp_path, monkeypatch, N_SAMPLES=2, N_DRAWS=4,
                       **extra)
    expected = validate_spec(spec, kind=kind, key="x")
    assert summary["spec"] == expected
    assert summary["n_draws"] == 8 and summary["changed"] >= 1
    assert summary["shapes_kept"] and summary["images_in_range"] and summary["masks_binary"]
    assert summary["masks_moved"] >= 1  # geometry happened
    assert summary["mask_iou"] and min(summary["mask_iou"]) >= 0.7
    pasted = yaml.safe_load(summary["yaml"])["tasks"][task]["train"]["augment"]
    assert validate_spec(pasted, kind=kind, key="x") == expected
    params = load_params(_apply_dvc_overrides(summary["command"], tmp_path)).task(task)
    assert validate_spec(list(params.train.augment), kind=kind, key="x") == expected


@pytest.mark.slow
def test_03_variant_trained_compared_and_turned_into_dvc_exp(workdir, tmp_path, monkeypatch):
    variant = {"dropout": 0.0, "pooling": "max"}  # pooling is not in params.yaml: needs "+"
    summary = _execute("03_train_and_compare", "cxr", workdir, tmp_path, monkeypatch, eager=True,
                       VARIANT=variant)
    assert set(summary["metrics"]) == {"pipeline", "variant"}
    for name, doc in summary["metrics"].items():
        for split in ("val", "test"):
            assert "auroc" in doc[split] and doc[split]["n"] > 0, (name, split)
        assert 0.0 <= doc["threshold"]["value"] <= 1.0
    assert summary["changes"] == variant
    assert {k: summary["variant_card_params"][k] for k in variant} == variant
    assert summary["command"] == ("dvc exp run -S tasks.cxr.train.dropout=0.0 "
                                  "-S +tasks.cxr.train.pooling=max")
    changed = load_params(_apply_dvc_overrides(summary["command"], tmp_path)).task("cxr").train
    assert changed.dropout == 0.0 and changed.pooling == "max"


@pytest.mark.slow
@pytest.mark.parametrize("task", ["cxr", "ct"])
def test_04_maps_on_the_image_grid_and_deletion_curves(task, workdir, tmp_path, monkeypatch):
    fractions = [0.0, 0.1, 0.3]
    summary = _execute("04_explain_case", task, workdir, tmp_path, monkeypatch, eager=True,
                       FRACTIONS=fractions)
    manifest = {r["sample_id"]: r for r in read_table(_data_dir(workdir, task) / "manifest.csv")}
    case = manifest[summary["case"]]
    assert case["split"] == "test" and case["label"] == summary["label"]
    shape = summary["image_shape"]
    assert len(shape) == (2 if task == "cxr" else 3)
    assert set(summary["maps"]) == {"gradcam", "gradcam++"}
    for stats in summary["maps"].values():
        assert stats["shape"] == shape and 0.0 <= stats["min"] <= stats["max"] <= 1.0
    for curve in summary["deletion"].values():
        assert curve["fraction"] == fractions and len(curve["map"]) == len(curve["random"]) == 3
        # nothing deleted: both curves start at the model's probability for the case
        assert curve["map"][0] == pytest.approx(summary["probability"], abs=1e-4)
        assert curve["random"][0] == pytest.approx(summary["probability"], abs=1e-4)
