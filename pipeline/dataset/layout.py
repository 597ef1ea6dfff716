"""Where ingest's outputs live in ``data/interim/<task>/``: one object instead of file names
typed again in every stage.

    layout = InterimLayout(data_dir)
    images = open_array(layout.images)
    rows = read_table(layout.manifest)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

IMAGES = "images.npy"
MASKS = "masks.npy"
MANIFEST = "manifest.csv"
QUARANTINE = "quarantine.csv"
INFO = "dataset.json"


@dataclass(frozen=True)
class InterimLayout:
    """The ingest outputs of one task (the ``outs`` of ``ingest@<task>`` in dvc.yaml)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def images(self) -> Path:
        """uint8 ``(N, ...spatial, 1)`` model inputs (memory-mappable)."""
        return self.root / IMAGES

    @property
    def masks(self) -> Path:
        """uint8 0/1 lesion masks on the same grid (zeros where a sample has none)."""
        return self.root / MASKS

    @property
    def manifest(self) -> Path:
        """One row per usable sample (``sample_id``, ``split``, ``label``, ``index``, ``geometry``...)."""
        return self.root / MANIFEST

    @property
    def quarantine(self) -> Path:
        """One row per rejected input, with its reason and code."""
        return self.root / QUARANTINE

    @property
    def info(self) -> Path:
        """``dataset.json``: shapes, labels, preprocessing, counts per split."""
        return self.root / INFO

    @property
    def outputs(self) -> tuple[Path, ...]:
        return (self.images, self.masks, self.manifest, self.quarantine, self.info)
