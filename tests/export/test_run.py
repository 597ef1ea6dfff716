"""export_model on a tiny model folder: random verification grids by default, and a failed
verification writes nothing (the previous export stays whole)."""

from __future__ import annotations

import pytest

from pipeline.export import ExportMismatchError, export_model, read_manifest
from pipeline.train.card import write_card


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 1), name="image")
    x = keras.layers.Conv2D(2, 3, padding="same")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="predictions")(x))
    folder = tmp_path_factory.mktemp("models") / "tiny"
    folder.mkdir()
    model.save(folder / "model.keras")
    write_card(folder, {"task": "tiny", "kind": "2d", "problem": "binary", "labels": ["normal", "opacity"],
                        "backbone": "tiny", "input_shape": [12, 12, 1], "ingest_preprocessing": {}})
    return folder


def test_random_grids_stand_in_without_inputs_and_a_failed_check_writes_nothing(model_dir, tmp_path,
                                                                                monkeypatch):
    out = tmp_path / "serving" / "tiny"
    manifest = export_model(model_dir, out, seed=3)
    assert manifest["verification"]["inputs"].startswith("8 random uint8 grids (seed 3)")
    decision = manifest["decision"]
    assert decision["threshold"] is None and "no validated threshold" in decision["note"]
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def fail(results, *args, **kwargs):
        raise ExportMismatchError("tflite_float32: max |diff| 0.5 > 0.001")

    monkeypatch.setattr("pipeline.export.verification.check_tolerances", fail)
    with pytest.raises(ExportMismatchError):
        export_model(model_dir, out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and read_manifest(out) == manifest
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]  # no staging folder left
