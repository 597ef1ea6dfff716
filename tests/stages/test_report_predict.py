"""report, export-dicom and predict on tiny trained models: pages, escaping, full resolution, PACS
export, new-study prediction."""

from __future__ import annotations

import re

import numpy as np
import pydicom
import pytest

from pipeline.dataset.tables import read_table
from pipeline.evaluate.run import run_evaluate
from pipeline.explain.run import run_explain
from pipeline.predict import run_predict
from pipeline.preprocess.geometry import PadResize, geometry_from_json
from pipeline.report.run import export_dicom, run_report
from tests.builders import PHI_STRINGS, make_mixed_2d_folder
from tests.stages.conftest import task_2d, task_3d


def _pipeline(trained, task, root):
    run_explain(task, data_dir=trained["data"], model_dir=trained["model"], out_dir=root / "explain", seed=0)
    run_evaluate(task, data_dir=trained["data"], model_dir=trained["model"], explain_dir=root / "explain",
                 out_dir=root / "eval", metrics_path=root / "metrics.json", seed=0)
    return run_report(task, data_dir=trained["data"], source_dir=trained["raw"], model_dir=trained["model"],
                      explain_dir=root / "explain", eval_dir=root / "eval",
                      metrics_path=root / "metrics.json", out_dir=root / "report")


@pytest.fixture(scope="module")
def report_2d(trained_2d, tmp_path_factory):
    root = tmp_path_factory.mktemp("report2d")
    return _pipeline(trained_2d, task_2d(), root), root


def test_report_has_every_test_case_at_full_resolution(trained_2d, report_2d):
    index, root = report_2d
    manifest = read_table(trained_2d["data"] / "manifest.csv")
    test_ids = {r["sample_id"] for r in manifest if r["split"] == "test"}
    pages = {p.stem for p in (root / "report" / "cases").glob("*.html")}
    assert pages == test_ids
    html = index.read_text()
    for sid in test_ids:
        assert f"cases/{sid}.html" in html
    assert "chosen on the validation split" in html and "Research use only" in html
    heatmaps = html.split('id="localization"')[1]  # heatmap measures: own section, with chance levels
    assert "Heatmap share inside lesions" in heatmaps and "Chance level" in heatmaps
    measures, counts = html.split("Counts and settings behind these figures")  # counts: own table, no CI
    assert "Heatmap share inside lesions" not in measures and ">Cases with an annotated lesion" in counts
    # the builder's images are 64x48 (not the 32x32 model grid): full resolution is shown
    page = (root / "report" / "cases" / f"{sorted(test_ids)[0]}.html").read_text()
    assert "model input resolution" not in page


def test_report_has_no_phi(report_2d):
    _, root = report_2d
    for path in (root / "report").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in PHI_STRINGS:
                assert value.encode() not in data, f"{value!r} in {path.name}"


def test_report_falls_back_to_model_grid_without_source(trained_2d, report_2d, tmp_path):
    _, root = report_2d
    run_report(task_2d(), data_dir=trained_2d["data"], source_dir=None, model_dir=trained_2d["model"],
               explain_dir=root / "explain", eval_dir=root / "eval", metrics_path=root / "metrics.json",
               out_dir=tmp_path / "r")
    page = next((tmp_path / "r" / "cases").glob("*.html")).read_text()
    assert "model input resolution" in page


@pytest.mark.parametrize(("scale", "pad_top", "pad_left", "shape"), [
    (0.5, 0, 4, (64, 48)), (0.25, 8, 0, (64, 128)), (1.0, 0, 0, (32, 32))])
