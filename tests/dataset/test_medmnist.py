"""MedMNIST v2 .npz -> dataset folder (pipeline/dataset/medmnist.py) and the `medmnist:` source.

Every .npz here is written by the tests with numpy; nothing is downloaded.
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.config import Params, ParamsError, TaskParams
from pipeline.dataset.labels import SPLITS, DatasetError, read_labels
from pipeline.dataset.medmnist import convert_medmnist, fetch_medmnist, to_gray
from pipeline.sources import MEDMNIST_DATASET, SOURCE_RECORD, prepare_source, resolve_source

SIZES = {"train": 5, "val": 2, "test": 3}


def make_npz(path: Path, *, kind: str = "2d", rgb: bool = False, side: int = 8,
             sizes: dict[str, int] = SIZES, classes: int = 2, columns: int = 1, seed: int = 0) -> Path:
    """A MedMNIST-v2-shaped file: uint8 images and (N, 1) class indices or (N, L) 0/1 columns.

    Every class (or column) occurs at least once, as in the published files.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in sizes.items():
        shape = {"2d": (n, side, side), "3d": (n, side, side, side)}[kind] + ((3,) if rgb else ())
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        if columns > 1:
            labels = rng.integers(0, 2, (n, columns)).astype(np.uint8)
            labels[: min(n, columns), :] = np.eye(columns, dtype=np.uint8)[: min(n, columns)]
        else:
            labels = (np.arange(n) % classes).astype(np.uint8)[:, None]
        arrays[f"{split}_labels"] = labels
    np.savez_compressed(path, **arrays)
    return path


def read_rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "labels.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def task(source: str, *, kind: str = "2d", labels=("normal", "pneumonia"), multilabel=False,
         side: int = 8, **data) -> TaskParams:
    size = {"image_size": [side, side]} if kind == "2d" else {
        "volume_shape": [side] * 3, "target_spacing": [1, 1, 1], "hu_window": [127.5, 255]}
    return TaskParams.model_validate({
        "name": "mm", "kind": kind, "labels": list(labels), "multilabel": multilabel,
        "data": {"source": source, **data}, "ingest": {**size, "max_quarantine_fraction": 0.0}})


# --- conversion ------------------------------------------------------------------------------

def test_2d_gray_binary_keeps_the_official_splits_pixels_and_contract(tmp_path):
    npz = make_npz(tmp_path / "pneumoniamnist.npz")
    out = tmp_path / "out"
    convert_medmnist(npz, out, kind="2d", labels=["normal", "pneumonia"])
    rows = read_rows(out)
    assert list(rows[0]) == ["path", "label", "patient_id", "split"]
    assert [r["split"] for r in rows] == ["train"] * 5 + ["val"] * 2 + ["test"] * 3
    with np.load(npz) as data:
        for row in rows:
            split, index = row["split"], int(Path(row["path"]).name.split(".")[0])
            assert row["path"] == f"{split}/{index}.png" and row["patient_id"] == f"{split}_{index}"
            assert row["label"] == ["normal", "pneumonia"][int(data[f"{split}_labels"][index, 0])]
            with Image.open(out / row["path"]) as im:
                assert im.mode == "L"
                np.testing.assert_array_equal(np.asarray(im), data[f"{split}_images"][index])
    usable, rejected = read_labels(out, labels=("normal", "pneumonia"))
    assert len(usable) == 10 and not rejected


def test_2d_rgb_becomes_bt601_luma(tmp_path):
    primaries = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], np.uint8)
    np.testing.assert_array_equal(to_gray(primaries), [[76, 150, 29, 255]])  # 76.245, 149.685, 29.07
    npz = make_npz(tmp_path / "dermamnist.npz", rgb=True)
    out = tmp_path / "out"
    convert_medmnist(npz, out, kind="2d", labels=["a", "b"])
    with np.load(npz) as data:
        rgb = data["train_images"][0]
    with Image.open(out / "train/0.png") as im:
        gray = np.asarray(im)
        assert im.mode == "L"
    exact = np.floor(rgb.astype(np.float64) @ [0.299, 0.587, 0.114] + 0.5)
    np.testing.assert_array_equal(gray, exact)
    pil = np.asarray(Image.fromarray(rgb, "RGB").convert("L")).astype(int)  # Pillow's fixed point
    assert np.abs(gray.astype(int) - pil).max() <= 1


