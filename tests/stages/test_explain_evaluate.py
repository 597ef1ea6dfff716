"""explain -> evaluate on tiny trained models: files, shapes, metrics layout, IoU, no test leakage."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.dataset.store import open_array
from pipeline.dataset.tables import read_table
from pipeline.evaluate import read_predictions
from pipeline.evaluate.run import run_evaluate
from pipeline.explain.outputs import maps_file, read_explained
from pipeline.explain.run import run_explain
from tests.stages.conftest import task_2d, task_3d


@pytest.fixture(scope="module")
def explained_2d(trained_2d, tmp_path_factory):
    out = tmp_path_factory.mktemp("explain2d") / "explain"  # the shared fixture stays read-only
    return run_explain(task_2d(), data_dir=trained_2d["data"], model_dir=trained_2d["model"], out_dir=out,
                       seed=0), out


def test_explain_writes_maps_for_every_test_case(trained_2d, explained_2d):
    result, out = explained_2d
    manifest = read_table(trained_2d["data"] / "manifest.csv")
    test_ids = [r["sample_id"] for r in manifest if r["split"] == "test"]
    assert [r["sample_id"] for r in result.rows] == test_ids
    assert result.methods == ("gradcam", "gradcam++")
    for method in result.methods:
        maps = open_array(out / maps_file(method))
        assert maps.shape == (len(test_ids), 32, 32) and maps.dtype == np.float32
        assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
        summary = result.faithfulness[method]
        assert summary["n_images"] == len(test_ids) and isinstance(summary["flag"], bool)
    assert maps_file("gradcam++") == "maps_gradcampp.npy"
    assert result.faithfulness["layer"]  # the resolved target layer is recorded
    again = read_explained(out)
    assert again is not None and again.methods == result.methods


def test_explain_respects_splits_and_max_cases(trained_2d, tmp_path):
    task = task_2d(explain={"splits": ["val", "test"], "max_cases": 3, "methods": ["gradcam"]})
    result = run_explain(task, data_dir=trained_2d["data"], model_dir=trained_2d["model"],
                         out_dir=tmp_path, seed=0)
    assert len(result.rows) == 3 and {r["split"] for r in result.rows} <= {"val", "test"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.json", "cases.csv", "faithfulness.json",
                                                         "maps_gradcam.npy"]


def test_explain_bad_layer_names_candidates(trained_2d, tmp_path):
    with pytest.raises(ValueError, match="no_such_layer"):
        run_explain(task_2d(explain={"layer": "no_such_layer"}), data_dir=trained_2d["data"],
                    model_dir=trained_2d["model"], out_dir=tmp_path, seed=0)
    assert not any(tmp_path.iterdir())


def test_evaluate_metrics_predictions_plots(trained_2d, explained_2d, tmp_path):
    _, explain_dir = explained_2d
    metrics_path = tmp_path / "metrics" / "tiny2d.json"
    result = run_evaluate(task_2d(), data_dir=trained_2d["data"], model_dir=trained_2d["model"],
                          explain_dir=explain_dir, out_dir=tmp_path / "eval", metrics_path=metrics_path,
                          seed=0)
    doc = json.loads(metrics_path.read_text())
    assert doc == json.loads(json.dumps(result.metrics))
    test = doc["test"]
    for key in ("auroc", "precision", "recall", "f1", "accuracy", "iou", "pointing_game",
                "energy_in_mask", "energy_chance"):
        assert key in test, key
    assert 0.0 <= test["energy_in_mask"] <= 1.0 and 0.0 < test["energy_chance"] < 1.0
    for key in ("auroc", "f1"):
        if test[key] is not None:
            assert test[f"{key}_ci_low"] <= test[key] <= test[f"{key}_ci_high"]
    assert doc["threshold"]["rule"] == "youden" and 0.0 <= doc["threshold"]["value"] <= 1.0
    assert set(doc["explain"]) >= {"gradcam", "gradcam++", "layer"}
    assert test["localization_method"] == "gradcam" and test["n_localized"] >= 1
    in_body = doc["localization_in_body"]  # beside, not instead of, the reported measures
    assert set(in_body) >= {"pointing_game", "iou", "heat_outside_body"}
    assert 0.0 <= in_body["heat_outside_body"] <= 1.0
    # predictions: val + test only, pseudonyms only, probabilities per label
    preds = read_predictions(result.predictions)
    manifest = read_table(trained_2d["data"] / "manifest.csv")
    assert sorted(preds.sample_ids) == sorted(r["sample_id"] for r in manifest if r["split"] != "train")
    np.testing.assert_allclose(preds.probs.sum(axis=1), 1.0, atol=1e-6)
    assert test["n"] == sum(r["split"] == "test" for r in manifest)
    for name in ("roc", "pr", "confusion", "calibration"):
        rows = json.loads((tmp_path / "eval" / "plots" / f"{name}.json").read_text())
        assert isinstance(rows, list) and rows, name
    confusion = json.loads((tmp_path / "eval" / "plots" / "confusion.json").read_text())
    assert len(confusion) == test["n"]


def test_threshold_is_chosen_on_val_not_test(trained_2d, tmp_path):
    """Flipping only the test cases' labels must not move the threshold (it is fit on val), while
    the test metrics do change; a numeric threshold is used as given."""
    import shutil

    from pipeline.dataset.tables import write_table

    task = task_2d(evaluate={"threshold": "f1"})
    a = run_evaluate(task, data_dir=trained_2d["data"], model_dir=trained_2d["model"], explain_dir=None,
                     out_dir=tmp_path / "a", metrics_path=tmp_path / "a.json", seed=0)
    flipped = tmp_path / "flipped"
    shutil.copytree(trained_2d["data"], flipped)
    rows = read_table(flipped / "manifest.csv")
    other = {"normal": "opacity", "opacity": "normal"}
    for row in rows:
        if row["split"] == "test":
            row["label"] = other[row["label"]]
    write_table(flipped / "manifest.csv", rows, tuple(rows[0]))
    b = run_evaluate(task, data_dir=flipped, model_dir=trained_2d["model"], explain_dir=None,
                     out_dir=tmp_path / "b", metrics_path=tmp_path / "b.json", seed=0)
    assert a.metrics["threshold"] == b.metrics["threshold"] and a.metrics["threshold"]["rule"] == "f1"
    assert a.metrics["val"] == b.metrics["val"]
    assert b.metrics["test"]["auroc"] == pytest.approx(1.0 - a.metrics["test"]["auroc"], abs=1e-9)
    fixed = run_evaluate(task_2d(evaluate={"threshold": 0.3}), data_dir=trained_2d["data"],
                         model_dir=trained_2d["model"], explain_dir=None, out_dir=tmp_path / "c",
                         metrics_path=tmp_path / "c.json", seed=0)
    assert fixed.metrics["threshold"]["value"] == pytest.approx(0.3)
    assert "iou" not in a.metrics["test"]  # no explain outputs given


def test_model_for_other_labels_is_refused(trained_2d, tmp_path):
    task = task_2d().model_copy(update={"labels": ("healthy", "sick")})
    with pytest.raises(ValueError, match="trained for"):
        run_evaluate(task, data_dir=trained_2d["data"], model_dir=trained_2d["model"], explain_dir=None,
                     out_dir=tmp_path, metrics_path=tmp_path / "m.json", seed=0)


def test_3d_explain_and_evaluate(trained_3d, tmp_path):
    task = task_3d()
    result = run_explain(task, data_dir=trained_3d["data"], model_dir=trained_3d["model"],
                         out_dir=tmp_path / "explain", seed=0)
    maps = result.maps["gradcam"]
    assert maps.shape[1:] == (8, 16, 16)  # the heatmap has the volume's shape
    assert np.isfinite(maps).all()
    ev = run_evaluate(task, data_dir=trained_3d["data"], model_dir=trained_3d["model"],
                      explain_dir=tmp_path / "explain", out_dir=tmp_path / "eval",
                      metrics_path=tmp_path / "m.json", seed=0)
    assert "auroc" in ev.metrics["test"] and ev.metrics["test"]["n"] == len(result.rows)


def test_evaluate_with_tta_averages_views_and_records_the_mode(trained_2d, tmp_path):
    """val (threshold) and test both get the mean over the original and its mirror; the metrics
    file says which mode, for predict; the default records none."""
    from pipeline.dataset.cases import load_inputs
    from pipeline.evaluate.tta import View, apply_view
    from pipeline.train.card import load_model

    kwargs = {"data_dir": trained_2d["data"], "model_dir": trained_2d["model"], "explain_dir": None}
    plain = run_evaluate(task_2d(), **kwargs, out_dir=tmp_path / "a", metrics_path=tmp_path / "a.json",
                         seed=0)
    assert plain.metrics["tta"] == {"mode": "none", "views": 1}
    flip = run_evaluate(task_2d(evaluate={"tta": "flip"}), **kwargs, out_dir=tmp_path / "b",
                        metrics_path=tmp_path / "b.json", seed=0)
    assert json.loads((tmp_path / "b.json").read_text())["tta"] == {"mode": "flip", "views": 2}
    preds = read_predictions(flip.predictions)
    assert set(preds.splits) == {"val", "test"}
    rows = {r["sample_id"]: int(r["index"]) for r in read_table(trained_2d["data"] / "manifest.csv")}
    x = load_inputs(open_array(trained_2d["data"] / "images.npy"),
                    np.array([rows[s] for s in preds.sample_ids]))
    model = load_model(trained_2d["model"])
    p = [np.asarray(model.predict_on_batch(v), np.float64)[:, 0] for v in (x, apply_view(x, View(flip=True)))]
    np.testing.assert_allclose(preds.probs[:, 1], (p[0] + p[1]) / 2, atol=2e-6)  # file has 6 decimals
    np.testing.assert_allclose(read_predictions(plain.predictions).probs[:, 1], p[0], atol=2e-6)


# 2D traced (10 views: tracing once is cheaper than eager steps; and graphs get tested here),
# 3D eagerly (single views)
@pytest.mark.parametrize("kind", [pytest.param("2d", marks=pytest.mark.graph), "3d"])
def test_auto_method_and_layer_are_chosen_on_val_and_recorded(kind, trained_2d, trained_3d, tmp_path):
    """explain.methods/layer: auto score the candidates on validation cases of the positive class
    and write the choice with its evidence to faithfulness.json, from where evaluate copies it
    into metrics (predict reads the method and layer back)."""
    trained, make = (trained_2d, task_2d) if kind == "2d" else (trained_3d, task_3d)
    # 2D: the default flip_shift views (the demo's setting); 3D: single views, a tenth of the maps
    # (view averaging: tests/explain/test_averaged.py)
    views = {} if kind == "2d" else {"tta": "none"}
    task = make(explain={"methods": "auto", "layer": "auto", **views})
    result = run_explain(task, data_dir=trained["data"], model_dir=trained["model"],
                         out_dir=tmp_path / "explain", seed=0)
    selection = result.faithfulness["selection"]
    assert selection["split"] == "val"
    chosen = [c for c in selection["candidates"] if c["chosen"]]
    assert len(chosen) == 1
    assert result.methods == (selection["method"],) == (chosen[0]["method"],)
    assert result.faithfulness["layer"] == selection["layer"] == chosen[0]["layer"]
    assert {c["method"] for c in selection["candidates"]} == set(task.explain.method_list)
    assert all("deletion_flag" in c and "deletion_win_rate" in c for c in selection["candidates"])
    assert read_explained(tmp_path / "explain").methods == result.methods
    ev = run_evaluate(task, data_dir=trained["data"], model_dir=trained["model"],
                      explain_dir=tmp_path / "explain", out_dir=tmp_path / "eval",
                      metrics_path=tmp_path / "m.json", seed=0)
    assert ev.metrics["explain"]["selection"]["method"] == selection["method"]
    audit = json.loads((tmp_path / "explain" / "audit.json").read_text())
    assert len(audit["cases"]) == len(result.rows)
    in_metrics = ev.metrics["explain"]["audit"]["summary"]  # rounded there
    for key in ("warning", "n_flagged", "n_cases", "flagged_regions"):
        assert in_metrics[key] == audit["summary"][key]
    assert in_metrics["border"]["share"] == pytest.approx(audit["summary"]["border"]["share"], abs=1e-5)
    for case in audit["cases"]:
        assert 0.0 <= case["outside_body"] <= 1.0 and 0.0 <= case["border"] <= 1.0


def test_explicit_methods_with_auto_layer_put_the_chosen_method_first(trained_2d, tmp_path):  # eager
    task = task_2d(explain={"methods": ["gradcam", "hirescam"], "layer": "auto", "tta": "none"})
    result = run_explain(task, data_dir=trained_2d["data"], model_dir=trained_2d["model"],
                         out_dir=tmp_path, seed=0)
    assert set(result.methods) == {"gradcam", "hirescam"}
    assert result.methods[0] == result.faithfulness["selection"]["method"]
    assert {c["method"] for c in result.faithfulness["selection"]["candidates"]} == {"gradcam", "hirescam"}


def test_auto_without_a_positive_validation_case_chooses_on_all_of_them(trained_2d, tmp_path, monkeypatch,
                                                                          caplog):
    """A small split may hold no validation case of the explained class (the dvc test's tiny ct
    set did): the choice is then made on every validation case instead of stopping the stage."""
    import dataclasses
    import logging

    from pipeline.explain import run as stage

    real = stage.select_cases

    def negatives_only(data_dir, splits, limit=None):
        cases = real(data_dir, splits, limit=limit)
        if tuple(splits) != ("val",):
            return cases
        return dataclasses.replace(cases, rows=tuple({**r, "label": "normal"} for r in cases.rows))

    monkeypatch.setattr(stage, "select_cases", negatives_only)
    caplog.set_level(logging.WARNING, logger="pipeline.explain.run")
    task = task_2d(explain={"methods": ["gradcam", "hirescam"], "layer": "auto", "tta": "none"})
    result = run_explain(task, data_dir=trained_2d["data"], model_dir=trained_2d["model"], out_dir=tmp_path,
                         seed=0)
    n_val = sum(r["split"] == "val" for r in read_table(trained_2d["data"] / "manifest.csv"))
    assert result.faithfulness["selection"]["n_cases"] == n_val
    assert any("no validation case labelled 'opacity'" in r.getMessage() for r in caplog.records)


def test_binary_localization_scores_the_positive_cases_only(trained_2d, tmp_path):
    """Masks on negatives too (as LIDC's benign nodules have): the positive-class maps are scored
    on the positive test cases, the class they explain."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(trained_2d["data"], data)
    masks = np.load(data / "masks.npy")
    masks[:, 2:6, 2:6] = 1  # every image now has a lesion mask
    np.save(data / "masks.npy", masks)
    rows = read_table(data / "manifest.csv")
    for r in rows:
        r["has_mask"] = "1"
    from pipeline.dataset.tables import write_table

    write_table(data / "manifest.csv", rows, tuple(rows[0]))
    task = task_2d(explain={"methods": ["gradcam"]})
    run_explain(task, data_dir=data, model_dir=trained_2d["model"], out_dir=tmp_path / "explain", seed=0)
    ev = run_evaluate(task, data_dir=data, model_dir=trained_2d["model"], explain_dir=tmp_path / "explain",
                      out_dir=tmp_path / "eval", metrics_path=tmp_path / "m.json", seed=0)
    positives = sum(r["split"] == "test" and r["label"] == "opacity" for r in rows)
    negatives = sum(r["split"] == "test" and r["label"] == "normal" for r in rows)
    assert positives and negatives
    assert ev.metrics["test"]["n_localized"] == positives
