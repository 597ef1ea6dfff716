"""Memory-mapped array store: one ``.npy`` per array kind, written sample by sample.

Samples are written straight into a memory-mapped file, so ingest memory does not grow with the
dataset, and readers open it with ``np.load(..., mmap_mode="r")`` (tf.data reads slices lazily).
The file is built under a temporary name and moved into place only when complete.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

_COPY_CHUNK_BYTES = 64 << 20


class ArrayWriter:
    """Append fixed-shape samples to ``path`` (an ``.npy`` of shape ``(N, *item_shape)``).

    Use as a context manager; :meth:`close` (on success) trims the file to the samples written
    and atomically publishes it; on an exception nothing is published.

    Args:
        path: Final ``.npy`` path.
        capacity: Upper bound on the number of samples.
        item_shape: Shape of one sample.
        dtype: Stored dtype (e.g. ``uint8``).
    """

    def __init__(self, path: str | os.PathLike[str], *, capacity: int,
                 item_shape: tuple[int, ...], dtype: np.dtype | str) -> None:
        self.path = Path(path)
        self.capacity = int(capacity)
        self.item_shape = tuple(int(s) for s in item_shape)
        self.dtype = np.dtype(dtype)
        self.count = 0
        self._partial = self.path.with_name(f".{self.path.name}.partial")
        self._array: np.memmap | None = None

    def __enter__(self) -> ArrayWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._array = np.lib.format.open_memmap(
            self._partial, mode="w+", dtype=self.dtype, shape=(max(self.capacity, 1),) + self.item_shape
        )
        return self

    def append(self, sample: np.ndarray) -> int:
        """Store ``sample`` (cast to the store dtype); return its index."""
        if self._array is None:
            raise RuntimeError("ArrayWriter must be used as a context manager")
        if tuple(sample.shape) != self.item_shape:
            raise ValueError(f"sample shape must be {self.item_shape}. Received: {sample.shape}")
        if self.count >= self.capacity:
            raise ValueError(f"ArrayWriter capacity {self.capacity} exceeded")
        self._array[self.count] = sample
        self.count += 1
        return self.count - 1

    def __exit__(self, exc_type, exc, tb) -> None:
        array, self._array = self._array, None
        try:
            if exc_type is None and array is not None:
                self._publish(array)
        finally:
            del array
            with contextlib.suppress(FileNotFoundError):
                self._partial.unlink()

    def _publish(self, array: np.memmap) -> None:
        array.flush()
        if self.count == array.shape[0]:
            os.replace(self._partial, self.path)
            return
        tmp = self.path.with_name(f".{self.path.name}.trim")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=self.dtype,
                                        shape=(self.count,) + self.item_shape)
        step = max(1, _COPY_CHUNK_BYTES // max(1, array[0].nbytes))
        for start in range(0, self.count, step):
            stop = min(self.count, start + step)
            out[start:stop] = array[start:stop]
        out.flush()
        del out
        os.replace(tmp, self.path)


def open_array(path: str | os.PathLike[str]) -> np.ndarray:
    """Open a store array read-only and memory-mapped (never loads it whole)."""
    return np.load(path, mmap_mode="r", allow_pickle=False)