def test_multilabel_columns_become_bar_joined_names_in_label_order(tmp_path):
    npz = make_npz(tmp_path / "chestmnist.npz", columns=3)
    out = tmp_path / "out"
    labels = ["atelectasis", "cardiomegaly", "effusion"]
    convert_medmnist(npz, out, kind="2d", labels=labels, multilabel=True)
    rows = read_rows(out)
    with np.load(npz) as data:
        for row in rows:
            index = int(Path(row["path"]).stem)
            flags = data[f"{row['split']}_labels"][index]
            assert row["label"] == "|".join(n for n, f in zip(labels, flags, strict=True) if f)
    assert rows[0]["label"] == "atelectasis" and rows[1]["label"] == "cardiomegaly"
    usable, rejected = read_labels(out, labels=tuple(labels), multilabel=True)
    assert len(usable) == 10 and not rejected


def test_multilabel_file_requires_multilabel_true(tmp_path):
    npz = make_npz(tmp_path / "chestmnist.npz", columns=3)
    with pytest.raises(ParamsError, match=r"tasks\.mm\.multilabel must be true .*\(N, 3\)"):
        convert_medmnist(npz, tmp_path / "out", kind="2d", labels=["a", "b", "c"], key="tasks.mm")
    npz1 = make_npz(tmp_path / "pneumoniamnist.npz")
    with pytest.raises(ParamsError, match=r"tasks\.mm\.multilabel must be false"):
        convert_medmnist(npz1, tmp_path / "out1", kind="2d", labels=["a", "b"], multilabel=True,
                         key="tasks.mm")


def test_3d_volumes_are_read_back_unchanged_at_1mm(tmp_path):
    from pipeline.io.nifti import read_nifti

    npz = make_npz(tmp_path / "organmnist3d.npz", kind="3d", side=6, classes=3)
    out = tmp_path / "out"
    convert_medmnist(npz, out, kind="3d", labels=["a", "b", "c"])
    rows = read_rows(out)
    assert rows[0]["path"] == "train/0.nii.gz" and {r["label"] for r in rows} == {"a", "b", "c"}
    with np.load(npz) as data:
        original = data["val_images"][1]
    volume, meta = read_nifti(out / "val/1.nii.gz")
    np.testing.assert_array_equal(volume, original)
    assert tuple(meta["spacing"]) == (1.0, 1.0, 1.0) and meta["dtype"] == "uint8"


def test_label_map_names_and_merges_classes(tmp_path):
    npz = make_npz(tmp_path / "retinamnist.npz", classes=3)
    out = tmp_path / "out"
    convert_medmnist(npz, out, kind="2d", labels=["healthy", "disease"],
                     label_map={0: "healthy", 1: "disease", 2: "disease"})
    with np.load(npz) as data:
        expected = ["healthy" if v == 0 else "disease" for v in data["train_labels"][:, 0]]
    assert [r["label"] for r in read_rows(out) if r["split"] == "train"] == expected


