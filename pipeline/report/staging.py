"""Atomic replacement of an output folder: build in a fresh sibling, then move it over the target.

The report site is written into a temporary sibling folder (:func:`staging_dir`) and moved over
the target only when the build succeeds, so an interrupted build never leaves a half-written
report; a failed build deletes its staging folder and leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staging_dir(target: Path) -> Iterator[Path]:
    """A fresh sibling folder of ``target``, moved over ``target`` if the block succeeds."""
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
