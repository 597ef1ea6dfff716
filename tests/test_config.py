from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pipeline.config import ParamsError, load_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _load(tmp_path: Path, raw: dict):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(raw))
    return load_params(p)


def test_repo_params_are_valid_and_typed():
    params = load_params(ROOT / "params.yaml")
    cxr = params.task("cxr")
    assert cxr.kind == "2d" and cxr.ingest.image_size == (128, 128)
    assert cxr.data.demo_kind == "cxr"
    ct = params.task("ct")
    assert ct.kind == "3d" and len(ct.ingest.volume_shape) == 3
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="frozen"):
        cxr.kind = "3d"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r["tasks"]["cxr"]["ingest"].update(window="wide"),
         "tasks.cxr.ingest.window must be 'auto', 'percentile' or [center, width]. Received: 'wide'"),
        (lambda r: r["tasks"]["cxr"]["ingest"].update(imagesize=[64, 64]),
         "tasks.cxr.ingest.imagesize is not a known key"),
        (lambda r: r["tasks"]["cxr"].update(kind="4d"), "tasks.cxr.kind Input should be '2d' or '3d'"),
        (lambda r: r["tasks"]["cxr"]["data"].update(source="demo:mri"),
         "tasks.cxr.data.source must be a folder or one of ['demo:cxr', 'demo:ct']"),
        (lambda r: r["tasks"]["ct"]["ingest"].pop("volume_shape"),
         "ingest.volume_shape ([D, H, W]) is required for kind '3d'"),
        (lambda r: r["tasks"]["ct"]["ingest"].update(image_size=[64, 64]),
         "ingest.image_size is for kind '2d'"),
        (lambda r: r["tasks"]["cxr"]["ingest"]["splits"].update(val=0.5, test=0.6),
         "val + test must be < 1"),
        (lambda r: r["tasks"]["cxr"]["ingest"].update(max_quarantine_fraction=2),
         "tasks.cxr.ingest.max_quarantine_fraction"),
        (lambda r: r["tasks"]["cxr"].update(labels=["a", "a"]), "labels must be unique"),
        (lambda r: r["tasks"].update({"Bad-Name": r["tasks"]["cxr"]}), "task names must match"),
        (lambda r: r["base"].update(sead=1), "base.sead is not a known key"),
        (lambda r: r["tasks"]["ct"]["evaluate"].update(tta="rotate"),
         "tasks.ct.evaluate.tta must be one of ['none', 'flip', 'shift', 'flip_shift']. Received: 'rotate'"),
        (lambda r: r["tasks"]["cxr"]["evaluate"].update(tta=None),
         "tasks.cxr.evaluate.tta must be one of ['none', 'flip', 'shift', 'flip_shift']. Received: None"),
        (lambda r: r["tasks"]["cxr"]["explain"].update(tta="mirror"),
         "tasks.cxr.explain.tta must be one of ['none', 'flip', 'shift', 'flip_shift']. Received: 'mirror'"),
        (lambda r: r["tasks"]["cxr"]["train"].update(augment_preset="heavy"),
         "tasks.cxr.train.augment_preset Input should be 'mild' or 'strong'. Received: 'heavy'"),
    ],
)
def test_bad_params_fail_early_naming_the_key(tmp_path, raw, mutate, expected):
    raw = copy.deepcopy(raw)
    mutate(raw)
    with pytest.raises(ParamsError) as info:
        _load(tmp_path, raw)
    assert expected in str(info.value)


def test_unknown_task_lists_known_ones(tmp_path, raw):
    params = _load(tmp_path, raw)
    with pytest.raises(ParamsError, match=r"task must be one of \['ct', 'cxr'\]. Received: 'xr'"):
        params.task("xr")


def test_salt_from_environment(tmp_path, raw, monkeypatch):
    raw["base"]["salt"] = "env:MV_TEST_SALT"
    params = _load(tmp_path, raw)
    monkeypatch.delenv("MV_TEST_SALT", raising=False)
    with pytest.raises(ParamsError, match="MV_TEST_SALT"):
        params.base.resolved_salt()
    monkeypatch.setenv("MV_TEST_SALT", "s3cret")
    assert params.base.resolved_salt() == "s3cret"


def test_explicit_window_and_workers(tmp_path, raw):
    raw["tasks"]["cxr"]["ingest"].update(window=[40, 400], workers=3)
    ing = _load(tmp_path, raw).task("cxr").ingest
    assert ing.window == (40.0, 400.0) and ing.n_workers == 3


def test_augment_preset_is_mild_unless_set(tmp_path, raw):
    params = _load(tmp_path, raw)
    assert params.task("cxr").train.augment_preset == "mild" == params.task("ct").train.augment_preset
    raw["tasks"]["cxr"]["train"].pop("augment_preset")
    raw["tasks"]["ct"]["train"]["augment_preset"] = "strong"
    params = _load(tmp_path, raw)
    assert params.task("cxr").train.augment_preset == "mild"
    assert params.task("ct").train.augment_preset == "strong"