@pytest.mark.parametrize(("labels", "label_map", "message"), [
    (["a", "b", "c"], None, r"tasks\.mm\.labels must name the 2 classes of pneumoniamnist\.npz .*"
                            r"Received: 3 names \['a', 'b', 'c'\]"),
    (["a"] * 1, None, r"tasks\.mm\.labels must name the 2 classes"),
    (["a", "b"], {0: "a"}, r"tasks\.mm\.data\.label_map must map exactly the class indices 0\.\.1 .*"
                           r"missing \[1\]"),
    (["a", "b"], {0: "a", 1: "b", 7: "b"}, r"tasks\.mm\.data\.label_map .*unknown \[7\]"),
    (["a", "b"], {0: "a", 1: "z"}, r"tasks\.mm\.data\.label_map values must be names in "
                                   r"tasks\.mm\.labels \['a', 'b'\]\. Received: \['z'\]"),
    (["a", "b", "c"], {0: "a", 1: "b"}, r"tasks\.mm\.labels must all be produced .*\['c'\]"),
])
def test_class_count_or_map_mismatch_names_the_key(tmp_path, labels, label_map, message):
    npz = make_npz(tmp_path / "pneumoniamnist.npz")
    with pytest.raises(ParamsError, match=message):
        convert_medmnist(npz, tmp_path / "out", kind="2d", labels=labels, label_map=label_map,
                         key="tasks.mm")


@pytest.mark.parametrize(("arrays", "kind", "error", "message"), [
    ({"train_images": np.zeros((2, 4, 4), np.uint8)}, "2d", DatasetError, "missing arrays"),
    ({f"{s}_{a}": np.zeros((2, 4, 4), np.uint8) if a == "images" else np.arange(3)[:, None] % 2
      for s in SPLITS for a in ("images", "labels")}, "2d", DatasetError,
     "train_images has 2 entries but train_labels has 3"),
    ({f"{s}_{a}": np.zeros((2, 4, 4), np.float32) if a == "images" else np.arange(2)[:, None]
      for s in SPLITS for a in ("images", "labels")}, "2d", DatasetError, "must be uint8"),
    ({f"{s}_{a}": np.zeros((2, 4, 4), np.uint8) if a == "images" else np.arange(2)[:, None]
      for s in SPLITS for a in ("images", "labels")}, "3d", ParamsError, r"tasks\.mm\.kind is '3d'"),
    ({f"{s}_{a}": np.zeros((2, 4, 4, 4), np.uint8) if a == "images" else np.arange(2)[:, None]
      for s in SPLITS for a in ("images", "labels")}, "2d", ParamsError, r"tasks\.mm\.kind is '2d'"),
    ({f"{s}_{a}": np.zeros((2, 4, 4), np.uint8) if a == "images" else -np.arange(2)[:, None]
      for s in SPLITS for a in ("images", "labels")}, "2d", DatasetError, "non-negative integers"),
])
def test_malformed_files_are_refused_naming_the_problem(tmp_path, arrays, kind, error, message):
    npz = tmp_path / "bad.npz"
    np.savez(npz, **arrays)
    with pytest.raises(error, match=message):
        convert_medmnist(npz, tmp_path / "out", kind=kind, labels=["a", "b"], key="tasks.mm")


def test_unreadable_empty_or_missing_file(tmp_path):
    np.savez(tmp_path / "empty.npz", **{f"{s}_{a}": np.zeros((0, 4, 4) if a == "images" else (0, 1),
                                                               np.uint8)
                                        for s in SPLITS for a in ("images", "labels")})
    with pytest.raises(DatasetError, match="holds no images"):
        convert_medmnist(tmp_path / "empty.npz", tmp_path / "out", kind="2d", labels=["a", "b"])
    (tmp_path / "junk.npz").write_bytes(b"not a zip archive")
    with pytest.raises(DatasetError, match="not a readable .npz"):
        convert_medmnist(tmp_path / "junk.npz", tmp_path / "out", kind="2d", labels=["a", "b"])
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(DatasetError, match="not an .npz archive"):
        convert_medmnist(tmp_path / "single.npy", tmp_path / "out", kind="2d", labels=["a", "b"])
    with pytest.raises(DatasetError, match=r"tasks\.mm\.data\.source: MedMNIST file not found"):
        convert_medmnist(tmp_path / "nope.npz", tmp_path / "out", kind="2d", labels=["a", "b"],
                         key="tasks.mm")


