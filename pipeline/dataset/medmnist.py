"""MedMNIST v2 ``.npz`` files -> the dataset folder contract (``labels.csv`` + image files).

A MedMNIST v2 file holds ``{train,val,test}_images`` and ``{train,val,test}_labels``:

- 2D sets: uint8 ``(N, H, W)`` (gray) or ``(N, H, W, 3)`` (RGB: DermaMNIST, BloodMNIST,
  PathMNIST, RetinaMNIST). Written as 8-bit grayscale PNG; RGB is converted to luma with the
  ITU-R BT.601 weights (``Y = 0.299 R + 0.587 G + 0.114 B``, rounded half up, in exact integer
  arithmetic) because the pipeline is grayscale.
- 3D sets: uint8 ``(N, D, H, W)``. Written as NIfTI-1 ``.nii.gz``, uint8, 1 mm isotropic voxels,
  with the affine ``diag(-1, -1, 1, 1)``: the pipeline's canonical grid (see
  :mod:`pipeline.io.orientation`), so ingest reads back the array exactly as stored, with no
  flip. MedMNIST volumes are already resampled (their true spacing is not in the file) and their
  intensities are 0-255, not Hounsfield units: tasks should use ``ingest.target_spacing:
  [1, 1, 1]``, ``ingest.volume_shape`` = the file's size and ``ingest.hu_window: [127.5, 255]``
  (value ``v`` -> ``v / 255``, i.e. the values unchanged).
- Labels: ``(N, 1)`` class indices (binary, multi-class, ordinal) or ``(N, L)`` 0/1 columns
  (multi-label, e.g. ChestMNIST; the task needs ``multilabel: true``). Index ``i`` is the task's
  ``labels[i]``, or ``label_map[i]`` when a map is given. Multi-label cells join the names with
  ``|`` (empty: none of the labels), as the dataset contract says.

The folder gets ``labels.csv`` (``path,label,patient_id,split``) and one file per image,
``<split>/<index>.png`` (or ``.nii.gz``), the index zero-padded. The official split is kept in the
``split`` column. MedMNIST has no patient identifiers, so ``patient_id`` is one per image
(``<split>_<index>``): the guarantee against patient leakage is the one MedMNIST's split gives.

The conversion is deterministic: the same file gives a byte-identical folder (PNG without
timestamps, gzip with mtime 0 and no file name), so DVC sees no change when nothing changed.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pipeline.config import MEDMNIST_SIZES, ParamsError
from pipeline.dataset.labels import SPLITS, DatasetError

#: ITU-R BT.601 luma weights of R, G, B in thousandths (integer maths: same bytes everywhere).
BT601_LUMA_PERMILLE = (299, 587, 114)
#: Sizes the medmnist package publishes for 3D sets (2D sets: all of ``MEDMNIST_SIZES``).
MEDMNIST_SIZES_3D = (28, 64)
#: NIfTI affine of the written volumes: 1 mm voxels on the canonical (D, H, W) grid.
NIFTI_AFFINE = np.diag([-1.0, -1.0, 1.0, 1.0])
LABELS_HEADER = ("path", "label", "patient_id", "split")


def file_record(path: Path) -> dict[str, object]:
    """File name, size in bytes and SHA-256 of ``path`` (no directory: same on every machine)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"name": path.name, "size": path.stat().st_size, "sha256": digest.hexdigest()}