def test_typed_geometry_inverts_ingest_resize(scale, pad_top, pad_left, shape):
    from pipeline.preprocess.image import resize_with_pad

    mask = np.zeros(shape, np.uint8)
    mask[shape[0] // 4: shape[0] // 2, shape[1] // 3: shape[1] // 2] = 1
    grid, loose = resize_with_pad(mask, (32, 32), mode="mask")
    geometry = PadResize.fit(shape, (32, 32))
    assert (geometry.scale, geometry.pad_top, geometry.pad_left) == (pytest.approx(scale), pad_top, pad_left)
    assert loose == {"scale": geometry.scale, "pad_top": pad_top, "pad_left": pad_left}  # one computation
    again = geometry_from_json(geometry.to_json())  # as the manifest stores it
    assert again == geometry
    back = again.to_source(grid, nearest=True)
    assert back.shape == shape
    inter = np.logical_and(back, mask).sum()
    assert inter / np.logical_or(back, mask).sum() > 0.7


def test_export_dicom_joins_the_source_study(trained_2d, report_2d, tmp_path):
    _, root = report_2d
    n = export_dicom(task_2d(), data_dir=trained_2d["data"], source_dir=trained_2d["raw"],
                     explain_dir=root / "explain", out_dir=tmp_path / "exports",
                     patient_orientation=("L", "F"))
    files = sorted((tmp_path / "exports").glob("*.dcm"))
    assert n == len(files) > 0
    manifest = {r["sample_id"]: r for r in read_table(trained_2d["data"] / "manifest.csv")}
    for f in files:
        assert re.fullmatch(r"S[0-9a-f]+\.dcm", f.name)  # named by pseudonym, never by PHI
        sc = pydicom.dcmread(f)
        src = pydicom.dcmread(trained_2d["raw"] / manifest[f.stem]["source_path"])
        assert sc.StudyInstanceUID == src.StudyInstanceUID
        assert sc.SeriesInstanceUID != src.SeriesInstanceUID
        assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
        assert sc.pixel_array.shape == (src.Rows, src.Columns, 3)
        refs = [item.ReferencedSOPInstanceUID for seq in ("SourceImageSequence", "ReferencedImageSequence")
                for item in sc.get(seq, [])]
        refs += [inst.ReferencedSOPInstanceUID for s in sc.get("ReferencedSeriesSequence", [])
                 for inst in s.ReferencedInstanceSequence]
        assert src.SOPInstanceUID in refs


def test_export_without_orientation_skips_with_reason(trained_2d, report_2d, tmp_path, caplog):
    _, root = report_2d
    n = export_dicom(task_2d(), data_dir=trained_2d["data"], source_dir=trained_2d["raw"],
                     explain_dir=root / "explain", out_dir=tmp_path / "exports")
    assert n == 0 and "orientation" in caplog.text.lower()


def test_predict_new_studies(trained_2d, tmp_path):
    raw = trained_2d["raw"]
    rows = read_table(raw / "labels.csv")
    junk = tmp_path / "notes.txt"  # not an image: rejected with its reason, by position
    junk.write_text("not a DICOM file")
    inputs = [raw / rows[0]["path"], raw / rows[1]["path"], junk]
    results = run_predict(trained_2d["model"], inputs, tmp_path / "out", threshold=0.4)
    assert len(results) == 2
    for r in results:
        assert r.predicted_label == ("opacity" if r.probability >= 0.4 else "normal")
        assert re.fullmatch(r"S[0-9a-f]{16}", r.sample_id)
        page = (tmp_path / "out" / "cases" / f"{r.sample_id}.html").read_text()
        assert "drove the model" in page and "not where" in page
    rejected = read_table(tmp_path / "out" / "rejected.csv")
    assert [r["input"] for r in rejected] == ["#3"] and rejected[0]["reason"]
    preds = read_table(tmp_path / "out" / "predictions.csv")
    assert [p["sample_id"] for p in preds] == [r.sample_id for r in results]
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            for value in PHI_STRINGS:
                assert value.encode() not in path.read_bytes()
            assert rows[0]["path"].split("/")[-1].encode() not in path.read_bytes()  # no input file names


def test_report_and_predict_on_png_jpeg_tiff_sources(trained_2d, tmp_path):
    """Image-file sources: full-resolution pages that say what the file was (no DICOM header) and
    show the labels.csv subgroup attributes; predict reads PNG/JPEG/TIFF like DICOM."""
    from pipeline.ingest import run_ingest

    folder = make_mixed_2d_folder(tmp_path / "raw", n_patients=16)
    task = task_2d(ingest={"window": "auto"})
    data = tmp_path / "interim"
    run_ingest(task, source=folder, out_dir=data, seed=0, salt="s", workers=1)
    index = _pipeline({"data": data, "model": trained_2d["model"], "raw": folder}, task, tmp_path)
    manifest = {r["sample_id"]: r for r in read_table(data / "manifest.csv")}
    pages = sorted((index.parent / "cases").glob("*.html"))
    formats = set()
    for page in pages:
        html, row = page.read_text(), manifest[page.stem]
        formats.add(row["format"])
        assert "model input resolution" not in html
        assert f"<dt>view (labels.csv)</dt><dd>{row['attr_view']}</dd>" in html
        if row["format"] == "dicom":
            assert "no DICOM header" not in html
        else:
            assert f"<dd>{row['format'].upper()} (no DICOM header)</dd>" in html
            assert "as stored in the file" in html
        assert "SECRET" not in html
    assert formats >= {"png", "jpeg"}
    inputs = [folder / "img" / name for name in ("p0_1.png", "p1_1.jpg", "p2_0.tif", "trunc.jpg")]
    results = run_predict(trained_2d["model"], inputs, tmp_path / "pred", threshold=0.5)
    assert len(results) == 3
    rejected = read_table(tmp_path / "pred" / "rejected.csv")
    assert [r["input"] for r in rejected] == ["#4"] and "truncated" in rejected[0]["reason"]
    for r in results:
        page = (tmp_path / "pred" / "cases" / f"{r.sample_id}.html").read_text()
        assert "(no DICOM header)" in page


def test_predict_same_input_same_id_and_output(trained_2d, tmp_path):
    raw = trained_2d["raw"]
    path = raw / read_table(raw / "labels.csv")[0]["path"]
    a = run_predict(trained_2d["model"], [path], tmp_path / "a", threshold=0.5)
    b = run_predict(trained_2d["model"], [path], tmp_path / "b", threshold=0.5)
    assert a == b


def test_predict_nothing_readable_fails_clearly(trained_2d, tmp_path):
    with pytest.raises(ValueError, match="none of the 1 input"):
        run_predict(trained_2d["model"], [tmp_path / "missing.dcm"], tmp_path / "out", threshold=0.5)


def _volume_data(page):
    """The page's volume: the windowed image (base levels in HU through the page's window), heatmap
    and mask."""
    import json

    from pipeline.report.imaging import unpack_png

    block = re.search(r'<script type="application/json" id="volume-data">(.+?)</script>', page, re.S).group(1)
    data = json.loads(block)
    unpack = lambda s: None if s is None else unpack_png(s, tuple(data["shape"]))  # noqa: E731
    (center, width), hu = data["window"], data["offset"] + data["scale"] * unpack(data["base"]).astype(float)
    image = np.rint(np.clip((hu - (center - width / 2)) / width, 0, 1) * 255).astype(np.uint8)
    return data, image, unpack(data["heat"]), unpack(data.get("mask"))


def test_3d_report_and_predict(trained_3d, tmp_path):
    """3D pages show the source volume at its own voxel size (canonical orientation), with the map
    and the lesion mask mapped back onto it from the model's grid."""
    from pipeline.io.nifti import read_nifti

    index = _pipeline(trained_3d, task_3d(), tmp_path)
    assert index.is_file()
    manifest = read_table(trained_3d["data"] / "manifest.csv")
    raw = {r["path"]: r for r in read_table(trained_3d["raw"] / "labels.csv")}
    nodules = [r for r in manifest if r["split"] == "test" and r["has_mask"] == "1"]
    assert nodules
    for row in nodules:
        page = (tmp_path / "report" / "cases" / f"{row['sample_id']}.html").read_text()
        data, image, heat, mask = _volume_data(page)
        truth, meta = read_nifti(trained_3d["raw"] / raw[row["source_path"]]["mask"])
        source, _ = read_nifti(trained_3d["raw"] / row["source_path"])
        assert data["shape"] == list(source.shape) == [20, 40, 40]  # not the 8x16x16 model grid
        assert data["spacing"] == pytest.approx(meta["spacing"]) == [4.0, 2.5, 2.5]
        np.testing.assert_array_equal(image > 127, source > -200)  # the source voxels, HU-windowed
        truth = truth > 0.5
        assert np.logical_and(mask > 0, truth).sum() / np.logical_or(mask > 0, truth).sum() > 0.4
        assert heat is None or heat.shape == truth.shape
    nifti = sorted(trained_3d["raw"].glob("*.nii.gz"))[0]
    results = run_predict(trained_3d["model"], [nifti], tmp_path / "pred", threshold=0.5)
    assert len(results) == 1 and results[0].predicted_label in ("normal", "nodule")


HOSTILE_NAME = "<script>alert('name')</script>^EVIL"
HOSTILE_DESCRIPTION = "<script>alert('desc')</script> <img src=x onerror=alert(1)>"


def _hostile_copy(raw, dest, rel):
    """``raw`` copied to ``dest`` with markup in the PatientName and SeriesDescription of ``rel``."""
    import shutil

    shutil.copytree(raw, dest)
    ds = pydicom.dcmread(dest / rel)
    ds.PatientName = HOSTILE_NAME
    ds.SeriesDescription = HOSTILE_DESCRIPTION
    ds.save_as(dest / rel)
    return dest / rel


def _assert_inert(page: str, *, description_shown: bool) -> None:
    assert "<script>alert" not in page and "<img src=x" not in page  # text, never markup
    assert "alert('name')" not in page and "alert(&#39;name&#39;)" not in page  # PatientName: never shown
    shown = "&lt;script&gt;alert(&#39;desc&#39;)&lt;/script&gt;" in page
    assert shown == description_shown


@pytest.mark.parametrize("free_text", [False, True])
def test_report_escapes_hostile_dicom_strings(trained_2d, report_2d, tmp_path, free_text):
    """Markup in a real DICOM's PatientName/SeriesDescription never becomes markup on a page;
    free text (SeriesDescription) is shown only when report.show_free_text asks for it."""
    _, root = report_2d
    manifest = read_table(trained_2d["data"] / "manifest.csv")
    case = next(r for r in manifest if r["split"] == "test")
    raw = tmp_path / "raw"
    _hostile_copy(trained_2d["raw"], raw, case["source_path"])
    run_report(task_2d(report={"show_free_text": free_text}), data_dir=trained_2d["data"], source_dir=raw,
               model_dir=trained_2d["model"], explain_dir=root / "explain", eval_dir=root / "eval",
               metrics_path=root / "metrics.json", out_dir=tmp_path / "r")
    page = (tmp_path / "r" / "cases" / f"{case['sample_id']}.html").read_text()
    assert "model input resolution" not in page  # the hostile file itself was read and shown
    _assert_inert(page, description_shown=free_text)
    for path in (tmp_path / "r").rglob("*"):
        if path.is_file():
            assert b"<script>alert" not in path.read_bytes()


def test_predict_cli_on_a_hostile_dicom_uses_the_pipeline_threshold_and_layer(trained_2d, report_2d,
                                                                              tmp_path, caplog):
    """`python -m pipeline predict` (the CLI, not only the function): the validated threshold and
    the explain stage's target layer come from metrics/<task>.json, and header markup is inert."""
    import json
    import logging

    from pipeline.cli import main
    from pipeline.explain import Explainer
    from pipeline.train.card import load_model

    _, root = report_2d
    rows = read_table(trained_2d["raw"] / "labels.csv")
    hostile = _hostile_copy(trained_2d["raw"], tmp_path / "raw", rows[0]["path"])
    metrics = json.loads((root / "metrics.json").read_text())
    # Record a layer other than what plain `auto` resolves to, so following it is observable.
    model = load_model(trained_2d["model"])
    auto = Explainer(model, layer="auto").layer
    other = Explainer(model, layer="auto:8").layer
    assert other != auto
    metrics["explain"]["layer"] = other
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    with caplog.at_level(logging.INFO, logger="pipeline"):
        rc = main(["predict", "--model", str(trained_2d["model"]), "--input", str(hostile),
                   "--out", str(tmp_path / "out"), "--metrics", str(tmp_path / "metrics.json"),
                   "--show-free-text"])
    assert rc == 0
    assert f"heatmaps from layer {other}" in caplog.text
    (pred,) = read_table(tmp_path / "out" / "predictions.csv")
    threshold = metrics["threshold"]["value"]
    assert pred["predicted_label"] == ("opacity" if float(pred["probability"]) >= threshold else "normal")
    page = (tmp_path / "out" / "cases" / f"{pred['sample_id']}.html").read_text()
    assert "chosen on the validation split" in (tmp_path / "out" / "index.html").read_text()
    _assert_inert(page, description_shown=True)
    assert rc == main(["predict", "--model", str(trained_2d["model"]), "--input", str(hostile),
                       "--out", str(tmp_path / "out2"), "--metrics", str(tmp_path / "metrics.json")])
    page = (tmp_path / "out2" / "cases" / f"{pred['sample_id']}.html").read_text()
    _assert_inert(page, description_shown=False)  # free text is opt-in


def test_predict_ignores_metrics_of_another_model(trained_2d, report_2d, tmp_path, caplog):
    import json

    _, root = report_2d
    metrics = json.loads((root / "metrics.json").read_text())
    metrics["model"]["backbone"] = "densenet121"
    metrics["threshold"]["value"] = 0.999
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    raw = trained_2d["raw"]
    run_predict(trained_2d["model"], [raw / read_table(raw / "labels.csv")[0]["path"]], tmp_path / "out",
                metrics_path=tmp_path / "metrics.json")
    assert "not used" in caplog.text
    assert "0.5 is used" in (tmp_path / "out" / "index.html").read_text()


def test_predict_uses_the_recorded_tta_and_the_cli_overrides_it(trained_2d, tmp_path, caplog):
    """The evaluate stage's TTA mode (metrics/<task>.json) is what predict averages over, since the
    threshold was chosen on those probabilities; `--tta` overrides it, with a warning."""
    import json
    import logging

    from pipeline.cli import main
    from pipeline.evaluate.tta import View, apply_view
    from pipeline.predict.worker import StudyJob, prepare
    from pipeline.train.card import card_ingest_params, load_model, read_card

    raw = trained_2d["raw"]
    path = raw / read_table(raw / "labels.csv")[0]["path"]
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"threshold": {"value": 0.5}, "tta": {"mode": "flip", "views": 2}}))
    card, model = read_card(trained_2d["model"]), load_model(trained_2d["model"])
    prepared = prepare(StudyJob(0, path, card["kind"], card_ingest_params(card), keep_source=False))
    x = prepared.sample.image[None].astype(np.float32) / np.float32(255)
    p = [float(np.asarray(model.predict_on_batch(v))[0, 0]) for v in (x, apply_view(x, View(flip=True)))]
    (recorded,) = run_predict(trained_2d["model"], [path], tmp_path / "a", metrics_path=metrics)
    assert recorded.probability == pytest.approx((p[0] + p[1]) / 2, abs=1e-6)
    assert "(test-time augmentation: flip)" in (tmp_path / "a" / "index.html").read_text()
    with caplog.at_level(logging.INFO, logger="pipeline"):
        rc = main(["predict", "--model", str(trained_2d["model"]), "--input", str(path),
                   "--out", str(tmp_path / "b"), "--metrics", str(metrics), "--tta", "none"])
    assert rc == 0
    assert "test-time augmentation none (1 view(s))" in caplog.text and "overrides" in caplog.text
    (row,) = read_table(tmp_path / "b" / "predictions.csv")
    assert float(row["probability"]) == pytest.approx(p[0], abs=1e-6)
    assert "test-time augmentation:" not in (tmp_path / "b" / "index.html").read_text()
    with pytest.raises(ValueError, match=r"tta must be one of \[.*\]. Received: 'mirror'"):
        run_predict(trained_2d["model"], [path], tmp_path / "c", metrics_path=metrics, tta="mirror")
    with pytest.raises(SystemExit):  # argparse lists the choices
        main(["predict", "--model", str(trained_2d["model"]), "--input", str(path),
              "--out", str(tmp_path / "d"), "--tta", "mirror"])