@pytest.mark.parametrize(("kind", "rgb"), [("2d", False), ("2d", True), ("3d", False)])
def test_reconversion_is_byte_identical(tmp_path, kind, rgb):
    npz = make_npz(tmp_path / "x.npz", kind=kind, rgb=rgb, side=6)
    first, second = tmp_path / "a", tmp_path / "b"
    convert_medmnist(npz, first, kind=kind, labels=["a", "b"])
    convert_medmnist(npz, second, kind=kind, labels=["a", "b"])
    files = folder_bytes(first)
    assert files == folder_bytes(second) and len(files) == 11
    image = files["train/0.png" if kind == "2d" else "train/0.nii.gz"]
    if kind == "2d":
        assert b"tIME" not in image and b"tEXt" not in image  # no timestamp, no text chunks
    else:
        assert image[4:8] == b"\0\0\0\0" and not image[3] & 0x08  # gzip: mtime 0, no file name


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.fixed_dictionaries({s: st.integers(0, 4) for s in SPLITS}).filter(
           lambda d: sum(d.values()) > 0),
       columns=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_every_npz_row_appears_once_with_its_split_and_label(sizes, columns, seed):
    rng = np.random.default_rng(seed)
    arrays, names = {}, ["c0", "c1", "c2", "c3"]
    for split, n in sizes.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 3, 3), dtype=np.uint8)
        high = 2 if columns > 1 else 4
        arrays[f"{split}_labels"] = rng.integers(0, high, (n, columns)).astype(np.uint8)
    everything = np.concatenate([arrays[f"{s}_labels"] for s in SPLITS])
    n_classes = columns if columns > 1 else int(everything.max(initial=0)) + 1
    labels = names[:n_classes]
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "x.npz"
        np.savez(npz, **arrays)
        convert_medmnist(npz, Path(tmp) / "out", kind="2d", labels=labels, multilabel=columns > 1)
        rows = read_rows(Path(tmp) / "out")
    assert len(rows) == sum(sizes.values())
    seen = {(r["split"], int(Path(r["path"]).stem)) for r in rows}
    assert seen == {(s, i) for s in SPLITS for i in range(sizes[s])}
    assert len({r["path"] for r in rows}) == len({r["patient_id"] for r in rows}) == len(rows)
    for row in rows:
        target = arrays[f"{row['split']}_labels"][int(Path(row["path"]).stem)]
        if columns > 1:
            assert row["label"] == "|".join(labels[i] for i in np.flatnonzero(target))
        else:
            assert row["label"] == labels[int(target[0])]


# --- the `medmnist:` source: params, demo stage, download -------------------------------------

@pytest.mark.parametrize(("data", "message"), [
    ({"source": "medmnist:"}, r"tasks\.mm\.data\.source must be a folder or one of \['demo:cxr', "
                              r"'demo:ct'\], or 'medmnist:<path to \.npz>'"),
    ({"source": "medmnst:/data/pneumoniamnist.npz"}, r"tasks\.mm\.data\.source .*prefix is not "
                                                     r"known\. Received: 'medmnst:"),
    ({"source": "/data/pneumoniamnist.npz"}, r"tasks\.mm\.data\.source .*a \.npz file needs the "
                                             r"prefix, e\.g\. 'medmnist:/data/pneumoniamnist\.npz'"),
    ({"source": "demo:cxr", "label_map": {0: "normal"}}, r"tasks\.mm\.data\.label_map is only for "
                                                          r"'medmnist:' sources"),
    ({"source": "medmnist:/d/p.npz", "medmnist_size": 64}, r"tasks\.mm\.data\.medmnist_size is only "
                                                           r"for a downloaded set"),
    ({"source": "medmnist:pneumoniamnist", "medmnist_size": 32},
     r"tasks\.mm\.data\.medmnist_size Input should be 28, 64, 128 or 224\. Received: 32"),
    ({"source": "medmnist:pneumoniamnist", "label_map": {-1: "normal"}},
     r"tasks\.mm\.data\.label_map"),
])
def test_bad_medmnist_params_name_the_key(data, message):
    params = Params.model_validate({"base": {"salt": "s"}, "tasks": {"mm": {
        "kind": "2d", "labels": ["normal", "pneumonia"], "data": data,
        "ingest": {"image_size": [28, 28]}}}})
    with pytest.raises(ParamsError, match=message):
        params.task("mm")