def convert_medmnist(
    npz_path: Path, out_dir: Path, *, kind: str, labels: Sequence[str], multilabel: bool = False,
    label_map: Mapping[int, str] | None = None, key: str = "tasks.<task>",
) -> Path:
    """Convert a MedMNIST v2 ``.npz`` into a dataset folder (see the module docstring).

    Args:
        npz_path: The ``.npz`` file (read with ``allow_pickle=False``).
        out_dir: Destination folder; created if needed. Files are written atomically.
        kind: ``"2d"`` or ``"3d"``: how the image arrays are read.
        labels: The task's class names, in class-index order.
        multilabel: The task is multi-label; required for ``(N, L > 1)`` label arrays.
        label_map: Class (or column) index -> name in ``labels``; None = ``labels[i]``.
        key: Params path of the task, for error messages (``tasks.<name>``).

    Returns:
        ``out_dir / "labels.csv"``.

    Raises:
        DatasetError: The file is missing, not a MedMNIST ``.npz``, or its arrays are malformed.
        ParamsError: The file does not fit the task: class count vs ``labels``, ``multilabel``,
            ``kind`` or ``data.label_map``.
        ValueError: ``kind`` is not ``"2d"`` or ``"3d"`` (a caller bug).
    """
    from pipeline.demo import write_labels

    if kind not in ("2d", "3d"):
        raise ValueError(f"kind must be one of ['2d', '3d']. Received: {kind!r}")
    npz_path, out_dir = Path(npz_path), Path(out_dir)
    file = npz_path.name
    rows: list[tuple[str, str, str, str]] = []
    with _open(npz_path, key=key) as npz:
        targets = {s: _array(npz, f"{s}_labels", npz_path) for s in SPLITS}
        if not any(len(targets[s]) for s in SPLITS):
            raise DatasetError(f"{npz_path}: holds no images")
        names = label_names(np.concatenate([targets[s] for s in SPLITS]), labels=labels,
                            multilabel=multilabel, label_map=label_map, key=key, file=file)
        width = len(str(max(1, *(len(targets[s]) for s in SPLITS)) - 1))
        suffix = ".png" if kind == "2d" else ".nii.gz"
        start = 0
        for split in SPLITS:  # one split's images in memory at a time (PathMNIST-224: ~13 GB)
            stack = _checked_images(_array(npz, f"{split}_images", npz_path), n=len(targets[split]),
                                    kind=kind, key=key, file=file, split=split)
            for index in range(len(stack)):
                stem = f"{index:0{width}d}"
                rel = f"{split}/{stem}{suffix}"
                if kind == "2d":
                    _write_png(out_dir / rel, to_gray(stack[index]))
                else:
                    write_volume(out_dir / rel, stack[index])
                rows.append((rel, names[start + index], f"{split}_{stem}", split))
            start += len(stack)
    return write_labels(out_dir, LABELS_HEADER, rows)


def label_names(targets: np.ndarray, *, labels: Sequence[str], multilabel: bool,
                label_map: Mapping[int, str] | None, key: str, file: str) -> list[str]:
    """The ``label`` cell of every row of a MedMNIST label array.

    Args:
        targets: ``(N, 1)`` (or ``(N,)``) class indices, or ``(N, L)`` 0/1 multi-label columns.
        labels, multilabel, label_map, key: As in :func:`convert_medmnist`.
        file: File name, for messages.

    Returns:
        One name per row; multi-label rows: names in ``labels`` order joined by ``|``.

    Raises:
        DatasetError: Not integers, negative, or multi-label values other than 0/1.
        ParamsError: Class count, ``multilabel`` or ``label_map`` do not fit the file.
    """
    arr = np.asarray(targets)
    arr = arr[:, None] if arr.ndim == 1 else arr
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise DatasetError(f"{file}: labels must be (N, 1) or (N, L). Received: shape {arr.shape}")
    if arr.dtype.kind not in "biu" or (arr.size and arr.min() < 0):
        raise DatasetError(f"{file}: labels must be non-negative integers. Received: {arr.dtype}")
    columns = arr.shape[1]
    if columns > 1 and not multilabel:
        raise ParamsError(f"{key}.multilabel must be true for {file}: its labels are (N, {columns}) "
                          "0/1 columns (a multi-label set such as ChestMNIST). Received: false")
    if columns == 1 and multilabel:
        raise ParamsError(f"{key}.multilabel must be false for {file}: its labels are one class "
                          "index per image, shape (N, 1). Received: true")
    if columns > 1 and arr.size and arr.max() > 1:
        raise DatasetError(f"{file}: multi-label columns must be 0/1. Received: max {arr.max()}")
    n_classes = columns if columns > 1 else int(arr.max()) + 1 if arr.size else 0
    mapping = _index_names(n_classes, labels=labels, label_map=label_map, key=key, file=file)
    if columns == 1:
        return [mapping[int(v)] for v in arr[:, 0]]
    order = {name: i for i, name in enumerate(labels)}
    cells = []
    for row in arr:
        present = {mapping[i] for i in np.flatnonzero(row)}
        cells.append("|".join(sorted(present, key=order.__getitem__)))
    return cells