def test_predict_dicom_series_folder_agrees_with_nifti(trained_3d, tmp_path):
    """The same volume as a DICOM series folder (shuffled file names, reversed InstanceNumber) and
    as NIfTI gets the same prediction: both go through the same canonical geometry."""
    import nibabel as nib

    from tests.io.conftest import write_series

    nifti = sorted(trained_3d["raw"].glob("v*.nii.gz"))[1]  # a nodule case
    img = nib.load(nifti)
    write_series(tmp_path / "series", np.asarray(img.dataobj), img.affine)
    results = run_predict(trained_3d["model"], [tmp_path / "series", nifti], tmp_path / "pred", threshold=0.5)
    assert len(results) == 2 and results[0].sample_id != results[1].sample_id
    assert results[0].probability == pytest.approx(results[1].probability, abs=0.02)
    assert results[0].predicted_label == results[1].predicted_label
    assert read_table(tmp_path / "pred" / "rejected.csv") == []


def test_report_discloses_every_method_that_fails_the_deletion_check(trained_2d, report_2d, tmp_path):
    import json
    import shutil

    _, root = report_2d
    shutil.copytree(root / "explain", tmp_path / "explain")
    path = tmp_path / "explain" / "faithfulness.json"
    faithfulness = json.loads(path.read_text())
    faithfulness["gradcam"]["flag"], faithfulness["gradcam++"]["flag"] = False, True
    path.write_text(json.dumps(faithfulness))
    index = run_report(task_2d(), data_dir=trained_2d["data"], source_dir=trained_2d["raw"],
                       model_dir=trained_2d["model"], explain_dir=tmp_path / "explain",
                       eval_dir=root / "eval", metrics_path=root / "metrics.json", out_dir=tmp_path / "r")
    html = index.read_text()
    assert "Grad-CAM++ (computed for comparison, not shown here) did not pass" in html
    assert "Warning: the Grad-CAM maps did not pass" not in html