def test_source_forms_are_told_apart():
    by_name = task("medmnist:pneumoniamnist", medmnist_size=64).data
    assert by_name.is_medmnist and by_name.medmnist_name == "pneumoniamnist"
    assert by_name.medmnist_path is None and by_name.medmnist_size == 64
    by_path = task("medmnist:~/mm/PneumoniaMNIST_64.npz", label_map={"0": "normal", 1: "pneumonia"}).data
    assert by_path.medmnist_name is None and by_path.medmnist_path == Path.home() / "mm/PneumoniaMNIST_64.npz"
    assert by_path.label_map == {0: "normal", 1: "pneumonia"}
    assert not task("demo:cxr").data.is_medmnist and task("C:/data/x").data.medmnist_path is None


def test_demo_stage_converts_into_raw_dataset_and_records_the_file(tmp_path):
    npz = make_npz(tmp_path / "pneumoniamnist.npz")
    t = task(f"medmnist:{npz}")
    raw = tmp_path / "data" / "raw" / "mm"
    assert prepare_source(t, out_dir=raw) == raw / MEDMNIST_DATASET == resolve_source(t, raw_dir=raw)
    assert sorted(p.name for p in raw.iterdir()) == [SOURCE_RECORD, MEDMNIST_DATASET]
    record = json.loads((raw / SOURCE_RECORD).read_text())
    assert record["source"] == f"medmnist:{npz}"
    assert record["medmnist"]["name"] == "pneumoniamnist.npz" and len(record["medmnist"]["sha256"]) == 64
    assert record["medmnist"]["size"] == npz.stat().st_size and str(tmp_path) not in json.dumps(
        record["medmnist"])
    before = folder_bytes(raw)
    npz.touch()  # a new mtime alone changes nothing (DVC would otherwise rerun ingest)
    prepare_source(t, out_dir=raw)
    assert folder_bytes(raw) == before
    make_npz(npz, seed=1)  # new content: the record and the images change
    prepare_source(t, out_dir=raw)
    after = folder_bytes(raw)
    assert after[SOURCE_RECORD] != before[SOURCE_RECORD] and after != before
    assert not list(raw.parent.glob(".*tmp"))


def test_bare_name_without_the_medmnist_package_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "medmnist", None)  # import medmnist -> ImportError
    with pytest.raises(DatasetError) as info:
        fetch_medmnist("pneumoniamnist", key="tasks.mm")
    message = str(info.value)
    assert "tasks.mm.data.source 'medmnist:pneumoniamnist'" in message
    assert "pip install medmnist" in message and "internet" in message
    assert "medmnist:/path/to/pneumoniamnist.npz" in message
    with pytest.raises(DatasetError, match="pip install medmnist"):  # through the demo stage too
        prepare_source(task("medmnist:pneumoniamnist"), out_dir=tmp_path / "raw")


@pytest.fixture()
def fake_medmnist(monkeypatch, tmp_path):
    """A stand-in `medmnist` package whose download writes a small file (no network)."""
    calls: list[dict] = []

    class PneumoniaMNIST:
        def __init__(self, *, split, download, root, size=28):
            calls.append({"split": split, "download": download, "root": root, "size": size})
            suffix = "" if size == 28 else f"_{size}"
            make_npz(Path(root) / f"pneumoniamnist{suffix}.npz")

    package = types.ModuleType("medmnist")
    package.PneumoniaMNIST = PneumoniaMNIST
    info = types.ModuleType("medmnist.info")
    info.DEFAULT_ROOT = str(tmp_path / "home" / ".medmnist")
    info.INFO = {"pneumoniamnist": {"python_class": "PneumoniaMNIST"},
                 "organmnist3d": {"python_class": "OrganMNIST3D"}}
    package.info = info
    monkeypatch.setitem(sys.modules, "medmnist", package)
    monkeypatch.setitem(sys.modules, "medmnist.info", info)
    return calls, Path(info.DEFAULT_ROOT)