def _index_names(n_classes: int, *, labels: Sequence[str], label_map: Mapping[int, str] | None,
                 key: str, file: str) -> dict[int, str]:
    if label_map is None:
        if n_classes != len(labels):
            raise ParamsError(
                f"{key}.labels must name the {n_classes} classes of {file} (index i -> labels[i]), "
                f"or map them with {key}.data.label_map. Received: {len(labels)} names "
                f"{list(labels)}")
        return dict(enumerate(labels))
    missing = [i for i in range(n_classes) if i not in label_map]
    extra = sorted(i for i in label_map if i >= n_classes)
    if missing or extra:
        raise ParamsError(
            f"{key}.data.label_map must map exactly the class indices 0..{n_classes - 1} of "
            f"{file}. Received: keys {sorted(label_map)} (missing {missing}, unknown {extra})")
    unknown = sorted({n for n in label_map.values() if n not in labels})
    if unknown:
        raise ParamsError(f"{key}.data.label_map values must be names in {key}.labels "
                          f"{list(labels)}. Received: {unknown}")
    unused = [n for n in labels if n not in label_map.values()]
    if unused:
        raise ParamsError(f"{key}.labels must all be produced by {key}.data.label_map for {file}; "
                          f"no index maps to {unused}. Received: {dict(label_map)}")
    return {int(i): n for i, n in label_map.items()}


