"""The ingest stage end to end on small folders made here (2D DICOM, 3D NIfTI)."""

from __future__ import annotations

import csv
import multiprocessing as mp
import subprocess
import sys
import threading
import types
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import TaskParams
from pipeline.dataset.store import open_array
from pipeline.dataset.tables import read_table
from pipeline.ingest import QuarantineLimitExceeded, run_ingest
from pipeline.ingest import pool as pool_module
from pipeline.ingest import run as stage_module
from tests.builders import PHI_STRINGS, make_2d_folder, make_3d_folder, make_mixed_2d_folder

ROOT = Path(__file__).resolve().parents[2]


def task_2d(**ingest) -> TaskParams:
    base = {"image_size": [32, 32], "window": "percentile", "max_quarantine_fraction": 0.2}
    return TaskParams.model_validate({
        "name": "t2", "kind": "2d", "labels": ["normal", "opacity"],
        "data": {"source": "unused"}, "ingest": {**base, **ingest}})


def run(folder: Path, out: Path, task: TaskParams | None = None, workers: int = 1):
    return run_ingest(task or task_2d(), source=folder, out_dir=out, seed=1, salt="pepper",
                      workers=workers)


@pytest.fixture(scope="module")
def folder_2d(tmp_path_factory) -> Path:
    return make_2d_folder(tmp_path_factory.mktemp("ds2d"))