def test_bare_name_resolves_through_the_medmnist_package(fake_medmnist, tmp_path):
    calls, root = fake_medmnist
    assert fetch_medmnist("pneumoniamnist", size=64) == root / "pneumoniamnist_64.npz"
    assert calls == [{"split": "test", "download": True, "root": str(root), "size": 64}]
    assert fetch_medmnist("pneumoniamnist", size=64) == root / "pneumoniamnist_64.npz"
    assert len(calls) == 1  # already there: no second download
    raw = tmp_path / "raw"
    prepare_source(task("medmnist:pneumoniamnist"), out_dir=raw)
    assert calls[-1]["size"] == 28 and len(read_rows(raw / MEDMNIST_DATASET)) == 10
    assert json.loads((raw / SOURCE_RECORD).read_text())["medmnist"]["name"] == "pneumoniamnist.npz"


def test_bare_name_errors_list_names_and_sizes(fake_medmnist):
    with pytest.raises(DatasetError, match=r"name in \['organmnist3d', 'pneumoniamnist'\]\. "
                                           r"Received: 'pneumonia'"):
        fetch_medmnist("pneumonia", key="tasks.mm")
    with pytest.raises(ParamsError, match=r"tasks\.mm\.data\.medmnist_size must be one of \[28, 64\] "
                                          r"for organmnist3d\. Received: 128"):
        fetch_medmnist("organmnist3d", size=128, key="tasks.mm")


# --- through the real ingest -------------------------------------------------------------------

def _ingest(t: TaskParams, tmp_path: Path, npz: Path):
    from pipeline.dataset.tables import read_table
    from pipeline.ingest import run_ingest

    raw = tmp_path / "raw"
    source = prepare_source(t, out_dir=raw)
    out = tmp_path / "interim"
    summary = run_ingest(t, source=source, out_dir=out, seed=0, salt="pepper", workers=1)
    return summary, read_table(out / "manifest.csv"), read_table(out / "quarantine.csv"), out


def _check_ingested(t: TaskParams, npz: Path, manifest, quarantine, out: Path) -> None:
    from pipeline.dataset.store import open_array

    assert quarantine == []
    assert len(manifest) == sum(SIZES.values())
    images = open_array(out / "images.npy")
    with np.load(npz) as data:
        for m in manifest:
            split, index = m["source_path"].split("/")[0], int(m["source_path"].split("/")[1].split(".")[0])
            assert m["split"] == split  # the official split, not a re-split
            assert m["label"] == t.labels[int(data[f"{split}_labels"][index, 0])]
            np.testing.assert_array_equal(images[int(m["index"])][..., 0], data[f"{split}_images"][index])


def test_3d_medmnist_through_ingest_keeps_splits_labels_and_voxels(tmp_path):
    npz = make_npz(tmp_path / "nodulemnist3d.npz", kind="3d", side=8)
    t = task(f"medmnist:{npz}", kind="3d", labels=["benign", "malignant"])
    summary, manifest, quarantine, out = _ingest(t, tmp_path, npz)
    assert summary.samples == 10 and summary.quarantined_rows == 0
    _check_ingested(t, npz, manifest, quarantine, out)


def test_2d_medmnist_through_ingest_keeps_splits_labels_and_pixels(tmp_path):
    """Needs PNG ingest (pipeline/io/image_file.py); `window: auto` keeps 8-bit values as stored."""
    npz = make_npz(tmp_path / "pneumoniamnist.npz", side=8)
    t = task(f"medmnist:{npz}", side=8)
    summary, manifest, quarantine, out = _ingest(t, tmp_path, npz)
    assert summary.samples == 10, quarantine
    _check_ingested(t, npz, manifest, quarantine, out)