def to_gray(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 as is; ``(H, W, 1)`` squeezed; ``(H, W, 3)`` RGB -> BT.601 luma uint8."""
    if image.ndim == 2:
        return image
    if image.shape[-1] == 1:
        return image[..., 0]
    weights = np.asarray(BT601_LUMA_PERMILLE, dtype=np.uint32)
    luma = (image.astype(np.uint32) * weights).sum(axis=-1)
    return ((luma + 500) // 1000).astype(np.uint8)  # round half up; the weights sum to 1000


def write_volume(path: Path, volume: np.ndarray) -> None:
    """Write a ``(D, H, W)`` uint8 volume as deterministic NIfTI-1 ``.nii.gz`` (1 mm voxels).

    The affine is :data:`NIFTI_AFFINE`, so :func:`pipeline.io.nifti.read_nifti` returns the
    array unchanged; qform and sform codes are 1 (scanner), units mm.
    """
    from pipeline.utils.nifti_out import write_nifti_kji

    write_nifti_kji(path, volume, NIFTI_AFFINE, compresslevel=6)


def _write_png(path: Path, image: np.ndarray) -> None:
    from pipeline.demo import write_png  # no tIME/text chunks: the same pixels give the same bytes

    write_png(path, image)


def _open(path: Path, *, key: str) -> np.lib.npyio.NpzFile:
    """Open the archive (no pickles) and check that it holds the six MedMNIST arrays."""
    if not path.is_file():
        raise DatasetError(f"{key}.data.source: MedMNIST file not found: {path} (for a download, "
                           "give the lowercase set name, e.g. medmnist:pneumoniamnist)")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DatasetError(f"{path}: not a MedMNIST v2 file (a single array, not an .npz archive)")
    wanted = [f"{s}_{a}" for s in SPLITS for a in ("images", "labels")]
    missing = [name for name in wanted if name not in npz.files]
    if missing:
        npz.close()
        raise DatasetError(f"{path}: not a MedMNIST v2 file; missing arrays {missing} "
                           f"(found {sorted(npz.files)})")
    return npz


def _array(npz: np.lib.npyio.NpzFile, name: str, path: Path) -> np.ndarray:
    try:
        return npz[name]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: array {name} could not be read ({type(exc).__name__}); "
                           "truncated or corrupt") from None


def _checked_images(stack: np.ndarray, *, n: int, kind: str, key: str, file: str,
                    split: str) -> np.ndarray:
    name = f"{file}: {split}_images"
    if len(stack) != n:
        raise DatasetError(f"{name} has {len(stack)} entries but {split}_labels has {n}")
    if stack.dtype != np.uint8:
        raise DatasetError(f"{name} must be uint8 (MedMNIST stores 0-255). Received: {stack.dtype}")
    shape = stack.shape
    if kind == "2d":
        if stack.ndim == 3 or (stack.ndim == 4 and shape[-1] in (1, 3)):
            return stack
        raise ParamsError(f"{key}.kind is '2d' but {name} has shape {shape}; 2D sets are "
                          "(N, H, W) or (N, H, W, 3). For a 3D set use kind: 3d")
    if stack.ndim == 5 and shape[-1] == 1:
        stack = stack[..., 0]
    if stack.ndim == 4 and min(stack.shape[1:]) >= 4:
        return stack
    raise ParamsError(f"{key}.kind is '3d' but {name} has shape {shape}; 3D sets are "
                      "(N, D, H, W). For a 2D set use kind: 2d")


def fetch_medmnist(name: str, *, size: int | None = None, root: Path | None = None,
                   key: str = "tasks.<task>") -> Path:
    """The path of MedMNIST set ``name`` at ``size``, downloaded by the ``medmnist`` package.

    Args:
        name: Set name as the package spells it (``pneumoniamnist``, ``organmnist3d``).
        size: Image side in pixels: 28 (None), 64, 128, 224; 3D sets only 28 and 64.
        root: Download folder; None = the package's default (``~/.medmnist``). An existing file
            there is used without a download.
        key: Params path of the task, for error messages.

    Returns:
        The ``.npz`` path (``<root>/<name>.npz``, or ``<root>/<name>_<size>.npz``).

    Raises:
        DatasetError: ``medmnist`` is not installed, the name is unknown, or the download failed.
        ParamsError: ``size`` is not published for the set.
    """
    try:
        import medmnist
        from medmnist.info import DEFAULT_ROOT, INFO
    except ImportError:
        raise DatasetError(
            f"{key}.data.source 'medmnist:{name}' downloads the set with the 'medmnist' package, "
            "which is not installed (pip install medmnist; the download needs internet access). "
            f"Or download {name}.npz yourself and set {key}.data.source to "
            f"medmnist:/path/to/{name}.npz") from None
    if name not in INFO:
        raise DatasetError(f"{key}.data.source must be medmnist:<path to .npz> or medmnist:<name> "
                           f"with a name in {sorted(INFO)}. Received: {name!r}")
    sizes = MEDMNIST_SIZES_3D if name.endswith("3d") else MEDMNIST_SIZES
    size = 28 if size is None else int(size)
    if size not in sizes:
        raise ParamsError(f"{key}.data.medmnist_size must be one of {list(sizes)} for {name}. "
                          f"Received: {size}")
    folder = Path(root if root is not None else DEFAULT_ROOT or Path.home() / ".medmnist")
    path = folder / f"{name}{'' if size == 28 else f'_{size}'}.npz"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        kwargs = {} if size == 28 else {"size": size}
        try:
            getattr(medmnist, INFO[name]["python_class"])(split="test", download=True,
                                                         root=str(folder), **kwargs)
        except Exception as exc:  # the package raises bare RuntimeErrors for network failures
            raise DatasetError(
                f"{key}.data.source: downloading MedMNIST {name} ({size} px) failed "
                f"({type(exc).__name__}); it needs internet access. Or download {path.name} "
                f"yourself and set {key}.data.source to medmnist:/path/to/{path.name}") from None
        if not path.is_file():
            raise DatasetError(f"{key}.data.source: the medmnist package reported no error but "
                               f"{path} is missing")
    return path
