"""Atomic output writes: a temp file in the destination directory, then ``os.replace``;
a whole folder is built in a temporary sibling folder, then moved into place (:func:`atomic_dir`).

An interrupted stage therefore never leaves a half-written file that DVC would trust.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place if the block succeeds.

    The parent directory is created if needed. On an exception the temporary file is removed
    and ``path`` is left untouched.

    Args:
        path: Final destination.
        suffix: Suffix for the temporary name (some writers infer the format from it,
            e.g. ``".nii.gz"`` or ``".npy"``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[Any]:
    """Open a temporary file for writing and atomically move it to ``path`` on success."""
    if not any(m in mode for m in "wx"):
        raise ValueError(f"atomic_open is for writing; mode must contain 'w'. Received: {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) atomically."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` atomically."""
    fh: BinaryIO
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically (stable bytes for DVC)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh sibling folder of ``target``; move it over ``target`` if the block succeeds.

    An existing ``target`` is moved aside, replaced, then deleted, so readers see either the
    old folder or the new one, never a mix. On an exception the temporary folder is removed and
    ``target`` is left untouched.

    Raises:
        ValueError: ``target`` exists and is not a folder.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ValueError(f"out_dir must be a folder. Received a file: {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        tmp.chmod(0o755)
        yield tmp
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an existing ``target`` is moved aside first, then deleted."""
    if not target.exists():
        os.replace(new, target)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex}")
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)