def test_every_param_dvc_yaml_tracks_exists_for_every_task(raw):
    """DVC refuses a stage whose `params:` key is missing from params.yaml (CI once failed so at
    report@cxr after 20 minutes of repro); this catches it in milliseconds."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    missing = []
    for name, stage in stages.items():
        for task in raw["tasks"]:
            for key in stage["do"].get("params", []):
                node = raw
                for part in key.replace("${key}", task).split("."):
                    if not isinstance(node, dict) or part not in node:
                        missing.append(f"{name}@{task}: {key.replace('${key}', task)}")
                        break
                    node = node[part]
    assert not missing, missing


@pytest.mark.parametrize(("change", "expected"), [
    ({"checkpoint": "val_auroc"},
     "tasks.cxr.train.checkpoint Input should be 'auroc_then_loss', 'auroc' or 'loss'. "
     "Received: 'val_auroc'"),
    ({"ema_momentum": 1.0}, "tasks.cxr.train.ema_momentum Input should be less than 1. Received: 1.0"),
    ({"ema": "sometimes"}, "tasks.cxr.train.ema Input should be a valid boolean"),
    ({"class_balance": "balanced"},
     "tasks.cxr.train.class_balance Input should be 'none', 'class_weights', 'focal' or 'auto'. "
     "Received: 'balanced'"),
])
def test_model_selection_params_name_the_key_and_the_choices(tmp_path, raw, change, expected):
    raw["tasks"]["cxr"]["train"].update(change)
    with pytest.raises(ParamsError) as info:
        _load(tmp_path, raw)
    assert expected in str(info.value)


def test_model_selection_defaults(raw):
    from pipeline.config import TrainParams

    tp = TrainParams()
    assert (tp.checkpoint, tp.ema, tp.ema_momentum) == ("auroc_then_loss", False, 0.99)
    assert tp.class_balance == "none"
    for name, task in raw["tasks"].items():  # params.yaml spells the new keys out
        assert {k: task["train"][k] for k in ("checkpoint", "ema", "ema_momentum")} == {
            "checkpoint": "auroc_then_loss", "ema": name == "cxr", "ema_momentum": 0.99}


def test_evaluate_tta_defaults_to_none_and_accepts_every_mode(tmp_path, raw):
    import typing

    from pipeline.config import EvaluateParams
    from pipeline.evaluate.tta import TTA_MODES

    params = load_params(ROOT / "params.yaml")
    assert params.task("cxr").evaluate.tta == params.task("ct").evaluate.tta == "none"
    assert EvaluateParams().tta == "none"
    assert typing.get_args(EvaluateParams.model_fields["tta"].annotation) == TTA_MODES
    raw["tasks"]["ct"]["evaluate"]["tta"] = "flip_shift"
    assert _load(tmp_path, raw).task("ct").evaluate.tta == "flip_shift"


@pytest.mark.parametrize(
    ("external", "expected"),
    [
        ({"site_b": {"sourc": "demo:cxr"}}, "tasks.cxr.external.site_b.sourc is not a known key"),
        ({"site_b": {"source": "demo:mri"}},
         "tasks.cxr.external.site_b.source must be a folder or one of ['demo:cxr', 'demo:ct']"),
        ({"Site B": "/data/b"}, "tasks.cxr.external cohort names must match [a-z][a-z0-9_]*"),
        ({"site_b": "demo:ct"},
         "external.site_b.source is a 3d demo but kind is '2d'. Received: 'demo:ct'"),
        ({"site_b": {"source": "demo:cxr", "demo_seed": "one"}}, "tasks.cxr.external.site_b.demo_seed"),
        (["site_b"], "tasks.cxr.external must be a mapping of cohort name to a dataset source"),
    ],
)
def test_bad_external_cohorts_name_the_key(tmp_path, raw, external, expected):
    raw["tasks"]["cxr"]["external"] = external
    with pytest.raises(ParamsError) as err:
        _load(tmp_path, raw)
    assert expected in str(err.value)


def test_external_cohorts_default_empty_and_accept_a_folder_shorthand(tmp_path, raw):
    raw["tasks"]["ct"].pop("external", None)
    raw["tasks"]["cxr"]["external"] = {"site_b": {"source": "demo:cxr", "demo_seed": 1},
                                       "site_c": "/data/hospital_c"}
    params = _load(tmp_path, raw)
    assert params.task("ct").external == {}
    cohorts = params.task("cxr").external
    assert cohorts["site_b"].demo_kind == "cxr" and cohorts["site_b"].demo_seed == 1
    assert cohorts["site_c"].source == "/data/hospital_c" and cohorts["site_c"].demo_kind is None


def test_repo_demo_has_one_small_external_cohort_for_cxr():
    params = load_params(ROOT / "params.yaml")
    (name, cohort), = params.task("cxr").external.items()
    assert cohort.demo_kind == "cxr" and cohort.demo_seed != params.task("cxr").data.demo_seed
    assert cohort.demo_patients is not None and cohort.demo_patients <= 40  # ~3 images each