def test_report_notes_say_when_probabilities_are_averaged_over_views():
    from pipeline.report.notes import report_notes

    metrics = {"threshold": {"rule": "youden"}, "test": {"n": 10, "n_patients": 5}}
    plain = report_notes({**metrics, "tta": {"mode": "none", "views": 1}}, {}, "gradcam")
    assert not any("test-time augmentation" in n for n in plain)
    tta = report_notes({**metrics, "tta": {"mode": "flip_shift", "views": 10}}, {}, "gradcam")
    assert any("mean over 10 views" in n and "'flip_shift'" in n and "original image" in n for n in tta)


def test_report_notes_mark_exact_intervals_and_headline_carries_the_deletion_check():
    from pipeline.report.inputs import Decision
    from pipeline.report.notes import headline, report_notes

    metrics = {"threshold": {"rule": "youden", "value": 0.4},
               "test": {"n": 10, "n_patients": 5, "specificity_ci_method": "clopper-pearson"}}
    notes = report_notes(metrics, {}, "gradcam")
    assert any("marked † are exact (Clopper-Pearson)" in n for n in notes)
    plain = report_notes({**metrics, "test": {"n": 10, "specificity_ci_method": "bootstrap"}}, {}, "gradcam")
    assert not any("Clopper-Pearson" in n for n in plain)
    flat = headline(metrics, Decision(task_2d(), metrics).threshold, {"win_rate": 0.4, "flag": True,
                                                                       "fraction": 0.1})
    assert flat["deletion_win_rate"] == 0.4 and flat["deletion_flag"] is True and flat["threshold"] == 0.4
