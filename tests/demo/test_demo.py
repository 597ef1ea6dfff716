"""Tests for the demo datasets: folder contract, determinism, PHI hygiene, masks, geometry."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from pipeline.config import IngestParams
from pipeline.demo import ct, ct_files, ct_plan, cxr, generate_demo, patients
from pipeline.demo import ct_phantom as ctp
from pipeline.demo import dicom_writer as dw
from pipeline.demo import xray_phantom as xr
from pipeline.demo.dicom_files import TRANSFER_SYNTAXES
from pipeline.demo.shapes import VISIBLE_HU, VISIBLE_PHYSICAL, Blob
from pipeline.ingest.samples import SampleJob, process

N_PATIENTS = 4  # cxr: 16 images + 3 broken rows
N_CT_PATIENTS = 3  # ct: 3 DICOM series + 1 NIfTI volume
PHI_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
                "InstitutionName", "ReferringPhysicianName")


@pytest.fixture(scope="module")
def cxr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cxr")
    with in_this_process():
        assert generate_demo("cxr", out, seed=0, n_patients=N_PATIENTS) == out / "labels.csv"
    return out


@pytest.fixture(scope="module")
def ct_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ct")
    with in_this_process():
        assert generate_demo("ct", out, seed=0, n_patients=N_CT_PATIENTS) == out / "labels.csv"
    return out


def in_this_process():
    """Generate without worker processes (as where forking is unsafe: TensorFlow, threads)."""
    from unittest import mock

    return mock.patch("pipeline.utils.processes.fork_context", return_value=None)


#: Generates a demo in a fresh interpreter, where it may fork workers; prints whether it did.
_ON_EVERY_CORE = """
import sys
from pipeline.demo import generate_demo
from pipeline.utils.processes import cores, fork_context
generate_demo(sys.argv[1], sys.argv[2], seed=0, n_patients=int(sys.argv[3]))
print(fork_context() is not None and cores() >= 2)
"""


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / "labels.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _dicom_files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*.dcm")) if p.read_bytes()[128:132] == b"DICM"]


# ------------------------------------------------------------------------------ both kinds


def test_unknown_kind_and_bad_patient_count_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("kind must be one of ['ct', 'cxr']. "
                                                   "Received: 'x'")):
        generate_demo("x", tmp_path)
    with pytest.raises(ValueError, match="n_patients must be >= 1"):
        generate_demo("cxr", tmp_path, n_patients=0)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kind", ["cxr", "ct"])
def test_same_seed_gives_identical_bytes_in_one_process_or_on_every_core(
        kind: str, cxr_dir: Path, ct_dir: Path, tmp_path: Path) -> None:
    """The demo stage's process forks a worker per core (each file draws from its own
    generator); the fixtures generated the same demo in this process, file by file."""
    import subprocess
    import sys

    first = cxr_dir if kind == "cxr" else ct_dir
    n = N_PATIENTS if kind == "cxr" else N_CT_PATIENTS
    res = subprocess.run([sys.executable, "-c", _ON_EVERY_CORE, kind, str(tmp_path / "forked"), str(n)],
                         cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split()[-1] == "True"  # it did fork (2+ cores here and in CI)
    assert _hashes(tmp_path / "forked") == _hashes(first)
    with in_this_process():
        generate_demo(kind, tmp_path / "again", seed=0, n_patients=n)
    assert _hashes(tmp_path / "again") == _hashes(first)


def test_different_seed_gives_different_data(cxr_dir: Path, tmp_path: Path) -> None:
    generate_demo("cxr", tmp_path / "cxr", seed=1, n_patients=2)
    assert set(_hashes(tmp_path / "cxr").values()).isdisjoint(_hashes(cxr_dir).values())
    generate_demo("ct", tmp_path / "a", seed=0, n_patients=1)
    generate_demo("ct", tmp_path / "b", seed=1, n_patients=1)
    a, b = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert set(a.values()).isdisjoint(set(b.values()) - {a["labels.csv"]})


@pytest.mark.parametrize("kind", ["cxr", "ct"])
def test_labels_csv_contract(kind: str, cxr_dir: Path, ct_dir: Path) -> None:
    root = cxr_dir if kind == "cxr" else ct_dir
    text = (root / "labels.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "path,label,mask"
    rows = _rows(root)
    classes = cxr.CLASSES if kind == "cxr" else ct.CLASSES
    assert {r["label"] for r in rows} == set(classes)
    for r in rows:
        for rel in (r["path"], r["mask"]):
            assert not rel.startswith("/") and "\\" not in rel and ".." not in rel.split("/")
        assert bool(r["mask"]) == (r["label"] == classes[1])
        if r["mask"]:
            assert (root / r["mask"]).is_file()
    missing = [r["path"] for r in rows if not (root / r["path"]).exists()]
    assert len(missing) == (1 if kind == "cxr" else 0)


@pytest.mark.parametrize("kind", ["cxr", "ct"])
def test_no_phi_in_names_or_labels(kind: str, cxr_dir: Path, ct_dir: Path) -> None:
    root = cxr_dir if kind == "cxr" else ct_dir
    phi: set[str] = set()
    for path in _dicom_files(root):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in PHI_KEYWORDS:
            value = str(ds.get(keyword, "") or "")
            phi |= {value} | {part for part in value.split("^") if len(part) >= 3}
        assert ds.PatientID.startswith("MRN") and ds.AccessionNumber.startswith("ACC")
        assert ds.PatientBirthDate and ds.StudyDate and ds.InstitutionName
    phi.discard("")
    assert len(phi) > 10
    names = [p.relative_to(root).as_posix() for p in root.rglob("*")]
    haystack = "\n".join(names + [(root / "labels.csv").read_text(encoding="utf-8")]).lower()
    leaked = sorted(v for v in phi if v.lower() in haystack)
    assert leaked == []


# ------------------------------------------------------------------------------ cxr


def _display(ds: pydicom.Dataset) -> np.ndarray:
    """Reference reader: stored -> modality LUT -> VOI -> MONOCHROME1 inversion, [0, 1]."""
    arr = ds.pixel_array
    if int(ds.SamplesPerPixel) == 3:
        arr = arr.mean(axis=-1)
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        arr = arr[arr.shape[0] // 2]
    if int(ds.SamplesPerPixel) == 1:
        arr = apply_modality_lut(arr, ds)
        if "VOILUTSequence" in ds:
            arr = apply_voi_lut(np.rint(arr).astype(np.int64), ds)
        elif "WindowCenter" in ds:
            arr = apply_voi_lut(arr, ds)
    arr = np.asarray(arr, dtype=np.float64)
    lo, hi = np.percentile(arr, [0.5, 99.5])
    arr = np.clip((arr - lo) / (hi - lo), 0.0, 1.0)
    return 1.0 - arr if ds.PhotometricInterpretation == "MONOCHROME1" else arr


def test_cxr_images_decode_alike_and_masks_match(cxr_dir: Path) -> None:
    checked = 0
    for r in _rows(cxr_dir):
        path = cxr_dir / r["path"]
        if path not in _dicom_files(cxr_dir):
            continue
        ds = pydicom.dcmread(path)
        expected = int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * int(
            ds.get("NumberOfFrames", 1) or 1) * int(ds.BitsAllocated) // 8
        if not ds.file_meta.TransferSyntaxUID.is_compressed and len(ds.PixelData) < expected:
            continue  # the deliberately truncated file
        img = _display(ds)
        rows, cols = img.shape
        assert 224 <= rows <= 384 and 224 <= cols <= 384
        mediastinum = img[int(0.35 * rows):int(0.45 * rows), int(0.49 * cols):int(0.51 * cols)]
        lungs = np.concatenate([
            img[int(0.35 * rows):int(0.45 * rows), int(0.30 * cols):int(0.36 * cols)].ravel(),
            img[int(0.35 * rows):int(0.45 * rows), int(0.64 * cols):int(0.70 * cols)].ravel()])
        assert mediastinum.mean() > np.median(lungs) + 0.15, r["path"]  # not inverted
        if r["mask"]:
            mask = np.asarray(Image.open(cxr_dir / r["mask"]))
            assert mask.dtype == np.uint8 and mask.shape == (rows, cols)
            assert set(np.unique(mask)) == {0, 255}
            assert img[mask > 0].mean() > np.median(lungs)  # opacities are denser than lung
        checked += 1
    assert checked == len(_rows(cxr_dir)) - 3


def test_cxr_encoding_variants_present(cxr_dir: Path) -> None:
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in _dicom_files(cxr_dir)]
    syntaxes = {str(ds.file_meta.TransferSyntaxUID) for ds in headers}
    assert syntaxes == set(TRANSFER_SYNTAXES)
    assert {ds.PhotometricInterpretation for ds in headers} >= {
        "MONOCHROME1", "MONOCHROME2", "RGB"}
    assert {ds.SOPClassUID for ds in headers} >= {dw.SECONDARY_CAPTURE_STORAGE}
    assert {ds.SOPClassUID for ds in headers} & {dw.CR_IMAGE_STORAGE, dw.DX_IMAGE_STORAGE}
    assert any(int(ds.get("NumberOfFrames", 1) or 1) > 1 for ds in headers)
    assert any(float(ds.get("RescaleSlope", 1)) < 0 for ds in headers)
    assert any("VOILUTSequence" in ds for ds in headers)
    assert any(ds.get("VOILUTFunction") == "SIGMOID" for ds in headers)
    assert any(ds.PixelRepresentation == 1 and "RescaleIntercept" in ds for ds in headers)
    assert {int(ds.BitsStored) for ds in headers} >= {8, 12}
    for ds in headers:
        assert ds.SeriesDescription and ("PixelSpacing" in ds or "ImagerPixelSpacing" in ds)
    garbage = 0
    for path in _dicom_files(cxr_dir):
        ds = pydicom.dcmread(path)
        if ds.BitsStored == 12 and not ds.file_meta.TransferSyntaxUID.is_compressed:
            raw = np.frombuffer(ds.PixelData, dtype="<u2")
            garbage += bool(np.all(raw >> 12 != 0))
    assert garbage >= 1


def test_cxr_broken_rows(cxr_dir: Path) -> None:
    rows = _rows(cxr_dir)
    paths = [cxr_dir / r["path"] for r in rows]
    assert sum(not p.exists() for p in paths) == 1
    assert sum(p.exists() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths) == 1
    truncated = 0
    for path in _dicom_files(cxr_dir):
        ds = pydicom.dcmread(path)
        expected = int(ds.Rows) * int(ds.Columns) * int(ds.BitsAllocated) // 8
        if not ds.file_meta.TransferSyntaxUID.is_compressed and len(ds.PixelData) < expected:
            truncated += 1
            with pytest.raises(ValueError):
                _ = ds.pixel_array
    assert truncated == 1
    default = cxr.plan(0, cxr.DEFAULT_PATIENTS)
    assert sum(bool(job.broken) for job in default) / len(default) < 0.02


# ------------------------------------------------------------------------------ ct


def _read_series(folder: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Reference series reader: drop localizers, sort on the normal, fill the full grid."""
    slices, scouts = [], []
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        if "LOCALIZER" in ds.ImageType:
            scouts.append(ds)
        else:
            slices.append((path.name, ds))
    iop = np.array(slices[0][1].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    proj = {name: float(np.dot(np.array(ds.ImagePositionPatient, float), normal))
            for name, ds in slices}
    slices.sort(key=lambda item: proj[item[0]])
    dists = np.array([proj[name] for name, _ in slices])
    spacing = float(np.min(np.diff(dists)))
    k = np.rint((dists - dists[0]) / spacing).astype(int)
    first = slices[0][1]
    vol = np.full((k[-1] + 1, int(first.Rows), int(first.Columns)), np.nan)
    for idx, (_, ds) in zip(k, slices, strict=True):
        vol[idx] = apply_modality_lut(ds.pixel_array, ds)
    row_sp, col_sp = (float(v) for v in first.PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1] = iop[:3] * col_sp, iop[3:] * row_sp
    lps[:3, 2], lps[:3, 3] = normal * spacing, np.array(first.ImagePositionPatient, float)
    info = {"names": [name for name, _ in slices], "k": k, "spacing": spacing,
            "instances": [int(ds.InstanceNumber) for _, ds in slices], "scouts": scouts,
            "datasets": [ds for _, ds in slices], "iop": tuple(iop)}
    return vol, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps, info


def test_ct_series_geometry_and_masks(ct_dir: Path) -> None:
    seen = {"descending": 0, "missing": 0, "localizer": 0, "non_axial": 0, "compressed": 0}
    for r in _rows(ct_dir):
        if not r["path"].startswith("series/"):
            continue
        vol, affine, info = _read_series(ct_dir / r["path"])
        datasets = info["datasets"]
        assert len({(ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID)
                    for ds in datasets}) == 1
        assert info["names"] != sorted(info["names"])  # file names are not in spatial order
        assert round(info["spacing"], 3) in (2.5, 3.0, 5.0)
        assert 40 <= vol.shape[0] <= 64 and vol.shape[1:] == (96, 96)
        assert 3.2 <= float(datasets[0].PixelSpacing[0]) <= 3.8
        gaps = np.diff(info["k"])
        assert set(gaps) <= {1, 2} and np.sum(gaps == 2) <= 1
        seen["missing"] += int(np.any(gaps == 2))
        seen["descending"] += int(info["instances"] == sorted(info["instances"], reverse=True))
        seen["non_axial"] += int(info["iop"] != (1, 0, 0, 0, 1, 0))
        seen["compressed"] += int(datasets[0].file_meta.TransferSyntaxUID.is_compressed)
        for scout in info["scouts"]:
            seen["localizer"] += 1
            assert scout.ImageOrientationPatient != datasets[0].ImageOrientationPatient
            assert scout.SeriesInstanceUID != datasets[0].SeriesInstanceUID
            assert scout.FrameOfReferenceUID == datasets[0].FrameOfReferenceUID
        _check_mask(ct_dir, r, vol.transpose(2, 1, 0), affine)
    assert all(count >= 1 for count in seen.values()), seen


def test_ct_nifti_volumes(ct_dir: Path) -> None:
    rows = [r for r in _rows(ct_dir) if r["path"].startswith("volumes/")]
    assert rows and all(r["path"].endswith(".nii.gz") for r in rows)
    for r in rows:
        img = nib.load(ct_dir / r["path"])
        assert img.get_data_dtype() == np.int16
        assert int(img.header["qform_code"]) == int(img.header["sform_code"]) == 1
        assert np.allclose(img.get_qform(), img.get_sform(), atol=1e-4)
        assert nib.aff2axcodes(img.affine) != ("R", "A", "S") or len(rows) > 1
        data = np.asarray(img.dataobj)
        assert data.shape[:2] == (96, 96) and -1024 <= data.min() and data.max() <= 3071
        _check_mask(ct_dir, r, data.astype(float), img.affine)
    assert any(nib.aff2axcodes(nib.load(ct_dir / r["path"]).affine) != ("R", "A", "S")
               for r in rows)


def _check_mask(root: Path, row: dict[str, str], hu_ijk: np.ndarray, affine: np.ndarray) -> None:
    """The mask is on the image grid and covers nodule tissue, not lung."""
    if not row["mask"]:
        return
    mask_img = nib.load(root / row["mask"])
    mask = np.asarray(mask_img.dataobj)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert mask.shape == hu_ijk.shape
    assert np.allclose(mask_img.affine, affine, atol=1e-3)
    assert int(mask_img.header["sform_code"]) == 1
    inside = hu_ijk[(mask > 0) & ~np.isnan(hu_ijk)]
    assert inside.size and inside.mean() > -600  # lung is ~ -850 HU


# ------------------------------------------------------------------------------ mask extent


def _ct_renders(n_patients: int, seed: int = 0):
    """Nodule volumes rendered twice with the same noise: with and without their nodules.

    Yields ``(grid, mask, added, nodules)``; ``added`` = the HU the nodules add (noise cancels).
    """
    anatomy, _ = patients(seed, ct_plan.KIND, n_patients, ct.DEFAULT_PATIENTS, ctp.draw_thorax_anatomy)
    for spec in ct_plan.plan(seed, len(anatomy)):
        if spec.label != "nodule":
            continue
        rng = np.random.default_rng([seed, ct_plan.KIND, 3, spec.number])
        a = anatomy[spec.patient]
        grid = ct.make_grid(spec, a, rng)
        nodules, halos = ct._draw_nodules(a, grid, rng)
        hu, mask = ctp.render_thorax(a, grid, nodules=nodules, halos=halos, noise_hu=15.0,
                                     rng=np.random.default_rng(1))
        hu0, empty = ctp.render_thorax(a, grid, nodules=(), halos=halos, noise_hu=15.0,
                                       rng=np.random.default_rng(1))
        assert not empty.any()
        yield grid, mask, hu - hu0, nodules


def test_ct_masks_cover_the_visible_nodule() -> None:
    """Issue 11: the mask is what a reader sees, not the half-maximum core (then ~1/3 of it)."""
    seen = 0
    for grid, mask, added, nodules in _ct_renders(6):
        visible = added >= VISIBLE_HU
        assert (mask & visible).sum() >= 0.9 * visible.sum()
        assert not (mask & (added < 0.5 * VISIBLE_HU)).any()  # and not much more
        for blob in nodules:  # the half-maximum core (inside the lungs) is inside
            core = ctp._ellipsoid_distance(blob, *grid.coords()) <= 0.75
            assert core.any() and mask[core].all()
        seen += 1
    assert seen >= 3


def _cxr_renders(n_patients: int, seed: int = 0):
    """Opacity radiographs rendered with and without their lesions, same noise."""
    anatomy, _ = patients(seed, cxr._KIND, n_patients, cxr.DEFAULT_PATIENTS, xr.draw_chest_anatomy)
    for job in cxr.plan(seed, len(anatomy)):
        if job.label != "opacity":
            continue
        rng = np.random.default_rng([seed, cxr._KIND, 3, job.number])
        a = anatomy[job.patient]
        lesions = tuple(Blob(xr.sample_lung_point(a, rng), float(rng.uniform(0.1, 0.24)),
                             float(rng.uniform(*cxr.LESION_AMPLITUDE)),
                             aspect=float(rng.uniform(0.65, 1.0))) for _ in range(2))
        canvas, exposure = xr.Canvas(256, 256, xr.draw_pose(rng)), xr.draw_exposure(rng)
        img, mask = xr.render_chest(a, canvas, lesions=lesions, exposure=exposure,
                                    rng=np.random.default_rng(1))
        img0, _ = xr.render_chest(a, canvas, lesions=(), exposure=exposure,
                                  rng=np.random.default_rng(1))
        yield img, mask, img - img0


def test_cxr_masks_cover_the_visible_opacity() -> None:
    """Same rule as CT: lesion pixels raised by >= 1/15 of the image's display range."""
    seen = 0
    for img, mask, added in _cxr_renders(3):
        lo, hi = np.percentile(img, [0.5, 99.5])
        visible = added >= (hi - lo) / 15.0
        assert visible.any() and (mask & visible).sum() >= 0.9 * visible.sum()
        assert not (mask & (added < 0.5 * VISIBLE_PHYSICAL)).any()
        seen += 1
    assert seen >= 3


def _ingest_3d(volume: Path, mask: Path, **settings: object) -> tuple[np.ndarray, np.ndarray]:
    """``(image, mask)`` on the model grid, as the ingest stage makes them (demo ct params)."""
    params = IngestParams(volume_shape=(32, 64, 64), **settings)
    result = process(SampleJob(position=0, path=volume, mask=mask, kind="3d", settings=params,
                               needs_patient_id=False))
    assert result.rejection is None, result.rejection
    return result.image[..., 0], result.mask[..., 0]


def test_ct_masks_survive_ingest_on_every_positive_case(ct_dir: Path) -> None:
    rows = [r for r in _rows(ct_dir) if r["mask"]]
    assert len(rows) >= 2
    for r in rows:
        _, mask = _ingest_3d(ct_dir / r["path"], ct_dir / r["mask"])
        assert mask.sum() >= 8, r["path"]  # a 9 mm nodule is > 8 voxels of 5 mm once visible


def test_ct_model_grid_mask_covers_each_nodule_peak(tmp_path: Path) -> None:
    """Ingest the noise-free added HU as an image: each nodule's brightest voxel is masked."""
    from scipy import ndimage

    checked = 0
    for n, (grid, mask, added, _) in enumerate(_ct_renders(6)):
        ct_files.write_nifti(tmp_path / f"a{n}.nii.gz", added.astype(np.int16), grid)
        ct_files.write_nifti(tmp_path / f"m{n}.nii.gz", mask.astype(np.uint8), grid)
        image, mask_grid = _ingest_3d(tmp_path / f"a{n}.nii.gz", tmp_path / f"m{n}.nii.gz",
                                      hu_window=(500.0, 1000.0))  # 0..1000 HU -> 0..255
        regions, count = ndimage.label(image >= VISIBLE_HU * 255 / 1000)
        assert count >= 1
        for index in range(1, count + 1):
            peak = image == ndimage.maximum(image, regions, index)
            assert mask_grid[peak & (regions == index)].all()
        assert (mask_grid[image >= 0.2 * 255] > 0).mean() > 0.9
        checked += 1
    assert checked >= 3


def test_default_plans_have_the_documented_proportions() -> None:
    specs = ct_plan.plan(0, ct.DEFAULT_PATIENTS)
    assert len(specs) == 160
    assert sum(s.label == "nodule" for s in specs) == 72
    assert sum(s.fmt == "nifti" for s in specs) == 40
    assert sum(s.missing_slice for s in specs) == 2 and sum(s.localizer for s in specs) == 1
    jobs = cxr.plan(0, cxr.DEFAULT_PATIENTS)
    real = [j for j in jobs if not j.broken]
    assert 400 <= len(real) <= 500
    assert abs(sum(j.label == "opacity" for j in real) / len(real) - 0.4) < 0.01