@pytest.fixture(scope="module")
def ingested_2d(folder_2d, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out2d")
    run(folder_2d, out)
    return out


def test_every_input_is_accounted_for(ingested_2d, folder_2d):
    manifest = read_table(ingested_2d / "manifest.csv")
    quarantine = read_table(ingested_2d / "quarantine.csv")
    with open(folder_2d / "labels.csv") as fh:
        n_rows = sum(1 for _ in csv.DictReader(fh))
    row_q = [q for q in quarantine if q["scope"] == "row"]
    assert len(manifest) + len(row_q) == n_rows
    assert {q["source_path"]: q["code"] for q in quarantine} == {
        "img/bad.dcm": "truncated", "img/nowhere.dcm": "missing_file", "img/stray.txt": "unlisted"}
    images = open_array(ingested_2d / "images.npy")
    masks = open_array(ingested_2d / "masks.npy")
    assert images.shape == masks.shape == (len(manifest), 32, 32, 1) and images.dtype == np.uint8
    assert sorted(int(m["index"]) for m in manifest) == list(range(len(manifest)))
    assert list(manifest[0])[:4] == ["sample_id", "split", "label", "source_path"]
    assert list(quarantine[0])[:2] == ["source_path", "reason"]


def test_masks_stay_aligned_with_images(ingested_2d):
    manifest = read_table(ingested_2d / "manifest.csv")
    images = open_array(ingested_2d / "images.npy")
    masks = open_array(ingested_2d / "masks.npy")
    for m in manifest:
        i = int(m["index"])
        if m["label"] == "opacity":
            assert m["has_mask"] == "1" and masks[i].sum() > 0
            # the lesion is white (dense) whatever the photometric interpretation
            assert images[i][masks[i] == 1].mean() > images[i][masks[i] == 0].mean() + 60
        else:
            assert m["has_mask"] == "0" and masks[i].sum() == 0


def test_no_patient_in_two_splits(ingested_2d):
    seen = defaultdict(set)
    for m in read_table(ingested_2d / "manifest.csv"):
        seen[m["patient"]].add(m["split"])
    assert len(seen) == 12 and all(len(s) == 1 for s in seen.values())
    assert {s for v in seen.values() for s in v} == {"train", "val", "test"}


def test_no_phi_anywhere_in_outputs(ingested_2d, caplog):
    for path in ingested_2d.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in PHI_STRINGS:
                assert value.encode() not in data, (path.name, value)
            assert value not in path.name


def test_patients_come_from_dicom_patient_id_pseudonymised(ingested_2d):
    manifest = read_table(ingested_2d / "manifest.csv")
    by_patient = defaultdict(list)
    for m in manifest:
        by_patient[m["patient"]].append(m["source_path"])
    # both images of a patient share the pseudonym (from PatientID, not the path)
    assert all(len(v) == 2 and v[0].split("_")[0] == v[1].split("_")[0] for v in by_patient.values())
    assert all(p.startswith("P") and len(p) == 17 for p in by_patient)


def run_fresh(folder: Path, out: Path, *, workers: int = 2) -> str:
    """Ingest as the CLI does, in a fresh interpreter (no TensorFlow, no test-runner threads,
    so workers fork); returns the start method the stage chose."""
    code = ("import sys\nfrom pathlib import Path\nfrom pipeline.ingest import pool, run_ingest\n"
            "from tests.ingest.test_stage import task_2d\n"
            "print(pool.start_context().get_start_method())\n"
            f"run_ingest(task_2d(), source=Path({str(folder)!r}), out_dir=Path({str(out)!r}), "
            f"seed=1, salt='pepper', workers={workers})\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()[0]


@pytest.fixture(params=["fork", "spawn"])
def ingest_2_workers(request, monkeypatch):
    """Both worker start methods. Fork runs in a fresh interpreter, as in production: forking
    this test process (TensorFlow and pytest-xdist threads) could deadlock the children."""
    if request.param == "fork":
        def go(folder: Path, out: Path) -> None:
            assert run_fresh(folder, out) == "fork"
    else:
        monkeypatch.setattr(pool_module, "start_context", lambda: mp.get_context("spawn"))

        def go(folder: Path, out: Path) -> None:
            run(folder, out, workers=2)
    return go


def test_output_is_identical_for_1_and_2_workers(folder_2d, ingested_2d, tmp_path, ingest_2_workers):
    ingest_2_workers(folder_2d, tmp_path)
    for name in ("images.npy", "masks.npy", "manifest.csv", "quarantine.csv", "dataset.json"):
        assert (tmp_path / name).read_bytes() == (ingested_2d / name).read_bytes(), name


def test_quarantine_limit_fails_loudly_after_writing_tables(folder_2d, tmp_path):
    with pytest.raises(QuarantineLimitExceeded) as info:
        run(folder_2d, tmp_path, task_2d(max_quarantine_fraction=0.01))
    assert "2 of 26 labels.csv rows quarantined" in str(info.value)
    assert "max_quarantine_fraction=0.01" in str(info.value)
    assert len(read_table(tmp_path / "quarantine.csv")) == 3


def test_redact_paths_hides_file_names(folder_2d, tmp_path):
    run(folder_2d, tmp_path, task_2d(redact_paths=True))
    for table in ("manifest.csv", "quarantine.csv"):
        text = (tmp_path / table).read_text()
        assert "p0_0" not in text and "bad.dcm" not in text and "path:" in text


def test_explicit_split_column_is_respected(tmp_path):
    folder = make_2d_folder(tmp_path / "in", n_patients=6, broken=False)
    lines = (folder / "labels.csv").read_text().splitlines()
    out = ["path,label,mask,split"] + [f"{line},{'test' if i < 4 else 'train'}"
                                       for i, line in enumerate(lines[1:])]
    (folder / "labels.csv").write_text("\n".join(out) + "\n")
    run(folder, tmp_path / "out")
    manifest = read_table(tmp_path / "out" / "manifest.csv")
    assert [m["split"] for m in manifest] == ["test"] * 4 + ["train"] * 8


# --- 3D ----------------------------------------------------------------------------------

def test_3d_nifti_ingest(tmp_path):
    folder = make_3d_folder(tmp_path / "in")
    task = TaskParams.model_validate({
        "name": "t3", "kind": "3d", "labels": ["normal", "nodule"], "data": {"source": "x"},
        "ingest": {"volume_shape": [16, 24, 24], "target_spacing": [4.0, 4.0, 4.0],
                   "hu_window": [0, 800], "min_slices": 4}})
    summary = run_ingest(task, source=folder, out_dir=tmp_path / "out", seed=0, salt="s", workers=2)
    assert summary.samples == 8 and summary.quarantined_rows == 0
    images = open_array(tmp_path / "out" / "images.npy")
    masks = open_array(tmp_path / "out" / "masks.npy")
    assert images.shape == (8, 16, 24, 24, 1)
    manifest = read_table(tmp_path / "out" / "manifest.csv")
    for m in manifest:
        i = int(m["index"])
        if m["label"] == "nodule":
            assert masks[i].sum() > 0
            assert images[i][masks[i] == 1].mean() > images[i][masks[i] == 0].mean() + 50
    seen = defaultdict(set)
    for m in manifest:
        seen[m["patient"]].add(m["split"])
    assert all(len(s) == 1 for s in seen.values())


def test_a_crashing_decoder_is_isolated_and_quarantined(folder_2d, ingested_2d, tmp_path, monkeypatch,
                                                        ingest_2_workers):
    """A worker process that dies (e.g. a C codec segfault) must not hang or kill the stage."""
    monkeypatch.setenv("MEDVISION_TEST_CRASH_ON", "p3_1.dcm")
    ingest_2_workers(folder_2d, tmp_path)
    quarantine = {q["source_path"]: q for q in read_table(tmp_path / "quarantine.csv")}
    assert quarantine["img/p3_1.dcm"]["code"] == "crash"
    manifest = read_table(tmp_path / "manifest.csv")
    assert len(manifest) == len(read_table(ingested_2d / "manifest.csv")) - 1


def test_workers_fork_only_without_tensorflow_or_threads(monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    # this process's own threads only: a thread pool that an earlier test file in this xdist
    # worker left idle (daemon threads) is not what is being tested
    ours = [threading.main_thread()]
    monkeypatch.setattr(threading, "enumerate", lambda: list(ours))
    assert pool_module.start_context().get_start_method() == "fork"
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    ours.append(worker)
    try:  # a live thread may hold a lock the child would inherit locked
        assert pool_module.start_context().get_start_method() == "spawn"
    finally:
        stop.set()
        worker.join()
    monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))
    assert pool_module.start_context().get_start_method() == "spawn"


def test_mixed_dicom_png_jpeg_tiff_folder(tmp_path):
    """Public archives mix formats: every file is read by content, windowed by its own rule, kept
    with its subgroup attributes, and every broken file is quarantined with its own code."""
    folder = make_mixed_2d_folder(tmp_path / "mixed")
    out = tmp_path / "out"
    summary = run(folder, out, task_2d(window="auto", max_quarantine_fraction=0.2))
    manifest = read_table(out / "manifest.csv")
    quarantine = {q["source_path"]: q for q in read_table(out / "quarantine.csv")}
    assert summary.samples == 20 and summary.quarantined_rows == 3
    assert {p: q["code"] for p, q in quarantine.items()} == {
        "img/trunc.jpg": "truncated", "img/empty.png": "empty", "img/photo.png": "colour",
        "labels.csv": "phi_column"}
    assert quarantine["labels.csv"]["scope"] == "column"
    assert {m["format"] for m in manifest} == {"dicom", "png", "jpeg", "tiff"}
    assert {m["voi"] for m in manifest if m["format"] != "dicom"} == {"as_stored"}
    assert {m["bits_stored"] for m in manifest if m["source_path"].endswith(".png")} == {"8", "12"}
    assert {(m["attr_view"], m["attr_sex"]) for m in manifest} == {
        ("AP", "F"), ("AP", "M"), ("PA", "F"), ("PA", "M")}
    assert not any("patientname" in k.lower() for k in manifest[0])
    images, masks = open_array(out / "images.npy"), open_array(out / "masks.npy")
    for m in manifest:  # the lesion is bright in every format (no inverted or dark file)
        if m["label"] == "opacity":
            i = int(m["index"])
            assert images[i][masks[i] == 1].mean() > images[i][masks[i] == 0].mean() + 60, m["format"]
    for path in out.rglob("*"):
        for value in ("SECRET", "19450607"):
            assert value.encode() not in path.read_bytes(), (path.name, value)
    info = __import__("json").loads((out / "dataset.json").read_text())
    assert info["counts"]["quarantine_codes"] == {"colour": 1, "empty": 1, "phi_column": 1, "truncated": 1}


def test_a_pool_that_breaks_at_submit_loses_no_input(monkeypatch):
    """Under load a dead worker is often noticed when the next chunk is submitted, not when a
    result is awaited; that chunk was once dropped from both manifest and quarantine."""
    import concurrent.futures
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from pipeline.ingest.samples import SampleResult

    class Pool:
        submits = 0

        def __init__(self, *args, **kwargs) -> None:
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            return None

        def submit(self, fn, arg):
            Pool.submits += 1
            if Pool.submits == 2:  # the second chunk finds the pool broken
                raise BrokenProcessPool("a worker died")
            future: Future = Future()
            future.set_result(fn(arg))
            return future

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(pool_module, "process", lambda job: SampleResult(job.position))
    jobs = [pool_module.SampleJob(position=i, path=Path(f"{i}.dcm"), mask=None, kind="2d",
                                   settings=None, needs_patient_id=False) for i in range(12)]
    positions = [r.position for r in pool_module._pooled(jobs, workers=1, ctx=None)]
    assert sorted(positions) == list(range(12)) and len(positions) == 12
    assert positions == sorted(positions)  # order kept


def test_an_input_that_vanishes_stops_ingest_before_the_manifest(folder_2d, tmp_path, monkeypatch):
    real = stage_module.run_jobs

    def drops_one(jobs, **kwargs):
        results = list(real(jobs, **kwargs))
        return results[:3] + results[4:]

    monkeypatch.setattr(stage_module, "run_jobs", drops_one)
    with pytest.raises(RuntimeError, match="ingest lost 1 of"):
        run(folder_2d, tmp_path)
    assert not (tmp_path / "manifest.csv").exists()
