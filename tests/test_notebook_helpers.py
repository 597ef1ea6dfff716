"""pipeline.notebook: workspaces (profiles, small builds), params round trips (train variants,
``dvc exp run -S`` values through DVC's own parser, augmentation YAML) and the figures."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pipeline.augment import DEFAULT_2D, DEFAULT_3D, validate_spec  # noqa: E402
from pipeline.config import ParamsError, TaskParams  # noqa: E402
from pipeline.notebook import (  # noqa: E402
    augment_yaml,
    changed_train_params,
    dvc_exp_command,
    find_root,
    hydra_value,
    lesion_center,
    open_workspace,
    orthogonal_slices,
    overlay,
    show_gallery,
    show_orthogonal,
    small_task,
    stage_paths,
    task_augment_spec,
    with_train_changes,
)
from pipeline.report.imaging import OUTLINE_RGB  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _task(kind: str = "2d", **train) -> TaskParams:
    doc = {"name": "cxr", "kind": kind, "labels": ["normal", "opacity"],
           "data": {"source": "demo:cxr" if kind == "2d" else "demo:ct"},
           "ingest": {"image_size": [128, 96]} if kind == "2d" else
           {"volume_shape": [32, 64, 64], "target_spacing": [5.0, 4.0, 4.0]},
           "train": {"backbone": "resnet50", "weights": "imagenet", **train}}
    return TaskParams.model_validate(doc)


@pytest.fixture
def repo(tmp_path) -> Path:
    """A repository root with a small params.yaml (a demo task and a folder task) and dvc.yaml."""
    params = {"base": {"seed": 1, "salt": "s"}, "tasks": {
        "cxr": {"kind": "2d", "labels": ["normal", "opacity"], "data": {"source": "demo:cxr"},
                "ingest": {"image_size": [64, 64]}, "train": {"backbone": "resnet18", "dropout": 0.2}},
        "own": {"kind": "2d", "labels": ["a", "b"], "data": {"source": "/data/elsewhere"},
                "ingest": {"image_size": [64, 64]}}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    return tmp_path


# --- params round trips ----------------------------------------------------------------------------


def test_with_train_changes_validates_like_params_yaml():
    task = _task()
    variant = with_train_changes(task, {"dropout": 0.0, "epochs": 5})
    assert variant.train.dropout == 0.0 and variant.train.epochs == 5
    assert task.train.dropout == 0.2  # not modified
    assert changed_train_params(task, variant) == {"epochs": 5, "dropout": 0.0}
    with pytest.raises(ParamsError, match=r"tasks\.cxr\.train freeze_epochs must be < epochs"):
        with_train_changes(task, {"epochs": 3})  # cross-field rules apply too
    with pytest.raises(ParamsError, match=r"tasks\.cxr\.train\.widht is not a known key"):
        with_train_changes(task, {"widht": 16})
    with pytest.raises(ParamsError, match=r"tasks\.cxr\.train\.dropout .*Received: 2"):
        with_train_changes(task, {"dropout": 2})


def test_dvc_exp_command_appends_missing_keys_and_quotes(repo):
    cmd = dvc_exp_command("cxr", {"dropout": 0.0, "pooling": "max", "backbone": "a b"},
                          params_path=repo / "params.yaml")
    assert shlex.split(cmd) == ["dvc", "exp", "run", "-S", "tasks.cxr.train.dropout=0.0",
                                "-S", "+tasks.cxr.train.pooling=max",
                                "-S", "tasks.cxr.train.backbone='a b'"]
    assert dvc_exp_command("ct", {"lr_head": 0.003}, section="train") == \
        "dvc exp run -S tasks.ct.train.lr_head=0.003"
    with pytest.raises(ValueError, match="at least one key"):
        dvc_exp_command("cxr", {})
    with pytest.raises(ValueError, match="finite"):
        hydra_value(float("nan"))
    with pytest.raises(ValueError, match="plain names"):
        hydra_value({"a b": 1})
    with pytest.raises(ValueError, match="interpolation"):
        hydra_value("${oc.env:HOME}")
    assert hydra_value("it's") == "'it\\'s'" and hydra_value("a\\") == "'a\\\\'"
    assert hydra_value("true") == "'true'" and hydra_value("relu") == "relu"


_scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6)
            | st.floats(allow_nan=False, allow_infinity=False, width=64)
            | st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), max_size=12)
            | st.text("ab1.-_\\'\" ${}[],=:#", max_size=8)).filter(lambda v: "${" not in str(v))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), inner, max_size=3), max_leaves=6)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_values)
def test_hydra_values_survive_dvc_set_param(repo, value):
    """What `dvc exp run -S` would write into params.yaml is exactly the value."""
    from dvc.utils.hydra import apply_overrides
    from dvc.utils.serialize import load_yaml

    path = repo / "exp_params.yaml"
    shutil.copy(repo / "params.yaml", path)
    (override,) = [a for a in shlex.split(dvc_exp_command("cxr", {"dropout": value}))[3:] if a != "-S"]
    apply_overrides(path, [override])
    assert load_yaml(path)["tasks"]["cxr"]["train"]["dropout"] == value


@pytest.mark.parametrize(("kind", "spec"), [("2d", DEFAULT_2D), ("3d", DEFAULT_3D), ("2d", [])])
def test_augment_yaml_pastes_back_to_the_same_spec(kind, spec):
    text = augment_yaml("cxr", spec, kind=kind)
    pasted = yaml.safe_load(text)["tasks"]["cxr"]["train"]["augment"]
    assert pasted == validate_spec(spec, kind=kind, key="x")
    assert all(line.startswith("        - {") for line in text.splitlines()[4:])  # one per line


def test_augment_yaml_names_the_bad_entry():
    with pytest.raises(ValueError, match=r"tasks\.cxr\.train\.augment\[1\]\.transform"):
        augment_yaml("cxr", [{"transform": "Affine"}, {"transform": "Nope"}], kind="2d")


def test_task_augment_spec_is_the_trainers_list():
    assert task_augment_spec(_task()) == validate_spec(DEFAULT_2D, kind="2d", key="x")
    own = [{"transform": "HorizontalFlip", "p": 0.5}]
    assert task_augment_spec(_task(augment=own)) == own
    assert task_augment_spec(_task("3d")) == validate_spec(DEFAULT_3D, kind="3d", key="x")


# --- workspaces --------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(shape=st.tuples(*[st.integers(8, 200)] * 3),
       spacing=st.tuples(*[st.floats(0.5, 10.0)] * 3))
def test_small_task_keeps_the_field_of_view(shape, spacing):
    task = TaskParams.model_validate({
        "name": "ct", "kind": "3d", "labels": ["a", "b"], "data": {"source": "demo:ct"},
        "ingest": {"volume_shape": list(shape), "target_spacing": list(spacing)}})
    small = small_task(task).ingest
    assert all(min(o, 8) <= n <= max(32, min(o, 8)) for n, o in zip(small.volume_shape, shape, strict=True))
    np.testing.assert_allclose(np.multiply(small.volume_shape, small.target_spacing),
                               np.multiply(shape, spacing), rtol=1e-9)


def test_small_task_2d_is_tiny_and_keeps_the_rest():
    task = _task(augment=[{"transform": "HorizontalFlip", "p": 0.5}])
    small = small_task(task)
    assert small.ingest.image_size == (64, 48) and small.ingest.workers == 1
    assert small.train.backbone == "resnet18" and small.train.width == 16 and small.train.weights is None
    assert small.train.epochs == 2 and small.train.augment == task.train.augment
    assert small.labels == task.labels and small.data == task.data


def test_stage_paths_come_from_dvc_yaml(repo, tmp_path):
    paths = stage_paths(repo, "cxr")
    rel = {k: v.relative_to(repo).as_posix() for k, v in paths.items()}
    assert rel == {"raw": "data/raw/cxr", "data": "data/interim/cxr", "model": "models/cxr",
                   "explain": "explain/cxr", "eval": "eval/cxr", "metrics": "metrics/cxr.json"}
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "dvc.yaml").write_text("stages: {}\n")
    with pytest.raises(ValueError, match="stages.demo"):
        stage_paths(tmp_path / "bare", "cxr")


def test_pipeline_profile_says_which_stage_to_run(repo):
    with pytest.raises(FileNotFoundError, match=r"dvc repro ingest@cxr"):
        open_workspace("cxr", root=repo)
    data = repo / "data" / "interim" / "cxr"
    data.mkdir(parents=True)
    (data / "manifest.csv").write_text("sample_id\n")
    ws = open_workspace("cxr", root=repo, work_dir=repo / "w")
    assert ws.data_dir == data and ws.work_dir.is_dir() and ws.seed == 1
    with pytest.raises(FileNotFoundError, match=r"dvc repro train@cxr"):
        open_workspace("cxr", root=repo, need_model=True)


def test_bad_profile_and_folder_source(repo):
    with pytest.raises(ValueError, match=r"profile must be one of \['pipeline', 'demo-small'\]"):
        open_workspace("cxr", root=repo, profile="small")
    with pytest.raises(ValueError, match="use profile 'pipeline'"):
        open_workspace("own", root=repo, profile="demo-small", work_dir=repo / "w")
    with pytest.raises(ParamsError, match="task must be one of"):
        open_workspace("nope", root=repo)


def test_find_root_walks_up(repo, tmp_path_factory):
    nested = repo / "notebooks" / "deeper"
    nested.mkdir(parents=True)
    assert find_root(nested) == repo.resolve()
    with pytest.raises(FileNotFoundError, match="params.yaml and dvc.yaml"):
        find_root(tmp_path_factory.mktemp("empty"))


def test_small_profile_builds_once_and_reuses(repo):
    work = repo / "w"
    first = open_workspace("cxr", root=repo, profile="demo-small", work_dir=work, n_patients=4)
    names = sorted(p.name for p in first.data_dir.iterdir())
    assert names == ["dataset.json", "images.npy", "manifest.csv", "masks.npy", "quarantine.csv"]
    assert (first.raw_dir / "labels.csv").is_file() and first.task.ingest.image_size == (64, 64)
    stamp = (first.data_dir / "images.npy").stat().st_mtime_ns
    again = open_workspace("cxr", root=repo, profile="demo-small", work_dir=work, n_patients=4)
    assert again.data_dir == first.data_dir
    assert (again.data_dir / "images.npy").stat().st_mtime_ns == stamp  # reused, not rebuilt
    leftovers = [p for p in work.rglob("*") if p.name.endswith(".partial")]
    assert leftovers == [] and not first.model_dir.exists()  # no model unless asked for


# --- figures -----------------------------------------------------------------------------------------


def test_orthogonal_slices_put_superior_at_the_top():
    d, h, w = 5, 6, 7
    vol = np.arange(d * h * w).reshape(d, h, w)[..., None]
    views = orthogonal_slices(vol, (1, 2, 3))
    np.testing.assert_array_equal(views["axial"], vol[1, :, :, 0])
    assert views["coronal"].shape == (d, w) and views["sagittal"].shape == (d, h)
    np.testing.assert_array_equal(views["coronal"][0], vol[d - 1, 2, :, 0])  # top row: most superior
    np.testing.assert_array_equal(views["sagittal"][:, 0], vol[::-1, 0, 3, 0])  # left: anterior
    with pytest.raises(ValueError, match="inside the volume"):
        orthogonal_slices(vol, (5, 0, 0))


def test_lesion_center_picks_the_largest_lesion():
    mask = np.zeros((10, 20, 20, 1), np.uint8)
    mask[2:4, 2:4, 2:4] = 1
    mask[6:9, 12:17, 12:17] = 1
    assert lesion_center(mask) == (7, 14, 14)
    assert lesion_center(np.zeros((4, 4), np.uint8)) is None and lesion_center(None) is None


def test_overlay_draws_the_outline_like_the_report():
    image = np.full((16, 16, 1), 0.5, np.float32)
    mask = np.zeros((16, 16, 1), np.uint8)
    mask[4:10, 4:10] = 1
    rgb = overlay(image, mask=mask)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[4, 4]) == OUTLINE_RGB and tuple(rgb[7, 7]) == (128, 128, 128)


def test_gallery_and_orthogonal_figures():
    images = [np.zeros((8, 8), np.uint8), np.ones((8, 8, 1), np.float32)]
    fig = show_gallery(images, masks=[None, np.ones((8, 8), np.uint8)], titles=["a", "b"], ncols=4)
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["a", "b"]
    plt.close(fig)
    with pytest.raises(ValueError, match=r"titles must have one entry per image \(2\)"):
        show_gallery(images, titles=["a"])
    vol = np.zeros((6, 8, 8, 1), np.uint8)
    mask = np.zeros_like(vol)
    mask[1, 2, 5] = 1
    fig = show_orthogonal(vol, mask=mask, spacing=(2.0, 1.0, 1.0), title="t")
    assert [ax.get_title() for ax in fig.axes] == ["t axial 1", "t coronal 2", "t sagittal 5"]
    plt.close(fig)


def test_helpers_import_neither_tensorflow_nor_matplotlib():
    import subprocess
    import sys

    code = ("import sys, pipeline.notebook; "
            "print(any(m in sys.modules for m in ('tensorflow', 'keras', 'matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert out.stdout.strip() == "False"
