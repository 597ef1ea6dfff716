"""Small synthetic dataset folders in the user-facing contract, shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.demo.dicom_files import save_dataset
from pipeline.demo.dicom_writer import make_image_dataset
from pipeline.demo.fake_phi import PHI

PHI_STRINGS = ("SECRET^NAME", "SECRETID", "19450607", "ACCSECRET", "Secret Clinic")


def _phi(i: int) -> PHI:
    return PHI(patient_name=f"SECRET^NAME^{i}", patient_id=f"SECRETID{i:03d}", birth_date="19450607",
               sex="F", accession_number=f"ACCSECRET{i}", institution_name="Secret Clinic",
               referring_physician="DR^SECRET", study_date="20210101")


def make_2d_folder(root: Path, n_patients: int = 12, *, broken: bool = True) -> Path:
    rng = np.random.default_rng(0)
    rows = ["path,label,mask"]
    for p in range(n_patients):
        for k in range(2):
            label = "opacity" if p % 3 == 0 else "normal"
            img = rng.integers(0, 4096, size=(40 + 4 * k, 36)).astype(np.uint16)
            mask_rel = ""
            if label == "opacity":
                img[10:20, 10:20] = 4095
                mask = np.zeros(img.shape, np.uint8)
                mask[10:20, 10:20] = 255
                mask_rel = f"masks/p{p}_{k}.png"
                from PIL import Image

                (root / "masks").mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(root / mask_rel)
            if k:  # MONOCHROME1 stores dense (white) as low values
                img = (4095 - img).astype(np.uint16)
            ds = make_image_dataset(img, bits_stored=12, phi=_phi(p), uid_key=f"{p}-{k}",
                                    photometric="MONOCHROME1" if k else "MONOCHROME2")
            rel = f"img/p{p}_{k}.dcm"
            (root / "img").mkdir(parents=True, exist_ok=True)
            save_dataset(ds, root / rel)
            rows.append(f"{rel},{label},{mask_rel}")
    if broken:
        (root / "img" / "bad.dcm").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 300)
        rows.append("img/bad.dcm,normal,")
        rows.append("img/nowhere.dcm,normal,")
        (root / "img" / "stray.txt").write_text("not listed")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def make_3d_folder(root: Path, n: int = 8) -> Path:
    import nibabel as nib

    root.mkdir(parents=True, exist_ok=True)
    rows = ["path,label,patient_id,mask"]
    for i in range(n):
        vol = np.full((40, 40, 20), -1000, np.int16)  # (x, y, z) in RAS, 2.5 mm voxels
        vol[8:32, 8:32, 2:18] = 40
        mask = np.zeros(vol.shape, np.uint8)
        label = "nodule" if i % 2 else "normal"
        if label == "nodule":
            vol[12:18, 12:18, 8:12] = 300
            mask[12:18, 12:18, 8:12] = 1
        affine = np.diag([2.5, 2.5, 4.0, 1.0])
        img = nib.Nifti1Image(vol, affine)
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
        nib.save(img, root / f"v{i}.nii.gz")
        m = nib.Nifti1Image(mask, affine)
        m.set_qform(affine, code=1)
        m.set_sform(affine, code=1)
        nib.save(m, root / f"m{i}.nii.gz")
        mask_rel = f"m{i}.nii.gz" if label == "nodule" else ""
        rows.append(f"v{i}.nii.gz,{label},pat{i // 2},{mask_rel}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


MIXED_FORMATS = ("dicom", "png8", "png16", "jpeg_rgb", "tiff")


def make_mixed_2d_folder(root: Path, n_patients: int = 10) -> Path:
    """A 2D folder as public archives mix them: DICOM, 8- and 16-bit PNG, tinted RGB JPEG and
    TIFF, with subgroup columns (``view``, ``sex``), a PHI column that must never be read
    (``PatientName``), and three broken rows: a truncated JPEG, a zero-byte PNG and a colour photo.

    Opacity images (every third patient) carry a bright square and a PNG mask of it.
    """
    from PIL import Image

    rng = np.random.default_rng(1)
    for sub in ("img", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rows = ["path,label,patient_id,view,sex,PatientName,mask"]
    for p in range(n_patients):
        for k in range(2):
            fmt = MIXED_FORMATS[(2 * p + k) % len(MIXED_FORMATS)]
            label = "opacity" if p % 3 == 0 else "normal"
            shape = (40 + 4 * k, 36)
            img = rng.random(shape) * 0.6
            mask_rel = ""
            if label == "opacity":
                img[10:20, 10:20] = 1.0
                mask_rel = f"masks/p{p}_{k}.png"
                Image.fromarray(((img >= 1.0) * 255).astype(np.uint8)).save(root / mask_rel)
            rel = _write_mixed(root, f"img/p{p}_{k}", fmt, img, p, k)
            rows.append(f"{rel},{label},pt{p},{'PA' if k else 'AP'},{'FM'[p % 2]},SECRET^NAME^{p},{mask_rel}")
    buf = root / "img" / "trunc.jpg"
    Image.fromarray((rng.random((60, 60)) * 255).astype(np.uint8)).save(buf)
    buf.write_bytes(buf.read_bytes()[:300])
    (root / "img" / "empty.png").write_bytes(b"")
    Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(root / "img" / "photo.png")
    rows += ["img/trunc.jpg,normal,px1,PA,F,,", "img/empty.png,normal,px2,PA,M,,",
             "img/photo.png,normal,px3,PA,F,,"]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def _write_mixed(root: Path, stem: str, fmt: str, img01: np.ndarray, p: int, k: int) -> str:
    from PIL import Image

    if fmt == "dicom":
        ds = make_image_dataset(np.rint(img01 * 4095).astype(np.uint16), bits_stored=12, phi=_phi(p),
                                uid_key=f"mixed-{p}-{k}")
        save_dataset(ds, root / f"{stem}.dcm")
        return f"{stem}.dcm"
    if fmt == "png16":
        Image.fromarray(np.rint(img01 * 4095).astype(np.uint16)).save(root / f"{stem}.png")
        return f"{stem}.png"
    gray = np.rint(img01 * 255).astype(np.uint8)
    if fmt == "png8":
        Image.fromarray(gray).save(root / f"{stem}.png")
        return f"{stem}.png"
    if fmt == "jpeg_rgb":  # a photographed film with a blue cast
        tinted = np.rint(gray[..., None] * np.array([0.7, 0.85, 1.0])).astype(np.uint8)
        Image.fromarray(tinted).save(root / f"{stem}.jpg", quality=95)
        return f"{stem}.jpg"
    Image.fromarray(gray).save(root / f"{stem}.tif")
    return f"{stem}.tif"
