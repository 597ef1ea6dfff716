"""predict at archive scale on the tiny trained models: folders and CSVs of inputs, duplicates,
pages built from stored records, and a run killed with SIGKILL that resumes to the same bytes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.dataset.tables import read_table
from pipeline.predict import JournalMismatch, run_predict
from pipeline.predict.journal import Journal

ROOT = Path(__file__).resolve().parents[2]


def _pngs(folder: Path, n: int, *, seed: int = 0, size: int = 24) -> list[Path]:
    """``n`` distinct small gray PNGs (distinct bytes: distinct study ids)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"img{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_2d_folder_and_csv_inputs_account_for_every_file(trained_2d, tmp_path):
    raw = trained_2d["raw"]
    archive = tmp_path / "archive"
    rows = read_table(raw / "labels.csv")
    (archive / "dicom" / "deeper").mkdir(parents=True)
    shutil.copy(raw / rows[0]["path"], archive / "dicom" / "a.dcm")
    shutil.copy(raw / rows[1]["path"], archive / "dicom" / "deeper" / "b.dcm")
    shutil.copy(raw / rows[0]["path"], archive / "dicom" / "deeper" / "c_copy.dcm")  # a duplicate
    _pngs(archive / "png", 2)
    shutil.copy(next((ROOT / "tests").rglob("*.py")), archive / "junk.py")
    (archive / "vol.nii.gz").write_bytes(b"not read: a volume for a 2D model")
    results = run_predict(trained_2d["model"], [archive], tmp_path / "out", threshold=0.5, workers=2)
    assert len(results) == 4
    rejected = {r["input"]: r for r in read_table(tmp_path / "out" / "rejected.csv")}
    # discovery order: dicom/a.dcm, dicom/deeper/b.dcm, dicom/deeper/c_copy.dcm, junk.py, png x2, vol
    assert set(rejected) == {"#3", "#4", "#7"}
    assert rejected["#3"]["code"] == "duplicate" and rejected["#3"]["reason"] == "the same bytes as input #1"
    assert rejected["#7"]["code"] == "wrong_kind" and rejected["#4"]["reason"]
    for r in results:
        assert (tmp_path / "out" / "cases" / f"{r.sample_id}.html").is_file()
    assert not (tmp_path / "out" / ".predict").exists()  # the journal goes with the finished run
    for path in (tmp_path / "out").rglob("*"):
        assert b"c_copy" not in path.read_bytes() if path.is_file() else True
    listing = tmp_path / "lists" / "inputs.csv"  # the same files through a CSV of relative paths
    listing.parent.mkdir()
    listing.write_text("path\n" + "".join(f"../archive/{p.relative_to(archive).as_posix()}\n"
                                          for p in sorted(archive.rglob("*")) if p.is_file()))
    again = run_predict(trained_2d["model"], [listing], tmp_path / "csv", threshold=0.5, pages=False)
    assert again == results
    csv_run, folder_run = (tmp_path / name / "predictions.csv" for name in ("csv", "out"))
    assert csv_run.read_bytes() == folder_run.read_bytes()
    assert not (tmp_path / "csv" / "index.html").exists()  # --no-pages


def test_3d_folder_with_series_nifti_png_and_junk(trained_3d, tmp_path):
    import nibabel as nib

    from tests.io.conftest import write_series

    nifti = sorted(trained_3d["raw"].glob("v*.nii.gz"))[:2]
    archive = tmp_path / "archive"
    img = nib.load(nifti[0])
    write_series(archive / "patient" / "series1", np.asarray(img.dataobj), img.affine)
    (archive / "patient" / "series1" / "README.txt").write_text("left out of the series by the reader")
    (archive / "nested" / "more").mkdir(parents=True)
    shutil.copy(nifti[0], archive / "nested" / "a.nii.gz")
    shutil.copy(nifti[1], archive / "nested" / "more" / "b.nii.gz")
    _pngs(archive / "nested", 1)
    (archive / "nested" / "notes.txt").write_text("junk")
    results = run_predict(trained_3d["model"], [archive], tmp_path / "out", threshold=0.5, pages=False)
    # order: nested/a.nii.gz, nested/img0000.png, nested/more/b.nii.gz, nested/notes.txt, patient/series1
    assert len(results) == 3
    rejected = read_table(tmp_path / "out" / "rejected.csv")
    assert [(r["input"], r["code"]) for r in rejected] == [("#2", "wrong_kind"), ("#4", "unsupported")]
    assert results[0].probability == pytest.approx(results[2].probability, abs=0.02)  # series == its NIfTI


