"""``tasks.<t>.data``: where a task's dataset comes from (:class:`DataParams`) and the source
prefixes it accepts (``demo:``, ``medmnist:``, or a folder)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from pipeline.config.common import Frozen

DEMO_PREFIX = "demo:"
DEMO_KINDS = ("cxr", "ct")
MEDMNIST_PREFIX = "medmnist:"
#: Image sides the ``medmnist`` package publishes (3D sets only 28 and 64).
MEDMNIST_SIZES = (28, 64, 128, 224)
#: A bare MedMNIST set name (``pneumoniamnist``, ``organmnist3d``); anything else is a file path.
_MEDMNIST_NAME = re.compile(r"[a-z0-9]+")
#: ``scheme:`` at the start of a source: a typo'd prefix, not a folder (``C:`` drives excepted).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")


class DataParams(Frozen):
    """Where a task's dataset comes from.

    ``source`` is ``demo:cxr`` / ``demo:ct`` (the generated demo, written by the ``demo`` stage
    under ``data/raw/<task>``), a folder holding ``labels.csv`` (see README, dataset contract),
    or a MedMNIST v2 set: ``medmnist:<path to .npz>`` or ``medmnist:<name>`` (downloaded with the
    ``medmnist`` package), converted by the ``demo`` stage into ``data/raw/<task>/dataset``
    (see :mod:`pipeline.dataset.medmnist`).
    """

    source: str
    demo_seed: int = 0
    demo_patients: Annotated[int, Field(ge=4)] | None = None
    #: MedMNIST class index (column index for multi-label sets) -> name in the task's ``labels``.
    #: None: index i is ``labels[i]``. Several indices may map to one name (merged classes).
    label_map: dict[Annotated[int, Field(ge=0)], Annotated[str, Field(min_length=1)]] | None = None
    #: Image side (pixels) of a downloaded ``medmnist:<name>`` set; None = 28.
    medmnist_size: Literal[28, 64, 128, 224] | None = None

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: str) -> str:
        allowed = (f"must be a folder or one of {[DEMO_PREFIX + k for k in DEMO_KINDS]}, or "
                   f"'{MEDMNIST_PREFIX}<path to .npz>' / '{MEDMNIST_PREFIX}<name>'")
        if value.startswith(DEMO_PREFIX) and value[len(DEMO_PREFIX):] not in DEMO_KINDS:
            raise ValueError(f"{allowed}. Received: {value!r}")
        if not value.strip():
            raise ValueError("must not be empty")
        if value.startswith(MEDMNIST_PREFIX):
            if not value[len(MEDMNIST_PREFIX):].strip():
                raise ValueError(f"{allowed} (e.g. 'medmnist:pneumoniamnist'). Received: {value!r}")
        elif _SCHEME.match(value) and not value.startswith(DEMO_PREFIX):
            raise ValueError(f"{allowed}; the prefix is not known. Received: {value!r}")
        elif value.rstrip("/").lower().endswith(".npz"):
            raise ValueError(f"{allowed}; a .npz file needs the prefix, e.g. "
                             f"'{MEDMNIST_PREFIX}{value}'. Received: {value!r}")
        return value

    @field_validator("label_map", "medmnist_size")
    @classmethod
    def _medmnist_only(cls, value: Any, info: ValidationInfo) -> Any:
        source = info.data.get("source")
        if value is None or source is None:  # source invalid: already reported
            return value
        if not source.startswith(MEDMNIST_PREFIX):
            raise ValueError(f"is only for '{MEDMNIST_PREFIX}' sources. Received: {value!r} with "
                             f"source {source!r}")
        if info.field_name == "medmnist_size" and not _MEDMNIST_NAME.fullmatch(
                source[len(MEDMNIST_PREFIX):]):
            raise ValueError(f"is only for a downloaded set ('{MEDMNIST_PREFIX}<name>'); a .npz "
                             f"file has its own size. Received: {value!r} with source {source!r}")
        return value

    @property
    def demo_kind(self) -> str | None:
        """``"cxr"``/``"ct"`` for a demo source, else None."""
        return self.source[len(DEMO_PREFIX):] if self.source.startswith(DEMO_PREFIX) else None

    @property
    def is_medmnist(self) -> bool:
        """True for a ``medmnist:`` source (a .npz file or a set name)."""
        return self.source.startswith(MEDMNIST_PREFIX)

    @property
    def medmnist_name(self) -> str | None:
        """The set name of a ``medmnist:<name>`` source (e.g. ``"pneumoniamnist"``), else None."""
        spec = self.source[len(MEDMNIST_PREFIX):] if self.is_medmnist else ""
        return spec if _MEDMNIST_NAME.fullmatch(spec) else None

    @property
    def medmnist_path(self) -> Path | None:
        """The ``~``-expanded .npz path of a ``medmnist:<path>`` source, else None."""
        if not self.is_medmnist or self.medmnist_name is not None:
            return None
        return Path(os.path.expanduser(self.source[len(MEDMNIST_PREFIX):]))
