from __future__ import annotations

import numpy as np
import pytest

from pipeline.dataset.store import ArrayWriter, open_array


def test_writer_trims_to_written_samples_and_reads_back_memmapped(tmp_path):
    path = tmp_path / "images.npy"
    samples = [np.full((4, 5, 1), i, np.uint8) for i in range(3)]
    with ArrayWriter(path, capacity=10, item_shape=(4, 5, 1), dtype="uint8") as w:
        for s in samples:
            w.append(s)
    arr = open_array(path)
    assert isinstance(arr, np.memmap) and arr.shape == (3, 4, 5, 1)
    np.testing.assert_array_equal(arr[2], samples[2])
    assert [p.name for p in tmp_path.iterdir()] == ["images.npy"]  # no temp files left


def test_exact_capacity_and_empty(tmp_path):
    with ArrayWriter(tmp_path / "a.npy", capacity=2, item_shape=(2,), dtype="uint8") as w:
        w.append(np.array([1, 2]))
        w.append(np.array([3, 4]))
    assert open_array(tmp_path / "a.npy").tolist() == [[1, 2], [3, 4]]
    with ArrayWriter(tmp_path / "b.npy", capacity=0, item_shape=(2,), dtype="uint8"):
        pass
    assert open_array(tmp_path / "b.npy").shape == (0, 2)


def test_failure_publishes_nothing_and_keeps_old_file(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((1, 2), np.uint8))
    with pytest.raises(RuntimeError), ArrayWriter(path, capacity=3, item_shape=(2,), dtype="uint8") as w:
        w.append(np.array([9, 9]))
        raise RuntimeError("killed")
    assert open_array(path).tolist() == [[0, 0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]


def test_shape_mismatch_is_rejected(tmp_path):
    with ArrayWriter(tmp_path / "a.npy", capacity=1, item_shape=(2,), dtype="uint8") as w:
        with pytest.raises(ValueError, match=r"sample shape must be \(2,\)"):
            w.append(np.zeros(3))