def test_pages_resume_after_a_failure_to_the_same_bytes(trained_2d, tmp_path, monkeypatch):
    """A run that dies after its first chunk resumes from the journal and the stored case records:
    the finished studies are neither decoded nor explained again, and every output file (pages
    included) equals an uninterrupted run's."""
    import pipeline.predict.worker as worker

    inputs = _pngs(tmp_path / "in", 5)
    whole = run_predict(trained_2d["model"], inputs, tmp_path / "whole", threshold=0.5, chunk=2)
    append = Journal.append

    def die_after_first(self, chunk, rows):
        append(self, chunk, rows)
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(Journal, "append", die_after_first)
    with pytest.raises(KeyboardInterrupt):
        run_predict(trained_2d["model"], inputs, tmp_path / "out", threshold=0.5, chunk=2)
    monkeypatch.setattr(Journal, "append", append)
    with pytest.raises(JournalMismatch, match="different settings"):
        run_predict(trained_2d["model"], inputs, tmp_path / "out", threshold=0.3, chunk=2)
    decoded = []
    prepare = worker.prepare
    monkeypatch.setattr(worker, "prepare", lambda job: decoded.append(job.position) or prepare(job))
    resumed = run_predict(trained_2d["model"], inputs, tmp_path / "out", threshold=0.5, chunk=2)
    assert decoded == [2, 3, 4] and resumed == whole
    assert _files(tmp_path / "out") == _files(tmp_path / "whole")


@pytest.mark.slow
@pytest.mark.graph  # compares with a predict subprocess, which traces: same graphs, same bits
def test_batch_predict_over_a_few_hundred_studies_resumes_after_a_kill(trained_2d, tmp_path):
    """`python -m pipeline predict --no-pages` over 240 studies, SIGKILLed mid-run, then rerun:
    the rerun skips the journal's studies and predictions.csv equals an uninterrupted run's."""
    n, chunk = 240, 32
    archive = tmp_path / "archive"
    _pngs(archive, n, size=16)
    expected = run_predict(trained_2d["model"], [archive], tmp_path / "whole", threshold=0.5, pages=False)
    assert len(expected) == n
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pipeline", "predict", "--model", str(trained_2d["model"]), "--input",
           str(archive), "--out", str(out), "--threshold", "0.5", "--no-pages", "--workers", "2", "--quiet"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT),
           "MEDVISION_TEST_PREDICT_PAUSE": "0.4"}
    journal = out / ".predict" / "journal.jsonl"
    # its own process group: the kill takes the decoding workers too, as kill -9 of a job does
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and len(journal.read_bytes().splitlines()) >= 3:  # header + 2 chunks
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "predictions.csv").exists()
    finished = len(journal.read_bytes().splitlines()) - 1
    assert 2 <= finished < n // chunk
    env.pop("MEDVISION_TEST_PREDICT_PAUSE")
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    match = re.search(r"(\d+) input\(s\) found, (\d+) already done .*?, (\d+) to do", res.stderr)
    assert match and [int(g) for g in match.groups()] == [n, finished * chunk, n - finished * chunk]
    assert (out / "predictions.csv").read_bytes() == (tmp_path / "whole" / "predictions.csv").read_bytes()
    assert (out / "rejected.csv").read_bytes() == (tmp_path / "whole" / "rejected.csv").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv", "rejected.csv"]
