"""export (SavedModel, TFLite, ONNX) on the tiny trained 2D and 3D models, and predict from an
export folder: every export computes what the Keras model computes, on real ingested grids."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from pipeline.dataset.tables import read_table
from pipeline.export import (
    TOLERANCES,
    export_model,
    is_export_dir,
    load_export,
    read_manifest,
    verification_grids,
)
from pipeline.export.layout import TFLITE_FILES, ExportLayout
from pipeline.export.tflite import TFLiteRunner
from pipeline.export.verification import keras_runner
from pipeline.predict import NO_HEATMAPS, run_predict
from pipeline.train.card import load_model, read_card
from pipeline.utils.hashing import file_sha256

THRESHOLD = {"rule": "youden", "value": 0.4321, "positive_label": "opacity"}
#: The [onnx] extra (in [test]): the 2D export then also writes and verifies model.onnx.
HAVE_ONNX = all(importlib.util.find_spec(m) is not None for m in ("tf2onnx", "onnxruntime"))


@pytest.fixture(scope="module")
def exported_2d(trained_2d, tmp_path_factory):
    """The 2D model exported through the CLI, verified on rows of images.npy, with a metrics
    file holding a validated threshold."""
    from pipeline.cli import main

    root = tmp_path_factory.mktemp("export2d")
    metrics = root / "metrics.json"
    metrics.write_text(json.dumps({"model": {"backbone": "resnet18"}, "threshold": THRESHOLD,
                                   "tta": {"mode": "flip"}}))
    out = root / "exports" / "tiny2d"
    rc = main(["export", "--model", str(trained_2d["model"]), "--out", str(out), "--data",
               str(trained_2d["data"]), "--metrics", str(metrics), "--samples", "6",
               *(["--onnx"] if HAVE_ONNX else [])])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def exported_3d(trained_3d, tmp_path_factory):
    out = tmp_path_factory.mktemp("export3d") / "tiny3d"
    grids, source = verification_grids((8, 16, 16, 1), data_dir=trained_3d["data"], samples=6)
    export_model(trained_3d["model"], out, grids=grids, grids_source=source)
    return out


@pytest.fixture(params=["2d", "3d"])
def case(request):
    """(trained fixture, export folder) for each kind."""
    kind = request.param
    return request.getfixturevalue(f"trained_{kind}"), request.getfixturevalue(f"exported_{kind}")


def test_export_writes_every_file_with_its_hash(case):
    trained, out = case
    layout = ExportLayout(out)
    assert is_export_dir(out) and not is_export_dir(trained["model"])
    assert (layout.saved_model / "saved_model.pb").is_file()
    assert all((out / name).is_file() for name in TFLITE_FILES.values())
    manifest = read_manifest(out)
    assert (out / "model.onnx").exists() == (HAVE_ONNX and manifest["kind"] == "2d")  # opt-in: 2D only here
    card_file = trained["model"] / "model_card.json"
    assert manifest["model_card"]["sha256"] == file_sha256(card_file) == file_sha256(out / "model_card.json")
    for record in manifest["files"]:
        assert file_sha256(out / record["path"]) == record["sha256"]
    listed = {r["path"] for r in manifest["files"]}
    assert {"model_card.json", "saved_model/saved_model.pb", *TFLITE_FILES.values()} <= listed
    card = read_card(trained["model"])
    assert manifest["labels"] == card["labels"] and manifest["kind"] == card["kind"]
    assert manifest["input"]["shape"] == [None, *card["input_shape"]]
    assert manifest["input"]["dtype"] == "uint8"
    assert manifest["input"]["preprocessing"] == card["ingest_preprocessing"]
    assert manifest["versions"]["tensorflow"] and manifest["versions"]["keras"]
    assert not list(out.parent.glob(".*.tmp"))  # the staging folder is gone


def test_every_export_is_verified_within_its_tolerance(case):
    _, out = case
    manifest = read_manifest(out)
    assert "images.npy" in manifest["verification"]["inputs"] and manifest["verification"]["n_inputs"] == 6
    for name, entry in manifest["exports"].items():
        check = entry["verification"]
        assert check["max_abs_diff"] is not None and check["n_inputs"] == 6, name
        if name in TOLERANCES:
            assert check["within_tolerance"] and check["max_abs_diff"] <= TOLERANCES[name], name
    # 3D pooling is rewritten with builtin ops: no TFLite variant needs the Flex delegate
    assert all(not manifest["exports"][f"tflite_{v}"]["select_tf_ops"] for v in TFLITE_FILES)


def test_exports_give_the_keras_probabilities_on_real_grids(case):
    """Measured again here, independently of the manifest: real ingested grids through the
    SavedModel signature and each TFLite file vs the Keras model fed float32(grid) / 255."""
    trained, out = case
    images = np.load(trained["data"] / "images.npy", mmap_mode="r")
    grids = np.asarray(images[-5:])
    expected = keras_runner(load_model(trained["model"]))(grids)
    np.testing.assert_allclose(load_export(out)(grids), expected, atol=TOLERANCES["saved_model"], rtol=0)
    float32 = TFLiteRunner(ExportLayout(out).tflite("float32"))
    np.testing.assert_allclose(float32(grids), expected, atol=TOLERANCES["tflite_float32"], rtol=0)
    for variant in ("float16", "int8_dynamic"):  # measured, not bounded: only sane here
        got = TFLiteRunner(ExportLayout(out).tflite(variant))(grids)
        assert got.shape == expected.shape and np.all(np.abs(got - expected) < 0.2)
    with pytest.raises(ValueError, match="uint8"):
        load_export(out)(grids.astype(np.float32) / 255)
    if (out / "model.onnx").exists():
        from pipeline.export.onnx_model import onnx_runner

        np.testing.assert_allclose(onnx_runner(out / "model.onnx")(grids), expected, atol=TOLERANCES["onnx"],
                                   rtol=0)


@pytest.mark.skipif(not HAVE_ONNX, reason="the [onnx] extra is not installed")
def test_onnx_is_opt_in_and_verified(exported_2d, exported_3d):
    manifest = read_manifest(exported_2d)
    assert manifest["exports"]["onnx"]["verification"]["within_tolerance"]
    assert manifest["versions"]["tf2onnx"] and "onnx" in {r["path"].split(".")[-1] for r in manifest["files"]}
    assert "onnx" not in read_manifest(exported_3d)["exports"]  # exported without --onnx


def test_threshold_comes_from_the_metrics_file_or_is_null(exported_2d, exported_3d):
    decision = read_manifest(exported_2d)["decision"]
    assert decision["threshold"] == THRESHOLD and decision["tta"] == "flip"
    assert "validation" in decision["note"] and "one view" in decision["note"]
    decision = read_manifest(exported_3d)["decision"]
    assert decision["threshold"] is None and "no validated threshold" in decision["note"]


def test_predict_from_the_export_gives_the_keras_probabilities(trained_2d, exported_2d, tmp_path, caplog):
    raw = trained_2d["raw"]
    inputs = [raw / r["path"] for r in read_table(raw / "labels.csv")[:3]]
    keras_run = run_predict(trained_2d["model"], inputs, tmp_path / "keras", threshold=0.5, tta="none")
    served = run_predict(exported_2d, inputs, tmp_path / "served", threshold=0.5, tta="none")
    assert [r.sample_id for r in served] == [r.sample_id for r in keras_run]
    for a, b in zip(served, keras_run, strict=True):
        assert a.probability == pytest.approx(b.probability, abs=TOLERANCES["saved_model"])
        assert a.predicted_label == b.predicted_label
    assert NO_HEATMAPS in caplog.text
    index = (tmp_path / "served" / "index.html").read_text()
    assert "explanations need the" in index
    page = (tmp_path / "served" / "cases" / f"{served[0].sample_id}.html").read_text()
    assert "No heatmap was computed for this case" in page


def test_predict_from_the_export_uses_its_recorded_threshold_and_tta(trained_2d, exported_2d, tmp_path):
    raw = trained_2d["raw"]
    path = raw / read_table(raw / "labels.csv")[0]["path"]
    (result,) = run_predict(exported_2d, [path], tmp_path / "out", metrics_path=tmp_path / "none.json")
    assert result.predicted_label == ("opacity" if result.probability >= THRESHOLD["value"] else "normal")
    index = (tmp_path / "out" / "index.html").read_text()
    assert "0.432" in index and "chosen on the validation split" in index and "2 views" in index


def test_a_changed_export_file_is_refused(exported_2d, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(exported_2d, copy)
    index = copy / "saved_model" / "variables" / "variables.index"
    index.write_bytes(index.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="changed since export"):
        load_export(copy)


def test_a_folder_holding_something_else_is_not_replaced(trained_2d, tmp_path):
    out = tmp_path / "exports" / "tiny2d"  # where export-dicom may have written overlays
    out.mkdir(parents=True)
    (out / "overlay.dcm").write_bytes(b"DICM")
    with pytest.raises(ValueError, match="refusing to replace"):
        export_model(trained_2d["model"], out)
    assert (out / "overlay.dcm").read_bytes() == b"DICM"


def test_every_export_reports_its_test_auroc_and_change(trained_2d, exported_2d, exported_3d):
    """--data with the default --accuracy-split test: each export's AUROC on the labelled test
    rows, set beside the Keras model's (measured again here with scikit-learn)."""
    from sklearn.metrics import roc_auc_score

    accuracy = read_manifest(exported_2d)["accuracy"]
    rows = [r for r in read_table(trained_2d["data"] / "manifest.csv") if r["split"] == "test"]
    y = np.array([r["label"] == "opacity" for r in rows])
    assert accuracy["split"] == "test" and accuracy["n_cases"] == len(rows) and 0 < y.sum() < len(y)
    images = np.load(trained_2d["data"] / "images.npy", mmap_mode="r")
    grids = np.stack([images[int(r["index"])] for r in rows])
    expected = roc_auc_score(y, keras_runner(load_model(trained_2d["model"]))(grids)[:, -1])
    assert accuracy["keras"]["auroc"] == pytest.approx(expected, abs=1e-6)
    exports = accuracy["exports"]
    assert set(exports) == set(read_manifest(exported_2d)["exports"])
    for name in ("saved_model", "tflite_float32"):  # the same function: the same ranking
        assert exports[name]["auroc_change"] == pytest.approx(0.0, abs=1e-6)
        assert exports[name]["decisions_changed"] == 0
    for name, entry in exports.items():  # float16 / int8: measured and recorded
        assert entry["auroc"] == pytest.approx(accuracy["keras"]["auroc"] + entry["auroc_change"], abs=2e-6)
        assert 0 <= entry["decisions_changed"] <= len(rows), name
    assert "accuracy" not in read_manifest(exported_3d)  # exported without labelled data
